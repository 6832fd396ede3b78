"""The Python example of docs/brokers/ibkr.md runs, on a statement written here, and prints what it says."""

from __future__ import annotations

import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from flexgen import scenario, statement_xml

DOC = Path(__file__).resolve().parents[3] / "docs" / "brokers" / "ibkr.md"


def test_the_documented_example_runs(tmp_path: Path) -> None:
    [block] = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    fills, accounts = scenario()
    (tmp_path / "flex.xml").write_bytes(statement_xml(fills, accounts))
    out = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = sum(f.transaction_type != "TradeCancel" for f in fills)  # a correction is a row of its own
    first, *figures = out.stdout.splitlines()
    assert first == f"{len(accounts)} accounts, {rows} executions"
    # then IB's fifoPnlRealized of each closing execution, as the core will check it (forex left out)
    printed = {line.split()[0]: Decimal(line.split()[1]) for line in figures}
    assert len(printed) == len(figures)
    assert printed == {
        (f.orig_txid if f.transaction_type == "TradeCorrect" else f.txid): f.fifo_pnl
        for f in fills
        if f.fifo_pnl and f.asset != "CASH" and f.transaction_type != "TradeCancel"
    }


def test_the_doc_states_the_plugin_s_numbers() -> None:
    from brokersync_ibkr.client import RATE_LIMIT_WAIT
    from brokersync_ibkr.plugin import METADATA, MIN_SYNC_INTERVAL

    text = DOC.read_text(encoding="utf-8")
    assert MIN_SYNC_INTERVAL == 6 * 3600 and "**six hours**" in text
    assert RATE_LIMIT_WAIT == 60 and "retried after 60 s" in text
    assert [(r.max_requests, r.window_seconds) for r in METADATA.rate_limits] == [(1, 1.0), (10, 60.0)]
    assert "one request per second and ten per minute per token" in text
