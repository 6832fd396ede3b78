"""Cold start of `brokersync plugins --json` with brokersync-ccxt installed (95 brokers), in fresh processes.

The target is under 0.5 s: listing reads the plugin's static table and never imports ccxt. Runs
``python -c pass`` interleaved with the listing (same load on the shared machine) and prints both
medians, their ratio and whether ccxt was imported.

    python benchmarks/bench_ccxt_plugins.py [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time


def _run(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user + system of the child) and stdout of one fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, out.stdout


def main() -> None:
    """Time the listing in fresh processes."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    exe = shutil.which("brokersync") or "brokersync"
    times, cpus, baseline, base_cpus = [], [], [], []
    stdout = ""
    for _ in range(args.runs):
        wall, cpu, _ = _run([sys.executable, "-c", "pass"])
        baseline.append(wall)
        base_cpus.append(cpu)
        wall, cpu, stdout = _run([exe, "plugins", "--json"])
        times.append(wall)
        cpus.append(cpu)
    listed = json.loads(stdout)
    probe = "import sys, brokersync; brokersync.list_brokers(); print('ccxt' in sys.modules)"
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    median = statistics.median(times)
    base = statistics.median(baseline)
    cpu, base_cpu = statistics.median(cpus), statistics.median(base_cpus)
    print("| runs | `pass` wall s | listing wall s (min-max) | vs pass | `pass` CPU s | listing CPU s | vs pass |")
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {args.runs} | {base:.3f} | {median:.3f} ({min(times):.3f}-{max(times):.3f}) | {median / base:.1f}x "
        f"| {base_cpu:.3f} | {cpu:.3f} | {cpu / base_cpu:.1f}x |"
    )
    print(f"ccxt imported: {imported}; wall median under 0.5 s: {median < 0.5}")
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print("PYTHONDONTWRITEBYTECODE is set: modules without a .pyc are compiled on every start (run compileall)")
    print(f"brokers listed: {sum(len(d.get('brokers', [])) for d in listed)} from {len(listed)} distributions")


if __name__ == "__main__":
    main()
