"""The command-line walk-through in docs/user-guide.md is a shell script this test runs, as written.

It starts the simulated broker on loopback (port 8765, the sim broker's documented ``local``
environment), connects, syncs, exports CSV and shows the audit trail, in an empty directory with a
temporary ``BROKERSYNC_DATA_DIR``. Then it checks what a reader would look at: the CSV holds every
trade the simulated broker has, with exact decimal strings.
"""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from tests.docs._markdown import CodeBlock, code_blocks

ROOT = Path(__file__).resolve().parents[2]
USER_GUIDE = ROOT / "docs" / "user-guide.md"
PORT = 8765  # fixed by the sim broker's `local` environment
SIM_TRADES = 3 * 1000  # `brokersync-sim serve` defaults: 3 accounts, 1000 trades each


def walkthrough() -> CodeBlock:
    blocks = [b for b in code_blocks(USER_GUIDE) if b.language in ("bash", "sh") and "brokersync-sim serve" in b.code]
    assert len(blocks) == 1, "docs/user-guide.md should show exactly one CLI walk-through with brokersync-sim serve"
    return blocks[0]


def _wait_for_free_port(deadline: float) -> None:
    while True:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", PORT))
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"port {PORT} stays in use; the documented walk-through needs it")
                time.sleep(0.5)
                continue
            return


def test_the_walkthrough_runs_as_written(tmp_path: Path) -> None:
    block = walkthrough()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKERSYNC_")}
    env["BROKERSYNC_DATA_DIR"] = str(tmp_path / "data")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONPATH", None)
    # -e: any failing command fails the test; the trap stops the background server on the way out.
    script = "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + block.code
    _wait_for_free_port(time.monotonic() + 60)
    process = subprocess.Popen(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # so a timeout can stop the server too
    )
    try:
        stdout, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert process.returncode == 0, f"{block.where} failed\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
    assert "(sim, local): active" in stdout  # connect
    # brokersync never echoes the secret (the fake server's banner prints its public demo password).
    ours = [line for line in (stdout + stderr).splitlines() if not line.startswith("sim broker API on")]
    assert not [line for line in ours if "sim-password" in line]

    with (tmp_path / "trades.csv").open(newline="", encoding="utf-8") as exported:
        rows = list(csv.DictReader(exported))
    assert len(rows) == SIM_TRADES
    assert len({(r["account_id"], r["broker_trade_id"]) for r in rows}) == SIM_TRADES  # no duplicates
    assert {r["currency"] for r in rows} == {"USD", "EUR"}
    for row in rows[:50]:
        Decimal(row["entry_price"])  # exact decimal text, never a float repr like 80.9600000001
        assert "e" not in row["entry_price"].lower()
        assert row["opened_at"].endswith("+00:00")
