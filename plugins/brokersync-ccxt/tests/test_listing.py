"""Listing: one broker per exchange from the static table, without importing ccxt; the table matches ccxt."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import brokersync

HERE = Path(__file__).resolve().parent.parent


def test_listing_brokers_does_not_import_ccxt() -> None:
    code = (
        "import sys, brokersync; keys = [m.key for m in brokersync.list_brokers()]; "
        "print(keys.count('binance'), 'ccxt' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ)
    assert out.stdout.split() == ["1", "False"]


def test_each_exchange_is_a_broker_with_its_own_credentials_and_limits() -> None:
    okx = brokersync.get_registry().metadata("okx")
    assert [f.name for f in okx.credential_fields] == ["api_key", "secret", "password", "market_types"]
    assert okx.secret_fields == {"api_key", "secret", "password"}
    assert [f.name for f in okx.credential_fields if f.required] == ["api_key", "secret", "password"]
    binance = brokersync.get_registry().metadata("binance")
    # Binance answers per market: the extra markets are a field of the connection, optional and not secret.
    assert [(f.name, f.required, f.secret) for f in binance.credential_fields] == [
        ("api_key", True, True),
        ("secret", True, True),
        ("symbols", False, False),
        ("market_types", False, False),
    ]
    assert [f.name for f in brokersync.get_registry().metadata("kraken").credential_fields] == ["api_key", "secret"]
    assert okx.capabilities.max_history_days == 90
    assert brokersync.get_registry().metadata("binance").environments["sandbox"].startswith("https://testnet")
    assert "window 1 days" in brokersync.get_registry().metadata("binance").description


def test_table_and_entry_points_match_the_installed_ccxt() -> None:
    sys.path.insert(0, str(HERE / "scripts"))
    import generate_table
    from brokersync_ccxt import _table

    version, table = generate_table.build()
    assert (version, table) == (_table.CCXT_VERSION, _table.EXCHANGES), "run scripts/generate_table.py"
    assert generate_table.render_entry_points(table) in (HERE / "pyproject.toml").read_text()
    keys = {m.key for m in brokersync.list_brokers()}
    assert set(table) <= keys
    assert json.dumps(table)  # plain data only
