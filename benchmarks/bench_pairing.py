"""Pairing throughput: ingest + pair executions through the store, against storing round trips.

    python benchmarks/bench_pairing.py --size 100000       # one size, SQLite
    python benchmarks/bench_pairing.py --size 1000000

In one process, on one fresh SQLite file each, the same run measures:

1. ``executions``: N executions (``--instruments`` symbols, buys and sells alternating in lots of
   1-3, so every other fill closes something) through ``Store.store_batch(executions=...)`` in
   pages of ``--batch``: dedupe, fingerprint, upsert, incremental FIFO pairing, open lots, round
   trips written as trades, cursor, in one transaction per page;
2. ``round trips``: N ready-made round trips through today's path (``Store.store_batch(batch=...)``);
3. ``incremental``: 1% more executions, later than everything stored (continues from open lots);
4. ``full re-pair``: one late fill per instrument, before everything stored (re-pairs each
   instrument from its first execution, in slices);
5. ``re-pair from a point``: one late fill per instrument 1% back in the history: each instrument
   is re-paired from that fill on (ADR 0010 amendment), the 99% before it is neither read nor written.

Two rates per path: end to end (building the ``Execution``/``Trade`` objects, what a plugin does,
included) and store only (the time spent inside ``Store.store_batch``). Peak RSS (ru_maxrss) is
printed for the whole process: run each size in its own process to compare. The load average
before and after the run is printed too (the benchmark machine is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

from brokersync import Direction, Execution, Instrument, Side, Trade
from brokersync._store import Store

EPOCH = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
ACCOUNT = "ACC-1"
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def executions(
    count: int, instruments: int, start: int = 0, late: bool = False, at: float | None = None
) -> Iterator[Execution]:
    symbols = [Instrument(symbol=f"SYM{i:04d}", currency="USD") for i in range(instruments)]
    for n in range(start, start + count):
        instrument = symbols[n % instruments]
        k = n // instruments
        seconds = at if at is not None else -1 - n if late else n
        yield Execution(
            broker_execution_id=f"X{n:09d}",
            account_id=ACCOUNT,
            instrument=instrument,
            side=Side.BUY if (k // 2) % 2 == 0 else Side.SELL,
            quantity=Decimal(1 + k % 3),
            price=Decimal(100 + n % 50) + Decimal("0.25"),
            executed_at=EPOCH + dt.timedelta(seconds=seconds),
            fees=Decimal("0.35"),
        )


def trades(count: int) -> Iterator[Trade]:
    for n in range(count):
        opened = EPOCH + dt.timedelta(seconds=n)
        yield Trade(
            broker_trade_id=f"T{n:09d}", account_id=ACCOUNT, symbol=f"SYM{n % 100:04d}", direction=Direction.LONG,
            opened_at=opened, closed_at=opened + dt.timedelta(seconds=30), entry_price=Decimal("100.25"),
            exit_price=Decimal("101.50"), quantity=Decimal(2), realized_pnl=Decimal("2.50"), fees=Decimal("0.70"),
            currency="USD",
        )  # fmt: skip


async def _store(directory: Path, name: str) -> Store:
    store = Store(f"sqlite+aiosqlite:///{directory / name}")
    await store.upgrade()
    from brokersync import Account

    await store.create_connection(
        {"id": "c1", "user_id": "u", "broker": "b", "environment": "live", "status": "active",
         "created_at": NOW, "updated_at": NOW},
        [Account(id=ACCOUNT)],
        NOW,
    )  # fmt: skip
    return store


async def _feed(
    store: Store, items: Iterator[Execution] | Iterator[Trade], batch: int, kind: str
) -> tuple[float, int, float]:
    """(wall seconds, round trips imported, seconds inside store_batch)."""
    started = time.perf_counter()
    page: list[object] = []
    imported = 0
    storing = 0.0

    async def flush() -> None:
        nonlocal imported, storing
        begun = time.perf_counter()
        if kind == "executions":
            counts = await store.store_batch(
                connection_id="c1",
                account_id=ACCOUNT,
                batch=(),
                executions=page,  # type: ignore[arg-type]
                now=NOW,
                cursor=str(len(page)),
            )
        else:
            counts = await store.store_batch(connection_id="c1", account_id=ACCOUNT, batch=page, now=NOW, cursor="x")  # type: ignore[arg-type]
        imported += counts.imported
        storing += time.perf_counter() - begun

    for item in items:
        page.append(item)
        if len(page) >= batch:
            await flush()
            page = []
    if page:
        await flush()
    return time.perf_counter() - started, imported, storing


async def main(size: int, instruments: int, batch: int) -> None:
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        store = await _store(directory, "executions.db")
        seconds, trips, storing = await _feed(store, executions(size, instruments), batch, "executions")
        extra = size // 100
        inc, _, _ = await _feed(store, executions(extra, instruments, start=size), batch, "executions")
        late, _, _ = await _feed(store, executions(instruments, instruments, start=size + extra, late=True), batch,
                                 "executions")  # fmt: skip
        point = size - size // 100 + 0.5  # between two stored executions, 1% back
        recent, _, _ = await _feed(store, executions(instruments, instruments, start=size + extra + instruments,
                                                     at=point), batch, "executions")  # fmt: skip
        await store.aclose()
        baseline = await _store(directory, "trades.db")
        trade_seconds, _, trade_storing = await _feed(baseline, trades(size), batch, "trades")
        await baseline.aclose()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"| {size:,} | {size / seconds:,.0f} exec/s ({trips:,} round trips); store only {size / storing:,.0f} "
          f"| {size / trade_seconds:,.0f} trades/s; store only {size / trade_storing:,.0f} "
          f"| {trade_seconds / seconds:.2f}; store only {trade_storing / storing:.2f} | {extra:,} new: {inc:.2f} s | "
          f"{instruments} late fills (full re-pair of every instrument): {late:.2f} s | "
          f"{instruments} late fills 1% back (re-pair from there): {recent:.2f} s | {rss:,.0f} MB |")  # fmt: skip
    load_after = os.getloadavg()
    print(f"python {platform.python_version()}, {sys.platform}, {os.cpu_count()} CPUs, load average (1 min) "
          f"{load_before[0]:.1f} before, {load_after[0]:.1f} after", file=sys.stderr)  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--instruments", type=int, default=100)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    asyncio.run(main(args.size, args.instruments, args.batch))
