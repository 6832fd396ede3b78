"""Issue 16, through the CLI in subprocesses: a Position History export and an API sync of the same accounts converge.

The export (written for the test from the documented layout, see ``test_files.position_history``)
holds the 11 round trips of the standard book; the fake then trades two more, which only the API
sync sees. In both orders the stored round trips end up exactly the broker's 13, with the API's
fees (the export has none), without duplicates, with exact counts, and each says where it came from.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from ground_truth import expected_trades
from test_files import position_history
from tradovate_fake import T0, USER, FakeServer, FakeTradovate

EXE = str(Path(sys.executable).parent / "brokersync")
ZONE = "America/Chicago"
FORMAT = "tradovate-position-history"


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=180)


def ok(env: dict[str, str], *args: str) -> Any:
    done = cli(env, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def listed(env: dict[str, str]) -> dict[tuple[str, str], dict[str, Any]]:
    """``trades --json``: the stored round trips by (account, pair id), each once (a duplicate fails here)."""
    trades = ok(env, "trades", "--limit", "1000")
    keyed = {(t["account_id"], t["broker_trade_id"]): t for t in trades}
    assert len(keyed) == len(trades)
    return keyed


def fields(trade: dict[str, Any]) -> dict[str, Any]:
    return {
        "symbol": trade["symbol"],
        "direction": trade["direction"],
        "opened_at": dt.datetime.fromisoformat(trade["opened_at"]),
        "closed_at": dt.datetime.fromisoformat(trade["closed_at"]),
        "entry_price": Decimal(trade["entry_price"]),
        "exit_price": Decimal(trade["exit_price"]),
        "quantity": Decimal(trade["quantity"]),
        "realized_pnl": Decimal(trade["realized_pnl"]),
        "fees": Decimal(trade["fees"] or "0"),
        "currency": trade["currency"],
    }


@pytest.fixture
def setting(tmp_path: Path, fake: FakeTradovate):
    export = tmp_path / "Position History.csv"
    export.write_text(position_history(fake, ZONE, bom=True), encoding="utf-8")
    in_file = set(expected_trades(fake))
    # what happened after the export was downloaded: only the API knows it
    fake.trade(70001, "CL", "Sell", [(2, "71.04")], T0 + dt.timedelta(hours=7))
    fake.trade(70001, "CL", "Buy", [(1, "70.98"), (1, "70.99")], T0 + dt.timedelta(hours=7, minutes=4))
    with FakeServer(fake) as server:
        base = {k: v for k, v in os.environ.items() if not k.startswith("BROKERSYNC_")}
        env = {
            **base,
            "BROKERSYNC_DATA_DIR": str(tmp_path / "data"),
            "BROKERSYNC_BASE_URLS": f"tradovate={server.base_url}",
            "BROKERSYNC_CREDENTIAL_PASSWORD": USER["password"],
            "BROKERSYNC_CREDENTIAL_SEC": USER["sec"],
            "COLUMNS": "250",
        }
        connected = ok(
            env, "connect", "tradovate", "-e", "demo", "--set", f"username={USER['username']}",
            "--set", f"cid={USER['cid']}",
        )  # fmt: skip
        yield env, connected["connection_id"], export, in_file


def import_(env: dict[str, str], connection_id: str, export: Path) -> dict[str, Any]:
    [result] = ok(env, "import", str(export), "--connection", connection_id, "--timezone", ZONE)
    assert result["format"] == FORMAT and result["rows"] == 11 and result["invalid"] == 0
    return result


def counts(result: dict[str, Any]) -> tuple[int, int, int]:
    return result["imported"], result["skipped"], result["updated"]


def test_file_first_then_the_api_sync_converges(setting, fake: FakeTradovate):
    env, connection_id, export, in_file = setting
    truth = expected_trades(fake)
    assert len(truth) == 13 and in_file < set(truth)

    first = import_(env, connection_id, export)
    assert counts(first) == (11, 0, 0) and first["status"] == "succeeded"
    stored = listed(env)
    assert set(stored) == in_file
    sha256 = hashlib.sha256(export.read_bytes()).hexdigest()
    lines = sorted(t["source"]["line"] for t in stored.values())
    assert lines == list(range(2, 13))  # one row each, after the header
    for trade in stored.values():
        assert trade["source"] == {
            "kind": "file", "file": export.name, "sha256": sha256, "format": FORMAT, "line": trade["source"]["line"],
        }  # fmt: skip
        assert "opening_source" not in trade  # Tradovate pairs by itself: a reported round trip
        assert Decimal(trade["fees"] or "0") == 0  # the export has no fees

    # The API sync brings the two new round trips and, for the 11 of the file, the fees the
    # export lacks: those records change (updated) and say they now come from the API.
    [synced] = ok(env, "sync", "--all")
    changed = sum(1 for key in in_file if truth[key]["fees"] != 0)
    assert changed > 0
    assert (synced["imported"], synced["skipped"], synced["updated"]) == (2, 11 - changed, changed)
    assert synced["error_count"] == 0

    again = import_(env, connection_id, export)
    assert counts(again) == (0, 11, 0)  # the API's round trips are not overwritten by the file
    stored = listed(env)
    assert {key: fields(t) for key, t in stored.items()} == truth
    for key, trade in stored.items():
        from_file = key in in_file and truth[key]["fees"] == 0
        assert trade["source"]["kind"] == ("file" if from_file else "api")


def test_api_first_then_the_file_converges(setting, fake: FakeTradovate):
    env, connection_id, export, in_file = setting
    truth = expected_trades(fake)
    assert in_file < set(truth)

    [synced] = ok(env, "sync", "--all")
    assert (synced["imported"], synced["updated"], synced["error_count"]) == (13, 0, 0)
    imported = import_(env, connection_id, export)
    assert counts(imported) == (0, 11, 0)
    again = import_(env, connection_id, export)
    assert counts(again) == (0, 11, 0)
    [resynced] = ok(env, "sync", "--all")
    assert (resynced["imported"], resynced["updated"]) == (0, 0)

    stored = listed(env)
    assert {key: fields(t) for key, t in stored.items()} == truth
    assert {t["source"]["kind"] for t in stored.values()} == {"api"}  # the file brought nothing new

    table = cli(env, "trades")
    assert table.returncode == 0 and "source" in table.stdout and " api " in table.stdout
    summary = cli(env, "import", str(export), "--connection", connection_id, "--timezone", ZONE)
    assert summary.returncode == 0, summary.stderr
    [row] = [line for line in summary.stdout.splitlines() if export.name in line]
    cells = [cell.strip() for cell in row.split("│")[3:9]]  # rows, new, same, updated, cancelled, invalid
    assert cells == ["11", "0", "11", "0", "0", "0"]
