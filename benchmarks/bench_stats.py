"""Sync health statistics over a large audit trail: ``BrokerSync.sync_stats`` on SQLite.

    python benchmarks/bench_stats.py                 # 1,000,000 audit rows
    python benchmarks/bench_stats.py --rows 200000

Fills ``sync_runs`` with N rows (3 brokers, one run every 30 s, ~6% failed), then times
``sync_stats`` over the whole trail and over the last day (the CLI's default window), each split
into the totals query and the p95 query. Baseline, in the same process on the same table: a plain
``SELECT count(*)`` over the same window (the least any aggregate over it must read). Prints a
markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import random
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from brokersync import BrokerSync, Vault
from brokersync._store._schema import sync_runs
from sqlalchemy import func, insert, select

START = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
EVERY = 30  # seconds between runs


async def fill(engine: BrokerSync, rows: int) -> None:
    rnd = random.Random(1)
    async with engine.store.engine.begin() as conn:
        for offset in range(0, rows, 50_000):
            await conn.execute(
                insert(sync_runs),
                [
                    {
                        "id": f"r{i:09d}",
                        "connection_id": f"c{i % 5000}",
                        "user_id": f"u{i % 3000}",
                        "broker": ("alpha", "beta", "gamma")[i % 3],
                        "trigger": "scheduled",
                        "status": "failed" if i % 17 == 0 else "succeeded",
                        "started_at": START + dt.timedelta(seconds=EVERY * i),
                        "finished_at": START + dt.timedelta(seconds=EVERY * i + 2),
                        "duration_ms": rnd.randint(100, 90_000),
                        "requests": 10,
                        "retries": i % 3,
                        "rate_limit_waits": i % 5,
                    }
                    for i in range(offset, min(offset + 50_000, rows))
                ],
            )


async def timed(call: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started


async def run(rows: int) -> list[tuple[str, int, float, float, float, float]]:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        async with BrokerSync(
            f"sqlite+aiosqlite:///{Path(tmp) / 'stats.db'}", encryption_keys=Vault.generate_key("k")
        ) as engine:
            await engine.upgrade_database()
            await fill(engine, rows)
            store = engine.store
            last_day = START + dt.timedelta(seconds=EVERY * rows) - dt.timedelta(days=1)
            for label, since in (("whole trail", None), ("last day", last_day)):

                async def count(since: dt.datetime | None = since) -> None:
                    query = select(func.count()).select_from(sync_runs)
                    if since is not None:
                        query = query.where(sync_runs.c.started_at >= since)
                    async with store.engine.connect() as conn:
                        await conn.execute(query)

                baseline = await timed(count)
                totals = await timed(lambda since=since: store.run_totals(since=since))
                counts = {r["broker"]: r["duration_count"] for r in await store.run_totals(since=since)}
                p95 = await timed(lambda since=since, counts=counts: store.duration_p95(counts, since=since))
                whole = await timed(lambda since=since: engine.sync_stats(since=since))
                runs = (await engine.sync_stats(since=since)).total.runs
                results.append((label, runs, baseline, totals, p95, whole))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    results = asyncio.run(run(args.rows))
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs (shared; load average {load}), "
        f"Python {platform.python_version()}; {args.rows:,} audit rows on SQLite; "
        f"command: `python benchmarks/bench_stats.py --rows {args.rows}`\n"
    )
    print("| window | runs | `count(*)` baseline | totals query | p95 query | whole `sync_stats` | vs baseline |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, runs, baseline, totals, p95, whole in results:
        print(
            f"| {label} | {runs:,} | {baseline:.3f} s | {totals:.3f} s | {p95:.3f} s | {whole:.3f} s "
            f"| {whole / baseline:.0f}x |"
        )


if __name__ == "__main__":
    main()
