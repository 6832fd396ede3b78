"""Cold start of `brokersync plugins` with several plugins installed.

Generates N small broker plugin distributions (real `*.dist-info` directories with entry points, as
pip would install them) in a temporary site directory, then times fresh processes:

* baseline: `python -c pass` (interpreter start-up on this machine),
* `brokersync --version` (CLI start, no plugin loaded),
* `brokersync plugins --json` and `brokersync plugins` (table) with N plugins discovered.

Prints a markdown table with medians and ratios against the baseline.

    python benchmarks/bench_cold_start.py [--plugins 8] [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PLUGIN = """
from brokersync import AuthResult, BrokerMetadata, CredentialField, hookimpl


@hookimpl
def broker_metadata():
    return BrokerMetadata(
        key="{key}",
        name="Bench {key}",
        auth_type="token",
        credential_fields=[CredentialField(name="token", secret=True)],
        environments={{"live": "https://{key}.invalid"}},
    )


@hookimpl
async def authenticate(ctx, credentials):
    return AuthResult(access_token=credentials["token"])


@hookimpl
async def get_accounts(ctx, auth):
    return []


@hookimpl
async def get_trades(ctx, auth, account):
    return []
"""


def make_plugins(site: Path, count: int) -> None:
    for index in range(count):
        key = f"bench{index}"
        package = site / f"brokersync_{key}"
        package.mkdir()
        (package / "__init__.py").write_text(PLUGIN.format(key=key))
        info = site / f"brokersync_{key}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: brokersync-{key}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[brokersync.brokers]\n{key} = brokersync_{key}\n")
        (info / "RECORD").write_text("")


def timed(command: list[str], env: dict[str, str], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plugins", type=int, default=8)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    exe = shutil.which("brokersync", path=str(Path(sys.executable).parent)) or "brokersync"
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp)
        make_plugins(site, args.plugins)
        env = {**os.environ, "PYTHONPATH": str(site), "COLUMNS": "160"}
        env.pop("BROKERSYNC_PLUGINS", None)
        listed = subprocess.run([exe, "plugins", "--json"], env=env, check=True, capture_output=True, text=True)
        assert all(f"bench{i}" in listed.stdout for i in range(args.plugins)), listed.stdout
        rows = [
            ("python -c pass (baseline)", timed([sys.executable, "-c", "pass"], env, args.runs)),
            ("brokersync --version", timed([exe, "--version"], env, args.runs)),
            (
                f"brokersync plugins --json ({args.plugins} bench plugins + installed)",
                timed([exe, "plugins", "--json"], env, args.runs),
            ),
            (
                f"brokersync plugins (table, {args.plugins} bench plugins + installed)",
                timed([exe, "plugins"], env, args.runs),
            ),
        ]
    base = rows[0][1]
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"Machine: {machine}, {platform.platform()}")
    print(f"Median of {args.runs} fresh processes each.\n")
    print("| command | median | vs baseline |")
    print("|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds * 1000:.0f} ms | {seconds / base:.1f}x |")


if __name__ == "__main__":
    main()
