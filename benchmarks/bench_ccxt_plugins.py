"""Cold start of `brokersync plugins --json` with brokersync-ccxt installed (95 brokers), in fresh processes.

The target is under 0.5 s: listing reads the plugin's static table and never imports ccxt. Runs
``python -c pass`` interleaved with the listing (same load on the shared machine) and prints both
medians, their ratio and whether ccxt was imported.

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
    baseline = []
    for _ in range(args.runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], capture_output=True, check=True)
        baseline.append(time.perf_counter() - started)
        started = time.perf_counter()
        out = subprocess.run([exe, "plugins", "--json"], capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - started)
    listed = json.loads(out.stdout)
    probe = "import sys, brokersync; brokersync.list_brokers(); print('ccxt' in sys.modules)"
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    median = statistics.median(times)
    base = statistics.median(baseline)
    print("| runs | `python -c pass` s | listing s | min s | max s | vs pass | ccxt imported | under 0.5 s |")
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| {args.runs} | {base:.3f} | {median:.3f} | {min(times):.3f} | {max(times):.3f} | {median / base:.1f}x "
        f"| {imported} | {median < 0.5} |"
    )
    print(f"brokers listed: {sum(len(d.get('brokers', [])) for d in listed)} from {len(listed)} distributions")


if __name__ == "__main__":
    main()
