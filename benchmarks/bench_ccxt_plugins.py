"""Cold start of `brokersync plugins --json` with brokersync-ccxt installed (95 brokers), in fresh processes.

The target is under 0.5 s: listing reads the plugin's static table and never imports ccxt. Prints
the median of N runs and whether ccxt was imported.

    python benchmarks/bench_ccxt_plugins.py [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time


def main() -> None:
    """Time the listing in fresh processes."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    exe = shutil.which("brokersync") or "brokersync"
    times = []
    for _ in range(args.runs):
        started = time.perf_counter()
        out = subprocess.run([exe, "plugins", "--json"], capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - started)
    listed = json.loads(out.stdout)
    probe = "import sys, brokersync; brokersync.list_brokers(); print('ccxt' in sys.modules)"
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    median = statistics.median(times)
    print("| runs | median s | max s | ccxt imported | under 0.5 s |")
    print("|---|---|---|---|---|")
    print(f"| {args.runs} | {median:.3f} | {max(times):.3f} | {imported} | {median < 0.5} |")
    print(f"entries listed: {len(listed) if isinstance(listed, list) else 'n/a'}")


if __name__ == "__main__":
    main()
