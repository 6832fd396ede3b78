"""End to end through ``BrokerSync`` on a real SQLite file, and through the CLI in subprocesses."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from brokersync import BrokerSync, Vault
from brokersync.testing import FakeClock
from fake_v20 import PRACTICE_TOKEN, FakeV20, FakeV20Server, error
from histories import FIFO, HEDGE, expected

pytestmark = pytest.mark.anyio

EXE = str(Path(sys.executable).parent / "brokersync")


def nine_round_trips(fake: FakeV20) -> None:
    """Nine new round trips on the FIFO account: 36 transactions, several sinceid pages."""
    for n in range(9):
        fake.order(FIFO, "USD_JPY", 1000 * (n + 1), "150.000")
        fake.order(FIFO, "USD_JPY", -1000 * (n + 1), "150.250")


KEYS = ("symbol", "direction", "quantity", "entry_price", "exit_price", "realized_pnl", "fees", "currency", "closed_at")


def stored_rows(trades: list[Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(t.account_id, t.broker_trade_id): {k: getattr(t, k) for k in KEYS} for t in trades}


def fake_rows(fake: FakeV20) -> dict[tuple[str, str], dict[str, Any]]:
    rows = {}
    for account in (FIFO, HEDGE):
        for wire in fake.closed_trades(account):
            want = expected(wire, account)
            rows[(account, wire["id"])] = {k: want[k] for k in KEYS}
    return rows


async def test_connect_sync_schedule_and_resync(tmp_path: Path, fake: FakeV20) -> None:
    clock = FakeClock(dt.datetime(2026, 3, 5, 12, 0, tzinfo=dt.UTC))
    sleeps = clock.sleeps
    url = f"sqlite+aiosqlite:///{tmp_path / 'oanda.db'}"
    async with BrokerSync(
        url,
        encryption_keys=Vault.generate_key("k1"),
        transports={"oanda": fake.transport()},
        clock=clock,
        monotonic=clock.monotonic,
        sleep=clock.sleep,
    ) as engine:
        await engine.upgrade_database()
        connection = await engine.connect_broker("ann", "oanda", {"token": PRACTICE_TOKEN}, environment="practice")
        cid = connection.connection_id
        first = await engine.sync_broker_trades(cid, "ann")
        stored = [t async for t in engine.iter_trades(connection_id=cid)]
        assert first.status.value == "succeeded" and first.imported == len(stored) == len(fake_rows(fake))
        assert stored_rows(stored) == fake_rows(fake)
        paid = sum((Decimal(f["commission"]) for f in fake.fills(FIFO)), Decimal(0))
        open_share = sum(abs(Decimal(t["currentUnits"])) * Decimal("0.00002") for t in fake.open_trades(FIFO))
        assert sum(t.fees for t in stored) == paid - open_share

        nine_round_trips(fake)
        fake.fail_next(error(429, "Rate limit violation", headers={"Retry-After": "7"}))
        before = len(fake.requests)
        scheduled = await engine.sync_broker_trades(cid, "ann", trigger="scheduled")
        assert (scheduled.imported, scheduled.updated) == (9, 0)
        assert sum(sleeps) >= 7  # the 429's Retry-After was honoured
        made = [p.rsplit("/", 1)[-1] for p, _, _ in fake.requests[before:]]
        pages = -(-36 // fake.sinceid_cap)
        # 429 + listing + 2 summaries, sinceid pages (FIFO), 1 trades by id + 1 open trades (FIFO), nothing for HEDGE
        assert sorted(made) == sorted(
            ["accounts", "accounts", "summary", "summary", *["sinceid"] * pages, "trades", "trades"]
        )
        stored = [t async for t in engine.iter_trades(connection_id=cid)]
        assert stored_rows(stored) == fake_rows(fake)

        before = len(fake.requests)
        again = await engine.sync_broker_trades(cid, "ann", trigger="scheduled")
        assert (again.imported, again.updated, again.status.value) == (0, 0, "succeeded")
        assert len(fake.requests) - before == 1 + 2  # the account listing plus one summary per account


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)


def test_cli_connect_sync_and_scheduled_resync(tmp_path: Path, fake: FakeV20) -> None:
    with FakeV20Server(fake) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BROKERSYNC_")}
        env |= {
            "BROKERSYNC_DATA_DIR": str(tmp_path / "data"),
            "BROKERSYNC_PLUGINS": "oanda",
            "BROKERSYNC_BASE_URLS": f"oanda={server.base_url}",
            "COLUMNS": "200",
        }
        refused = cli(env | {"BROKERSYNC_CREDENTIAL_TOKEN": "not-the-token"}, "connect", "oanda", "-e", "practice")
        assert refused.returncode != 0 and "other environment" in refused.stderr
        assert "not-the-token" not in refused.stdout + refused.stderr and "Traceback" not in refused.stderr

        secret_on_command_line = cli(env, "connect", "oanda", "-e", "practice", "--set", f"token={PRACTICE_TOKEN}")
        assert secret_on_command_line.returncode == 2 and "is a secret" in secret_on_command_line.stderr

        connected = cli(
            env | {"BROKERSYNC_CREDENTIAL_TOKEN": PRACTICE_TOKEN}, "connect", "oanda", "-e", "practice", "--json"
        )
        assert connected.returncode == 0, connected.stderr
        data = json.loads(connected.stdout)
        assert sorted(a["id"] for a in data["accounts"]) == [FIFO, HEDGE] and data["environment"] == "practice"

        first = cli(env, "sync", data["connection_id"], "--json")
        assert first.returncode == 0, first.stderr
        assert json.loads(first.stdout)[0]["imported"] == len(fake_rows(fake))

        nine_round_trips(fake)
        scheduled = cli(env, "sync", "--all", "--json")
        assert scheduled.returncode == 0, scheduled.stderr
        assert json.loads(scheduled.stdout)[0]["imported"] == 9

        before = len(fake.requests)
        again = cli(env, "sync", "--all", "--json")
        assert json.loads(again.stdout)[0]["imported"] == 0
        assert len(fake.requests) - before == 3

        exported = cli(env, "trades", "--format", "json")
        assert exported.returncode == 0, exported.stderr
        rows = {(r["account_id"], r["broker_trade_id"]): r for r in json.loads(exported.stdout)}
        assert rows.keys() == fake_rows(fake).keys()
        for key, want in fake_rows(fake).items():
            assert Decimal(rows[key]["realized_pnl"]) == want["realized_pnl"]
            assert Decimal(rows[key]["fees"]) == want["fees"]
