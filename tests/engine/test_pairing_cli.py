"""``brokersync positions`` in a real subprocess, on the SQLite file a Python sync filled."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import fillsbroker
import pytest
from brokersync import Vault
from engine_support import Clock, engine_factory

pytestmark = pytest.mark.anyio
EXE = str(Path(sys.executable).parent / "brokersync")


async def test_positions_lists_open_lots_as_json_and_as_a_table(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    keys = Vault.generate_key("k1")
    fills = fillsbroker.FillsApi()
    fillsbroker.register()
    try:
        async with engine_factory(
            url, keys=keys, transports={fillsbroker.KEY: fills.transport()}, clock=Clock()
        ) as make:
            engine = make()
            connection = await engine.connect_broker("cli-user", fillsbroker.KEY, fillsbroker.CREDENTIALS)
            fills.fill("U1", "S1", "sell", 3, "20.00", 1, symbol="MSFT")
            fills.fill("U1", "S2", "sell", 1, "24.00", 2, symbol="MSFT")
            fills.fill("U1", "B1", "buy", 2, "10", 3)
            await engine.sync_broker_trades(connection.connection_id, "cli-user")
    finally:
        fillsbroker.unregister()

    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKERSYNC_")}
    env.update(BROKERSYNC_ENCRYPTION_KEYS=keys, BROKERSYNC_DATA_DIR=str(tmp_path), COLUMNS="200")
    args = [EXE, "positions", "--database-url", url, "--user", "cli-user"]
    as_json = subprocess.run([*args, "--json"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert as_json.returncode == 0, as_json.stderr
    held = {p["symbol"]: p for p in json.loads(as_json.stdout)}
    assert set(held) == {"AAPL", "MSFT"}
    assert (Decimal(held["MSFT"]["quantity"]), Decimal(held["MSFT"]["average_price"])) == (Decimal(-4), Decimal(21))
    assert held["MSFT"]["source"] == "lots"
    assert held["AAPL"]["opened_at"].startswith("2025-02-03T14:33")
    table = subprocess.run([*args, "--connection", connection.connection_id], env=env, capture_output=True,
                           text=True, timeout=120, check=False)  # fmt: skip
    assert table.returncode == 0, table.stderr
    assert "MSFT" in table.stdout and "-4" in table.stdout
