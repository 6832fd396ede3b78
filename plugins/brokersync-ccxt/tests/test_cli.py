"""``brokersync connect binance`` and ``sync`` in subprocesses, against the Binance fake on loopback.

Secrets come from the environment (``BROKERSYNC_CREDENTIAL_API_KEY`` / ``_SECRET``) or a prompt, never
from ``--set``; ccxt's own field name (``apiKey``) is refused with the right one named (an alias would
let a secret through ``--set``, past the CLI's refusal); a rejected key is one line and exit 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from ccxt_engine_support import credentials, fifo, make_fake
from fakes import FakeBinance
from loopback import FakeServer

EXE = str(Path(sys.executable).parent / "brokersync")
API_KEY = "key-1"
SECRET = "c2VjcmV0LXNlY3JldA=="


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=180)


@pytest.fixture
def fake() -> FakeBinance:
    return FakeBinance()


@pytest.fixture
def env(tmp_path: Path, fake: FakeBinance):
    with FakeServer(fake) as server:
        base = {k: v for k, v in os.environ.items() if not k.startswith("BROKERSYNC_")}
        yield base | {
            "BROKERSYNC_DATA_DIR": str(tmp_path / "data"),
            "BROKERSYNC_PLUGINS": "binance",
            "BROKERSYNC_BASE_URLS": f"binance={server.base_url}",
            "COLUMNS": "200",
        }


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The error a user reads: a single ``Error:`` line (log lines aside), never a traceback."""
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_connect_refuses_secrets_on_the_command_line_and_ccxts_field_names(env, fake) -> None:
    on_the_line = cli(env, "connect", "binance", "--set", f"api_key={API_KEY}", "--set", f"secret={SECRET}")
    assert on_the_line.returncode == 2
    assert "'api_key' is a secret" in one_line_error(on_the_line)
    assert "BROKERSYNC_CREDENTIAL_API_KEY" in on_the_line.stderr

    ccxt_name = cli(env | {"BROKERSYNC_CREDENTIAL_SECRET": SECRET}, "connect", "binance", "--set", "apiKey=key-1")
    assert ccxt_name.returncode == 2
    message = one_line_error(ccxt_name)
    assert "unknown field(s) apiKey" in message and "api_key" in message
    assert "key-1" not in ccxt_name.stdout + ccxt_name.stderr and SECRET not in ccxt_name.stdout + ccxt_name.stderr
    assert fake.requests == []  # refused before any request


def test_a_rejected_key_is_one_line_and_exit_1_and_nothing_is_stored(env, fake) -> None:
    wrong = env | {"BROKERSYNC_CREDENTIAL_API_KEY": "not-the-key", "BROKERSYNC_CREDENTIAL_SECRET": SECRET}
    refused = cli(wrong, "connect", "binance")
    assert refused.returncode == 1
    message = one_line_error(refused)
    assert "binance" in message.lower()
    bad_secret = env | {
        "BROKERSYNC_CREDENTIAL_API_KEY": API_KEY,
        "BROKERSYNC_CREDENTIAL_SECRET": "bm90LXRoZS1zZWNyZXQ=",
    }
    refused_secret = cli(bad_secret, "connect", "binance")
    assert refused_secret.returncode == 1 and "binance" in one_line_error(refused_secret).lower()
    for result in (refused, refused_secret):
        shown = result.stdout + result.stderr
        assert "not-the-key" not in shown and SECRET not in shown and "bm90LXRoZS1zZWNyZXQ=" not in shown
    listed = cli(env, "connections", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout) == []


def test_connect_and_sync_store_every_fill_and_the_round_trips(env, fake, tmp_path) -> None:
    secrets = {"BROKERSYNC_CREDENTIAL_API_KEY": API_KEY, "BROKERSYNC_CREDENTIAL_SECRET": SECRET}
    connected = cli(env | secrets, "connect", "binance", "--set", "symbols=ETH/USDT,ETH/BTC", "--json")
    assert connected.returncode == 0, connected.stderr
    data = json.loads(connected.stdout)
    assert [a["id"] for a in data["accounts"]] == ["binance"]

    first = cli(env, "sync", data["connection_id"], "--json")
    assert first.returncode == 0, first.stderr
    spot = [r for r in fake.truth() if ":" not in r["symbol"]]  # spot only: market_types was not asked for
    trips, _ = fifo(spot)
    assert json.loads(first.stdout)[0]["imported"] == len(trips)

    again = cli(env, "sync", "--all", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)[0]["imported"] == 0

    exported = cli(env, "trades", "--format", "json")
    assert exported.returncode == 0, exported.stderr
    rows = {r["broker_trade_id"]: r for r in json.loads(exported.stdout)}
    assert rows.keys() == trips.keys()
    # BTC from the balance, ETH/USDT and ETH/BTC from the connection's symbols field
    assert {r["symbol"] for r in rows.values()} == {"BTC/USDT", "ETH/USDT", "ETH/BTC"}
    for trip_id, want in trips.items():
        assert Decimal(str(rows[trip_id]["realized_pnl"])) == want["realized_pnl"]
        assert rows[trip_id]["currency"] == want["currency"]

    every_output = connected.stdout + connected.stderr + first.stdout + first.stderr + again.stderr
    assert SECRET not in every_output
    database = Path(env["BROKERSYNC_DATA_DIR"]) / "brokersync.db"
    blob = b"".join(p.read_bytes() for p in database.parent.glob("brokersync.db*"))
    assert SECRET.encode() not in blob and b"key-1" not in blob


@pytest.mark.parametrize("key", ["coinbase"])
def test_connect_and_sync_other_exchanges_through_the_cli(tmp_path, key) -> None:
    """Coinbase (a JWT per request) through the CLI, as Binance above.

    Kraken, Bybit and OKX are left to the engine tests (test_engine.py, on the virtual clock): the CLI
    runs on the real clock, so Kraken's limits cost ~30 s of waiting here, and the fakes' histories
    are dated around the tests' fixed one (OKX serves 90 days back from now; Bybit's walk is ~200
    requests of 7-day windows on the real limiter).
    """
    fake = make_fake(key)
    secrets = {f"BROKERSYNC_CREDENTIAL_{k.upper()}": v for k, v in credentials(key, fake).items()}
    with FakeServer(fake) as server:
        base = {k: v for k, v in os.environ.items() if not k.startswith("BROKERSYNC_")}
        env = base | {
            "BROKERSYNC_DATA_DIR": str(tmp_path / "data"),
            "BROKERSYNC_PLUGINS": key,
            "BROKERSYNC_BASE_URLS": f"{key}={server.base_url}",
        }
        connected = cli(env | secrets, "connect", key, "--json")
        assert connected.returncode == 0, connected.stderr
        first = cli(env, "sync", json.loads(connected.stdout)["connection_id"], "--json")
        assert first.returncode == 0, first.stderr
        trips, _ = fifo(fake.truth())  # type: ignore[attr-defined]
        assert json.loads(first.stdout)[0]["imported"] == len(trips)
        exported = cli(env, "trades", "--format", "json")
        rows = {r["broker_trade_id"]: r for r in json.loads(exported.stdout)}
        assert {k: (Decimal(str(r["realized_pnl"])), r["currency"]) for k, r in rows.items()} == {
            k: (t["realized_pnl"], t["currency"]) for k, t in trips.items()
        }
        again = cli(env, "sync", "--all", "--json")
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)[0]["imported"] == 0
