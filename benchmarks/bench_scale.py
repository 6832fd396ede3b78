"""Scale benchmarks for the sim broker, the engine and the scheduler's fan-out (issue 5).

1. fan-out: N sim connections (one account, a few trades each) with simulated latency per request,
   synced by ``run_scheduled_sync`` vs a serial loop of ``sync_broker_trades`` over a sample of
   other connections in the same process (the serial time per connection, times N). The fake
   counts requests per window: its documented per-user and app limits must never be exceeded.
2. bulk: one sim connection with T trades synced into SQLite: trades/s and peak RSS (each part
   runs in a fresh subprocess so its peak memory is its own), against a baseline in the same
   process: reading the same trades through the broker facade without storing them.

    python benchmarks/bench_scale.py                       # both parts, the issue's sizes
    python benchmarks/bench_scale.py --part fanout --connections 200
    python benchmarks/bench_scale.py --part bulk --trades 100000
    python benchmarks/bench_scale.py --part fanout --broker loopback   # the sim in another process

``--broker in-process`` (default) serves the sim through an httpx transport inside the benchmark
process, so the fake broker's own CPU counts against the engine; ``--broker loopback`` serves it on a
loopback port from a separate process, as a real broker is reached: real sockets, HTTP parsing and
keep-alive connections, and the broker's CPU is not the engine's.

Prints a markdown section to append to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from brokersync import BrokerSync, Vault, get_broker
from brokersync_sim import SimAPI, SimServer

PASSWORD = "sim-password"


async def _connect_many(engine: BrokerSync, prefix: str, count: int, user: str) -> list[str]:
    ids: list[str] = []
    gate = asyncio.Semaphore(20)

    async def one(n: int) -> None:
        async with gate:
            result = await engine.connect_broker(user, "sim", {"username": f"{prefix}-{n:05d}", "password": PASSWORD})
            ids.append(result.connection_id)

    await asyncio.gather(*(one(n) for n in range(count)))
    return ids


def _database_url(kind: str, tmp: str) -> str:
    if kind == "sqlite":
        return f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
    # BROKERSYNC_TEST_DATABASE_URL's server when set, else an embedded PostgreSQL (tests/_postgres.py).
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from _postgres import fresh_database  # type: ignore[import-not-found]

    return str(fresh_database("bench"))


def _fanout_api(latency: float, trades: int) -> SimAPI:
    return SimAPI(seed=5, accounts=1, trades_per_account=trades, correction_rate=0, latency=latency)


def _api_stats(api: SimAPI, connections_opened: int | None = None) -> dict[str, object]:
    return {
        "requests": api.stats.requests,
        "limit_exceeded": api.stats.limit_exceeded,
        "peak_user_window": api.stats.peak_user_window,
        "peak_app_window": api.stats.peak_app_window,
        "connections_opened": connections_opened,
    }


def serve_child(latency: float, trades: int) -> None:
    """The sim on a loopback port until stdin closes; then its counters as JSON on stdout."""
    api = _fanout_api(latency, trades)
    with SimServer(api) as server:
        print(server.base_url, flush=True)
        sys.stdin.read()
        stats = _api_stats(api, server.connections_opened)
    print(json.dumps(stats), flush=True)


class _LoopbackBroker:
    """The sim served by a child process (started by this benchmark script)."""

    def __init__(self, latency: float, trades: int) -> None:
        command = [sys.executable, __file__, "--child", "serve", "--latency", str(latency)]
        command += ["--trades-per-connection", str(trades)]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.base_url = self.process.stdout.readline().strip()

    def stats(self) -> dict[str, object]:
        out, _ = self.process.communicate("", timeout=60)
        data: dict[str, object] = json.loads(out.strip().splitlines()[-1])
        return data


async def fanout(
    connections: int, sample: int, latency: float, concurrency: int, trades: int, database: str, broker: str
) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        api: SimAPI | None = None
        loopback: _LoopbackBroker | None = None
        where: dict[str, object]
        if broker == "loopback":
            loopback = _LoopbackBroker(latency, trades)
            where = {"base_urls": {"sim": loopback.base_url}}
        else:
            api = _fanout_api(latency, trades)
            where = {"transports": {"sim": api.transport()}}
        engine = BrokerSync(
            _database_url(database, tmp),
            encryption_keys=Vault.generate_key("bench"),
            concurrency=concurrency,
            **where,  # type: ignore[arg-type]
        )
        async with engine:
            await engine.upgrade_database()
            # Baseline: a serial loop over `sample` connections (then disabled, so the fan-out skips them).
            serial_ids = await _connect_many(engine, "serial", sample, "bench-serial")
            started, cpu_started = time.perf_counter(), time.process_time()
            for connection_id in serial_ids:
                result = await engine.sync_broker_trades(connection_id, "bench-serial", trigger="scheduled")
                assert result.ok, result.error
            serial_seconds = time.perf_counter() - started
            serial_cpu = time.process_time() - cpu_started
            for connection_id in serial_ids:
                await engine.disconnect_broker(connection_id, "bench-serial")
            per_connection = serial_seconds / sample

            await _connect_many(engine, "user", connections, "bench")
            started, cpu_started = time.perf_counter(), time.process_time()
            results = await engine.run_scheduled_sync()
            fanout_seconds = time.perf_counter() - started
            fanout_cpu = time.process_time() - cpu_started
            failed = [r for r in results if not r.ok]
            imported = sum(r.imported for r in results)
        stats = loopback.stats() if loopback is not None else _api_stats(api)  # type: ignore[arg-type]
        return {
            "database": database,
            "broker": broker,
            "connections": connections,
            "latency_ms": latency * 1000,
            "concurrency": concurrency,
            "trades_per_connection": trades,
            "serial_sample": sample,
            "serial_seconds_per_connection": round(per_connection, 4),
            "serial_estimated_seconds": round(per_connection * connections, 1),
            "fanout_seconds": round(fanout_seconds, 2),
            "speedup": round(per_connection * connections / fanout_seconds, 1),
            "serial_cpu_ms_per_connection": round(serial_cpu / sample * 1000, 1),
            "fanout_cpu_ms_per_connection": round(fanout_cpu / connections * 1000, 1),
            # The fan-out cannot beat its own CPU: the best ratio this process could reach on
            # the cores it had is serial time / (fan-out CPU time / usable cores).
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "synced": len(results),
            "failed": len(failed),
            "imported": imported,
            "requests": sum(r.requests for r in results),
            "retries": sum(r.retries for r in results),
            "rate_limit_waits": sum(r.rate_limit_waits for r in results),
            "broker_limit_exceeded": stats["limit_exceeded"],
            "peak_user_window": stats["peak_user_window"],
            "user_limit": list(SimAPI().user_limit),
            "peak_app_window": stats["peak_app_window"],
            "app_limit": list(SimAPI().app_limit),
            "tcp_connections_opened": stats["connections_opened"],
        }


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


async def bulk_fetch(trades: int) -> dict[str, object]:
    api = SimAPI(seed=9, accounts=1, trades_per_account=trades, correction_rate=0)
    started = time.perf_counter()
    count = 0
    async with get_broker("sim", transport=api.transport()) as broker:
        auth = await broker.authenticate({"username": "bulk", "password": PASSWORD})
        (account,) = await broker.get_accounts(auth)
        async for batch in broker.iter_trades(auth, account):
            count += len(batch.trades)
    seconds = time.perf_counter() - started
    return {"trades": count, "seconds": round(seconds, 2), "peak_rss_mb": round(_peak_rss_mb(), 1)}


async def bulk_sync(trades: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        api = SimAPI(seed=9, accounts=1, trades_per_account=trades, correction_rate=0)
        async with BrokerSync(
            f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}",
            encryption_keys=Vault.generate_key("bench"),
            transports={"sim": api.transport()},
        ) as engine:
            await engine.upgrade_database()
            connected = await engine.connect_broker("bulk", "sim", {"username": "bulk", "password": PASSWORD})
            started = time.perf_counter()
            result = await engine.sync_broker_trades(connected.connection_id, "bulk")
            seconds = time.perf_counter() - started
            assert result.ok, result.error
            stored = await engine.count_trades()
            return {
                "trades": result.imported,
                "stored": stored,
                "seconds": round(seconds, 2),
                "peak_rss_mb": round(_peak_rss_mb(), 1),
                "db_mb": round((Path(tmp) / "bench.db").stat().st_size / 1e6, 1),
            }


def _child(part: str, args: argparse.Namespace) -> dict[str, object]:
    command = [sys.executable, __file__, "--child", part, "--trades", str(args.trades)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{part} failed:\n{done.stderr}")
    data: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["all", "fanout", "bulk"], default="all")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--serial-sample", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--trades-per-connection", type=int, default=20)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite", help="for the fan-out")
    parser.add_argument("--trades", type=int, default=1_000_000, help="trades for the bulk part")
    parser.add_argument(
        "--broker", choices=["in-process", "loopback"], default="in-process", help="where the sim runs (fan-out)"
    )
    parser.add_argument("--child", choices=["fetch", "sync", "serve"], help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child == "fetch":
        print(json.dumps(asyncio.run(bulk_fetch(args.trades))))
        return
    if args.child == "sync":
        print(json.dumps(asyncio.run(bulk_sync(args.trades))))
        return
    if args.child == "serve":
        serve_child(args.latency, args.trades_per_connection)
        return

    machine = (
        f"{platform.machine()}, {os.cpu_count()} CPUs (shared with other jobs), "
        f"Python {platform.python_version()}, {platform.system()}"
    )
    title = "## Scale: sim fan-out and bulk sync (issue 5, `benchmarks/bench_scale.py`)"
    lines = ["", title, "", f"Machine: {machine}."]
    lines.append(f"Command: `{' '.join(['python benchmarks/bench_scale.py', *sys.argv[1:]])}`")
    if args.part in ("all", "fanout"):
        f = asyncio.run(
            fanout(
                args.connections,
                args.serial_sample,
                args.latency,
                args.concurrency,
                args.trades_per_connection,
                args.database,
                args.broker,
            )
        )
        print(json.dumps(f), file=sys.stderr)
        lines += [
            "",
            f"Fan-out on {f['database']}, sim broker {f['broker']}: "
            f"{f['connections']} connections x {f['trades_per_connection']} trades, "
            f"{f['latency_ms']:g} ms simulated latency per request, "
            f"`run_scheduled_sync(concurrency={f['concurrency']})`.",
            "",
            "| measure | value |",
            "|---|---|",
            f"| serial loop, per connection (sample of {f['serial_sample']}) "
            f"| {f['serial_seconds_per_connection']} s |",
            f"| serial loop, all connections (per-connection time x N) | {f['serial_estimated_seconds']} s |",
            f"| run_scheduled_sync, all connections | {f['fanout_seconds']} s |",
            f"| **speed-up vs serial** | **{f['speedup']}x** |",
            f"| process CPU per connection: serial / fan-out "
            f"| {f['serial_cpu_ms_per_connection']} ms / {f['fanout_cpu_ms_per_connection']} ms |",
            f"| load average during the run (1/5/15 min) | {' / '.join(map(str, f['load_average']))} |",
            f"| synced / failed / imported | {f['synced']} / {f['failed']} / {f['imported']} |",
            f"| broker requests / retries / rate-limit waits "
            f"| {f['requests']} / {f['retries']} / {f['rate_limit_waits']} |",
            f"| requests refused by the broker for exceeding its limits | {f['broker_limit_exceeded']} |",
            f"| peak requests in one window, per user (limit) "
            f"| {f['peak_user_window']} ({f['user_limit'][0]} per {f['user_limit'][1]:g} s) |",
            f"| peak requests in one window, whole API (limit) "
            f"| {f['peak_app_window']} ({f['app_limit'][0]} per {f['app_limit'][1]:g} s) |",
        ]
        if f["tcp_connections_opened"] is not None:
            lines.append(f"| TCP connections the broker accepted (whole run) | {f['tcp_connections_opened']} |")
    if args.part in ("all", "bulk"):
        fetch = _child("fetch", args)
        sync = _child("sync", args)
        print(json.dumps({"fetch": fetch, "sync": sync}), file=sys.stderr)
        rate = int(sync["trades"]) / float(sync["seconds"])  # type: ignore[arg-type]
        fetch_rate = int(fetch["trades"]) / float(fetch["seconds"])  # type: ignore[arg-type]
        lines += [
            "",
            f"Bulk: one sim connection, {args.trades:,} trades, first (manual) sync into SQLite; "
            "each measurement in its own process.",
            "",
            "| measure | fetch only (baseline) | engine sync into SQLite |",
            "|---|---|---|",
            f"| trades | {fetch['trades']} | {sync['trades']} (stored: {sync['stored']}) |",
            f"| seconds | {fetch['seconds']} | {sync['seconds']} |",
            f"| trades/s | {fetch_rate:,.0f} | {rate:,.0f} (**{rate / fetch_rate:.2f}x** the fetch-only rate) |",
            f"| peak RSS | {fetch['peak_rss_mb']} MB | {sync['peak_rss_mb']} MB |",
            f"| database size | | {sync['db_mb']} MB |",
        ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
