"""File import throughput: a generic CSV through ``BrokerSync.import_file`` against a bare ``csv.reader``.

    python benchmarks/bench_import.py --rows 100000
    python benchmarks/bench_import.py --rows 1000000

The file (``--instruments`` symbols, buys and sells alternating in lots of 1-3, so every other fill
closes something) is written once; the same process then times ``csv.reader`` over it (the
baseline), and the whole import: sniffing, the checking pass, the storing pass with dedupe, FIFO
pairing and the audit row, into a fresh SQLite file. Peak RSS is printed: run each size in its own
process to compare. The load average is printed too (the machine is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import brokersync

EPOCH = dt.datetime(2024, 1, 2, 14, 30, tzinfo=dt.UTC)


def write_file(path: Path, rows: int, instruments: int) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["Date", "Time", "Symbol", "Quantity", "Price", "Side", "Commission", "Execution ID", "Account"]
        )
        for i in range(rows):
            when = EPOCH + dt.timedelta(seconds=i)
            symbol = f"SYM{i % instruments}"
            side = "Buy" if (i // instruments) % 2 == 0 else "Sell"
            quantity = 1 + i % 3 if side == "Buy" else 1 + (i - instruments) % 3
            price = f"{100 + (i % 997) / 100:.2f}"
            writer.writerow([when.strftime("%Y-%m-%d"), when.strftime("%H:%M:%S"), symbol, quantity, price, side,
                             "0.35", f"x{i}", "U1"])  # fmt: skip


def bare(path: Path) -> float:
    started = time.perf_counter()
    with path.open(newline="") as handle:
        for _ in csv.reader(handle):
            pass
    return time.perf_counter() - started


async def imported(path: Path, directory: Path) -> tuple[float, brokersync.ImportResult]:
    url = f"sqlite+aiosqlite:///{directory / 'bench.db'}"
    async with brokersync.BrokerSync(url, encryption_keys=brokersync.Vault.generate_key("k1")) as engine:
        await engine.connect_files("bench", "bench")  # the schema and the file connection: not the import's cost
        started = time.perf_counter()
        result = await engine.import_file(path, user_id="bench", broker="bench", format="generic-csv", timezone="UTC")
        return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--instruments", type=int, default=50)
    args = parser.parse_args()

    class BenchBroker:
        @brokersync.hookimpl
        def broker_metadata(self) -> brokersync.BrokerMetadata:
            return brokersync.BrokerMetadata(key="bench", name="Bench", auth_type="file", credential_fields=(),
                                             environments={})  # fmt: skip

        @brokersync.hookimpl
        def file_formats(self) -> list[object]:
            return []

    brokersync.register_broker("bench", BenchBroker)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
    )
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        path = directory / "fills.csv"
        write_file(path, args.rows, args.instruments)
        baseline = bare(path)
        seconds, result = asyncio.run(imported(path, directory))
        size = path.stat().st_size
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"rows: {args.rows:,} ({size:,} bytes)")
    print(f"csv.reader: {args.rows / baseline:,.0f} rows/s")
    print(f"import:     {args.rows / seconds:,.0f} rows/s ({result.imported:,} round trips, {result.skipped} skipped)")
    print(f"ratio: {baseline / seconds:.3f} of bare csv.reader (target >= 0.25)")
    print(f"peak RSS: {rss:.0f} MB; load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
