"""Store throughput: new trades, a full duplicate re-sync, and a re-sync with 1% corrections.

    python benchmarks/bench_store.py                       # 100k on SQLite (+ PostgreSQL if reachable)
    python benchmarks/bench_store.py --sizes 100000 1000000 --databases sqlite postgresql

Each (database, size) runs in its own subprocess, so its peak RSS belongs to that history size
alone: a streaming store keeps it flat from 100k to 1M trades. Trades go through the engine's store
path (``Store.store_batch``: classification, ON CONFLICT upsert, cursor/watermark, lease renewal in
one transaction per batch) in batches of ``--batch`` trades, as a sync stores broker pages.

The baseline, measured in the same process on the same database, is the database driver inserting
the same rows with a bare ``executemany`` (no dedupe, no lease, no cursor): the floor a store could
reach. Results are printed as markdown; paste them into benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

from brokersync import Direction, Trade
from brokersync._store import Store
from brokersync._store._types import decimal_text, utc_text

EPOCH = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
ACCOUNT = "ACC-1"


def make_trade(index: int, *, corrected: bool = False) -> Trade:
    opened = EPOCH + dt.timedelta(seconds=37 * index)
    cents = (index * 7919) % 100000
    return Trade(
        broker_trade_id=f"T{index:09d}",
        account_id=ACCOUNT,
        symbol=("ESZ4", "NQZ4", "CLF5", "6EZ4")[index % 4],
        direction=Direction.LONG if index % 3 else Direction.SHORT,
        opened_at=opened,
        closed_at=opened + dt.timedelta(minutes=3),
        entry_price=Decimal(f"{4000 + cents // 100}.{cents % 100:02d}"),
        exit_price=Decimal(f"{4001 + cents // 100}.{(cents * 3) % 100:02d}"),
        quantity=Decimal(1 + index % 5),
        realized_pnl=Decimal(f"{(cents % 2000) - 1000}.{cents % 100:02d}") + (Decimal("0.5") if corrected else 0),
        fees=Decimal("2.09"),
        currency="USD",
        raw={"id": index, "px": f"{4000 + cents // 100}.{cents % 100:02d}"},
    )


def batches(size: int, batch: int, *, corrections: int = 0) -> Iterator[list[Trade]]:
    """The history in broker-page-sized batches, generated lazily (memory stays flat)."""
    every = size // corrections if corrections else 0
    for start in range(0, size, batch):
        yield [make_trade(i, corrected=bool(every) and i % every == 0) for i in range(start, min(start + batch, size))]


async def setup_connection(store: Store, name: str, now: dt.datetime) -> str:
    from brokersync import Account

    await store.create_connection(
        {"id": name, "user_id": "bench", "broker": "bench", "environment": "live", "status": "active",
         "credentials": "v1:bench:x", "created_at": now, "updated_at": now},
        [Account(id=ACCOUNT)],
        now,
    )  # fmt: skip
    return name


async def timed_scenario(
    store: Store, connection_id: str, size: int, batch: int, corrections: int
) -> tuple[float, dict[str, float]]:
    now = dt.datetime.now(dt.UTC)
    holder = "bench"
    assert await store.acquire_lease(connection_id, holder=holder, run_id="r", now=now, ttl=dt.timedelta(hours=1))
    elapsed = 0.0
    totals: dict[str, float] = {"imported": 0, "skipped": 0, "updated": 0}
    cpu = loop_cpu = 0.0
    for trades in batches(size, batch, corrections=corrections):
        started = time.perf_counter()
        cpu_started = time.process_time()
        loop_started = time.thread_time()
        counts = await store.store_batch(
            connection_id=connection_id, account_id=ACCOUNT, batch=trades, now=now,
            cursor=trades[-1].broker_trade_id, lease=(holder, now + dt.timedelta(hours=1)),
        )  # fmt: skip
        elapsed += time.perf_counter() - started
        cpu += time.process_time() - cpu_started
        loop_cpu += time.thread_time() - loop_started
        totals["imported"] += counts.imported
        totals["skipped"] += counts.skipped
        totals["updated"] += counts.updated
    await store.release_lease(connection_id, holder=holder)
    # cpu: the whole process; loop_cpu: the event-loop thread alone (the rest is the driver's thread)
    return elapsed, {**totals, "cpu_seconds": cpu, "loop_cpu_seconds": loop_cpu}


def _plain_row(trade: Trade, connection_id: str, sqlite: bool) -> tuple[object, ...]:
    def money(value: Decimal | None) -> object:
        return None if value is None else (decimal_text(value) if sqlite else value)

    def when(value: dt.datetime | None) -> object:
        return None if value is None else (utc_text(value) if sqlite else value)

    return (connection_id, trade.account_id, trade.broker_trade_id, trade.symbol, trade.direction.value,
            when(trade.opened_at), when(trade.closed_at), money(trade.entry_price), money(trade.exit_price),
            money(trade.quantity), money(trade.realized_pnl), money(trade.fees), trade.currency,
            json.dumps(dict(trade.raw)), "0" * 32, when(trade.opened_at), when(trade.opened_at))  # fmt: skip


async def baseline(store: Store, connection_id: str, size: int, batch: int) -> float:
    """Bare driver executemany of the same rows into the same table (no dedupe, no lease)."""
    columns = (
        "connection_id, account_id, broker_trade_id, symbol, direction, opened_at, closed_at, entry_price, "
        "exit_price, quantity, realized_pnl, fees, currency, raw, fingerprint, first_seen_at, updated_at"
    )
    sqlite = store.dialect == "sqlite"
    marks = ", ".join("?" if sqlite else f"${i}" for i in range(1, 18))
    sql = f"INSERT INTO trades ({columns}) VALUES ({marks})"
    elapsed = 0.0
    async with store.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        for trades in batches(size, batch):
            rows = [_plain_row(t, connection_id, sqlite) for t in trades]
            started = time.perf_counter()
            if sqlite:  # the store's connections run in autocommit mode: one explicit transaction
                await driver.execute("BEGIN IMMEDIATE")  # type: ignore[union-attr]
                await driver.executemany(sql, rows)  # type: ignore[union-attr]
                await driver.execute("COMMIT")  # type: ignore[union-attr]
            else:
                async with driver.transaction():  # type: ignore[union-attr]
                    await driver.executemany(sql, rows)  # type: ignore[union-attr]
            elapsed += time.perf_counter() - started
        await conn.rollback()
    return elapsed


async def run_one(url: str, size: int, batch: int) -> dict[str, object]:
    store = Store(url)
    await store.upgrade()
    now = dt.datetime.now(dt.UTC)
    await setup_connection(store, "baseline", now)
    base = await baseline(store, "baseline", size, batch)
    connection_id = await setup_connection(store, "bench", now)
    results: dict[str, object] = {"baseline_s": base}
    for name, corrections in (("new", 0), ("duplicates", 0), ("corrections_1pct", size // 100)):
        elapsed, counts = await timed_scenario(store, connection_id, size, batch, corrections)
        results[name] = {"seconds": elapsed, **counts}
    await store.aclose()
    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return results


def database_url(kind: str, workdir: Path, size: int) -> str | None:
    if kind == "sqlite":
        return f"sqlite+aiosqlite:///{workdir / f'bench-{size}.db'}"
    configured = os.environ.get("BROKERSYNC_TEST_DATABASE_URL")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    try:
        if configured:
            from _postgres import fresh_database  # type: ignore[import-not-found]

            return str(fresh_database("bench"))
        from _postgres import fresh_database  # type: ignore[import-not-found]

        return str(fresh_database("bench"))
    except BaseException as exc:  # pytest.skip outside pytest raises a BaseException subclass
        print(f"(PostgreSQL unavailable: {exc})", file=sys.stderr)
        return None


def child(url: str, size: int, batch: int) -> None:
    print(json.dumps(asyncio.run(run_one(url, size, batch))))


def table(rows: list[tuple[str, int, dict[str, object]]], batch: int, load: str) -> str:
    command = f"python benchmarks/bench_store.py {' '.join(sys.argv[1:])}".strip()
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs shared with other jobs (load average {load}), "
        f"Python {platform.python_version()}, {platform.system()}; batch {batch} trades; command: `{command}`",
        "",
        "| database | trades | new: trades/s | new vs bare executemany | duplicate re-sync: trades/s "
        "| 1% corrections: trades/s | store CPU: new trades per CPU-second "
        "| new: CPU µs/trade (loop thread + driver thread) | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, size, r in rows:
        base = float(r["baseline_s"])  # type: ignore[arg-type]
        new, dup, cor = (r[k] for k in ("new", "duplicates", "corrections_1pct"))
        assert new["imported"] == size, new  # type: ignore[index]
        assert dup["skipped"] == size, dup  # type: ignore[index]
        assert cor["updated"] == size // 100, cor  # type: ignore[index]
        rates = [size / float(s["seconds"]) for s in (new, dup, cor)]  # type: ignore[index]
        cpu_us = float(new["cpu_seconds"]) / size * 1e6  # type: ignore[index]
        loop_us = float(new["loop_cpu_seconds"]) / size * 1e6  # type: ignore[index]
        lines.append(
            f"| {kind} | {size:,} | {rates[0]:,.0f} | {base / float(new['seconds']):.2f}x | "  # type: ignore[index]
            f"{rates[1]:,.0f} | {rates[2]:,.0f} | {size / float(new['cpu_seconds']):,.0f} | "  # type: ignore[index]
            f"{loop_us:.1f} + {max(cpu_us - loop_us, 0.0):.1f} | {float(r['peak_rss_mb']):.0f} |"  # type: ignore[arg-type]
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"])
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--child", nargs=3, metavar=("URL", "SIZE", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), int(args.child[2]))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.databases:
            for size in args.sizes:
                url = database_url(kind, Path(tmp), size)
                if url is None:
                    continue
                out = subprocess.run(
                    [sys.executable, __file__, "--child", url, str(size), str(args.batch)],
                    check=True, capture_output=True, text=True,
                )  # fmt: skip
                result = json.loads(out.stdout.strip().splitlines()[-1])
                print(f"{kind} {size}: {result}", file=sys.stderr)
                rows.append((kind, size, result))
    print(table(rows, args.batch, " / ".join(f"{x:.1f}" for x in os.getloadavg())))


if __name__ == "__main__":
    main()
