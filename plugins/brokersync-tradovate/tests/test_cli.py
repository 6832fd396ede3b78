"""The done-when of issue 13: the CLI, in subprocesses, against the fake served on loopback."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from ground_truth import expected_trades
from tradovate_fake import T0, USER, FakeServer

EXE = str(Path(sys.executable).parent / "brokersync")


@pytest.fixture
def server(fake):
    with FakeServer(fake) as running:
        yield running


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=180)


def stored(env: dict[str, str]) -> dict[tuple[str, str], dict]:
    listed = cli(env, "trades", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    return {
        (t["account_id"], t["broker_trade_id"]): {
            "symbol": t["symbol"],
            "direction": t["direction"],
            "opened_at": dt.datetime.fromisoformat(t["opened_at"]),
            "closed_at": dt.datetime.fromisoformat(t["closed_at"]),
            "entry_price": Decimal(str(t["entry_price"])),
            "exit_price": Decimal(str(t["exit_price"])),
            "quantity": Decimal(str(t["quantity"])),
            "realized_pnl": Decimal(str(t["realized_pnl"])),
            "fees": Decimal(str(t["fees"])),
            "currency": t["currency"],
        }
        for t in json.loads(listed.stdout)
    }


def test_connect_and_sync_through_the_cli_store_exactly_the_fakes_round_trips(tmp_path, fake, server):
    base = {k: v for k, v in os.environ.items() if not k.startswith("BROKERSYNC_")}
    env = {
        **base,
        "BROKERSYNC_DATA_DIR": str(tmp_path / "data"),
        "BROKERSYNC_BASE_URLS": f"tradovate={server.base_url}",
        "BROKERSYNC_CREDENTIAL_PASSWORD": USER["password"],
        "BROKERSYNC_CREDENTIAL_SEC": USER["sec"],
        "COLUMNS": "200",
    }
    connected = cli(
        env, "connect", "tradovate", "-e", "demo", "--set", f"username={USER['username']}",
        "--set", f"cid={USER['cid']}", "--json",
    )  # fmt: skip
    assert connected.returncode == 0, connected.stderr
    data = json.loads(connected.stdout)
    assert sorted(a["id"] for a in data["accounts"]) == ["70001", "70002"] and data["environment"] == "demo"

    first = cli(env, "sync", "--all", "--json")
    assert first.returncode == 0, first.stderr
    [result] = json.loads(first.stdout)
    assert (result["imported"], result["error_count"], result["status"]) == (11, 0, "succeeded")
    truth = expected_trades(fake)
    assert stored(env) == truth

    fake.trade(70001, "CL", "Sell", [(2, "71.04")], T0 + dt.timedelta(hours=7))
    fake.trade(70001, "CL", "Buy", [(1, "70.98"), (1, "70.99")], T0 + dt.timedelta(hours=7, minutes=4))
    second = cli(env, "sync", "--all", "--json")
    [result] = json.loads(second.stdout)
    assert (result["imported"], result["updated"]) == (2, 0)
    again = cli(env, "sync", "--all", "--json")
    [result] = json.loads(again.stdout)
    assert (result["imported"], result["updated"]) == (0, 0)
    assert stored(env) == expected_trades(fake)
    assert fake.logins == 1  # connect logged in; three CLI syncs reused the stored token

    database = Path(env["BROKERSYNC_DATA_DIR"]) / "brokersync.db"
    blob = b"".join(p.read_bytes() for p in database.parent.glob("brokersync.db*"))
    assert USER["password"].encode() not in blob and USER["sec"].encode() not in blob
