"""Issue 16, through the CLI in subprocesses: a downloaded Flex XML and the API sync of the same accounts converge.

The scenario's fills are split in time: the downloaded statement covers January to 2 February, the
API's (the fake Flex service on loopback) 20 January to the end of March, so three fills are in
both. In both orders the stored round trips are an independent FIFO of all the live fills, the
counts are exact, a re-import imports nothing, and every round trip says where its opening and
closing fills came from: the first arrival of each fill.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fake_flex import FakeFlex
from flexgen import Fill, fifo, live_fills, scenario, statement_xml
from ibkr_support import QUERY, TOKEN

EXE = str(Path(sys.executable).parent / "brokersync")
FILLS, ACCOUNTS = scenario()
FILE_UNTIL = dt.datetime(2024, 2, 3, tzinfo=dt.UTC)
API_FROM = dt.datetime(2024, 1, 20, tzinfo=dt.UTC)
IN_FILE = [f for f in FILLS if f.when < FILE_UNTIL]
BY_API = [f for f in FILLS if f.when >= API_FROM]
BOTH = {f.txid for f in IN_FILE} & {f.txid for f in BY_API}
SYMBOL = {f.conid: f.symbol for f in FILLS}


def executions(fills: list[Fill]) -> set[str]:
    """The execution ids ``fills`` report (a correction is its original's id; a cancel row is none)."""
    return {
        f.orig_txid if f.transaction_type == "TradeCorrect" and f.orig_txid else f.txid
        for f in fills
        if f.transaction_type != "TradeCancel"
    }


def trips(fills: list[Fill]) -> Counter[tuple[str, str, str, str, str, str]]:
    """The round trips an independent FIFO makes of ``fills`` (live ones), as listed by ``trades --json``."""
    direction = {1: "long", -1: "short"}
    return Counter(
        (r.account, SYMBOL[r.conid], str(r.quantity), str(r.entry), str(r.exit), direction[r.direction])
        for r in fifo(live_fills(fills))[0]
    )


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=180)


def ok(env: dict[str, str], *args: str) -> Any:
    done = cli(env, *args, "--json")
    assert done.returncode == 0, done.stderr
    assert TOKEN not in done.stdout + done.stderr
    return json.loads(done.stdout)


def listed(env: dict[str, str]) -> list[dict[str, Any]]:
    trades: list[dict[str, Any]] = ok(env, "trades", "--limit", "1000")
    ids = [(t["account_id"], t["broker_trade_id"]) for t in trades]
    assert len(ids) == len(set(ids))  # no duplicates
    return trades


def same(trade: dict[str, Any]) -> tuple[str, str, str, str, str, str]:
    fields = ("account_id", "symbol", "quantity", "entry_price", "exit_price", "direction")
    key = tuple(str(trade[f]) for f in fields)
    return key  # type: ignore[return-value]


@pytest.fixture
def setting(tmp_path: Path):
    xml = tmp_path / "flex-jan.xml"
    xml.write_bytes(statement_xml(IN_FILE, ACCOUNTS, to_date="20240202"))
    fake = FakeFlex(statements={QUERY: statement_xml(BY_API, ACCOUNTS, from_date="20240120")}, polls=0,
                    enforce_limits=False)  # fmt: skip
    with fake.serve() as url:
        base = {k: v for k, v in os.environ.items() if not k.startswith("BROKERSYNC_")}
        env = {
            **base,
            "BROKERSYNC_DATA_DIR": str(tmp_path / "data"),
            "BROKERSYNC_PLUGINS": "ibkr",
            "BROKERSYNC_BASE_URLS": f"ibkr={url}",
            "BROKERSYNC_CREDENTIAL_TOKEN": TOKEN,
            "COLUMNS": "250",
        }
        connected = ok(env, "connect", "ibkr", "--set", f"query_id={QUERY}")
        yield env, connected["connection_id"], xml


def import_(env: dict[str, str], connection_id: str, xml: Path) -> dict[str, Any]:
    [result] = ok(env, "import", str(xml), "--connection", connection_id)
    assert result["format"] == "ibkr-flex-xml" and result["rows"] == len(IN_FILE) and result["invalid"] == 0
    return result


def counts(result: dict[str, Any]) -> tuple[int, int, int, int]:
    return result["imported"], result["skipped"], result["updated"], result["cancelled"]


def check_sources(trades: list[dict[str, Any]], xml: Path, first: str) -> None:
    """Each fill's source is its first arrival: ``first`` ("file" or "api") for the fills in both."""
    sha256 = hashlib.sha256(xml.read_bytes()).hexdigest()
    file_ids, api_ids = {f.txid for f in IN_FILE}, {f.txid for f in BY_API}

    def expected(txid: str) -> dict[str, Any]:
        came = first if txid in BOTH else ("file" if txid in file_ids else "api")
        assert txid in file_ids | api_ids
        if came == "api":
            return {"kind": "api"}
        return {"kind": "file", "file": xml.name, "sha256": sha256, "format": "ibkr-flex-xml", "line": line_of(txid)}

    def line_of(txid: str) -> int:  # the line of the file's Trade row for this execution
        [line] = [n for n, text in enumerate(xml_lines, 1) if f'transactionID="{txid}"' in text]
        return line

    xml_lines = xml.read_text(encoding="utf-8").splitlines()

    for trade in trades:
        opening, closing = trade["broker_trade_id"].split(">")  # paired by brokersync: its two fills
        assert trade["opening_source"] == expected(opening), trade
        assert trade["source"] == expected(closing), trade


def test_file_first_then_the_api_sync_converges(setting):
    env, connection_id, xml = setting
    everything = trips(FILLS)
    from_file = trips(IN_FILE)
    assert len(BOTH) == 3 and from_file < everything

    first = import_(env, connection_id, xml)
    assert counts(first) == (sum(from_file.values()), 0, 0, 0)
    stored = listed(env)
    assert Counter(map(same, stored)) == from_file
    assert {t["source"]["kind"] for t in stored} == {t["opening_source"]["kind"] for t in stored} == {"file"}

    [synced] = ok(env, "sync", connection_id)
    new = sum(everything.values()) - sum(from_file.values())
    # the API's copies of the three fills in both are skipped; its other fills make the new round trips
    assert (synced["imported"], synced["skipped"], synced["updated"]) == (new, len(BOTH), 0)
    assert synced["error_count"] == 0

    again = import_(env, connection_id, xml)
    assert counts(again) == (0, len(IN_FILE), 0, 0)
    stored = listed(env)
    assert Counter(map(same, stored)) == everything
    check_sources(stored, xml, first="file")
    assert {t["source"]["kind"] for t in stored} == {"file", "api"}


def test_api_first_then_the_file_converges(setting):
    env, connection_id, xml = setting
    everything = trips(FILLS)
    by_api = trips(BY_API)

    [synced] = ok(env, "sync", connection_id)
    assert (synced["imported"], synced["skipped"], synced["updated"]) == (sum(by_api.values()), 0, 0)
    assert Counter(map(same, listed(env))) == by_api

    # the file's earlier fills re-pair AAPL (the API alone saw a short sale; it was a close)
    first = import_(env, connection_id, xml)
    assert (first["skipped"], first["updated"]) == (len(BOTH), 0)
    assert first["imported"] - first["cancelled"] == sum(everything.values()) - sum(by_api.values())
    again = import_(env, connection_id, xml)
    assert counts(again) == (0, len(IN_FILE), 0, 0)
    [resynced] = ok(env, "sync", connection_id)
    # every execution the API sends again is stored unchanged
    assert (resynced["imported"], resynced["updated"], resynced["skipped"]) == (0, 0, len(executions(BY_API)))

    stored = listed(env)
    assert Counter(map(same, stored)) == everything
    check_sources(stored, xml, first="api")
