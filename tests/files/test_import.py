"""brokersync import end to end: the CLI in subprocesses and the Python API, on a real SQLite file.

Files are written here from the documented layouts (NinjaTrader's grids, brokersync's generic CSV).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

EXE = str(Path(sys.executable).parent / "brokersync")

GRID = (
    "Instrument,Action,Quantity,Price,Time,ID,E/X,Position,Order ID,Name,Commission,Rate,Account,Connection\n"
    "ES 12-24,Buy,2,5850.25,11/5/2024 8:30:12 AM,e1,Entry,,o1,Entry,$4.08,1,Sim101,R\n"
    "ES 12-24,Buy,1,5851.50,11/5/2024 8:31:00 AM,e2,Entry,,o2,Entry,$2.04,1,Sim101,R\n"
    "ES 12-24,Sell,3,5855.75,11/5/2024 9:02:44 AM,e3,Exit,,o3,Exit,$6.12,1,Sim101,R\n"
    "NQ 12-24,Sell,1,20500,11/5/2024 9:10:00 AM,e4,Entry,,o4,Entry,$2.04,1,Sim101,R\n"
)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("BROKERSYNC_")}
    return {**base, "BROKERSYNC_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "200"}


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)


def _import(env, *args) -> list[dict]:
    result = cli(env, "import", *args, "--json")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout)


def test_import_pairs_fills_reimport_imports_nothing_and_positions_show_what_is_open(env, tmp_path):
    grid = tmp_path / "NinjaTrader Grid 2024-11-05.csv"
    grid.write_text(GRID, encoding="utf-8-sig")
    (first,) = _import(env, str(grid), "--broker", "ninjatrader", "--timezone", "America/Chicago")
    assert first["format"] == "ninjatrader-executions"
    assert first["rows"] == 4 and first["problem_count"] == 0
    # e1 (2 lots) and e2 (1 lot) closed by e3: two round trips, FIFO
    assert first["imported"] == 2 and first["status"] == "succeeded"

    (again,) = _import(env, str(grid), "--broker", "ninjatrader", "--timezone", "America/Chicago")
    assert again["imported"] == 0 and again["updated"] == 0
    assert again["connection_id"] == first["connection_id"]  # the same file-only connection

    listed = cli(env, "trades", "--connection", first["connection_id"], "--format", "json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert sorted((Decimal(r["quantity"]), Decimal(r["realized_pnl"]), Decimal(r["fees"])) for r in rows) == sorted(
        [
            (Decimal(2), (Decimal("5855.75") - Decimal("5850.25")) * 2 * 50, Decimal("4.08") + Decimal("4.08")),
            (Decimal(1), (Decimal("5855.75") - Decimal("5851.50")) * 1 * 50, Decimal("2.04") + Decimal("2.04")),
        ]
    )
    positions = cli(env, "positions", "--connection", first["connection_id"], "--json")
    assert positions.returncode == 0, positions.stderr
    (nq,) = json.loads(positions.stdout)
    assert Decimal(nq["quantity"]) == Decimal(-1) and nq["symbol"] == "NQ 12-24"
    runs = json.loads(cli(env, "runs", "--json").stdout)
    assert [r["trigger"] for r in runs].count("import") == 2

    synced = cli(env, "sync", first["connection_id"])
    assert synced.returncode != 0 and "file-only" in synced.stderr and "Traceback" not in synced.stderr


def test_dry_run_stores_nothing(env, tmp_path):
    grid = tmp_path / "grid.csv"
    grid.write_text(GRID)
    (result,) = _import(env, str(grid), "--broker", "ninjatrader", "--timezone", "UTC", "--dry-run")
    assert result["dry_run"] is True and result["rows"] == 4 and result["run_id"] is None
    listed = cli(env, "trades", "--connection", result["connection_id"], "--format", "json")
    assert json.loads(listed.stdout or "[]") == []


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        (b"When,Who\n1,2\n", ("--broker", "ninjatrader", "--timezone", "UTC"), "not in a format brokersync knows here"),
        (bytes(range(256)) * 50, ("--broker", "ninjatrader"), "binary"),
        (GRID.encode(), ("--broker", "ninjatrader"), "--timezone"),
        (GRID.encode(), ("--broker", "ninjatrader", "--format", "nosuch"), "no file format 'nosuch'"),
        (
            b"Instrument,Action,Quantity,Price,Time,E/X,Trade number,Market pos.,Entry price,Exit price,Entry time\n"
            b"ES,Buy,1,1,2024-11-05 09:30:00,Entry,1,Long,1,2,2024-11-05 09:30:00\n",
            ("--broker", "ninjatrader", "--timezone", "UTC"),
            "could be ninjatrader-executions, ninjatrader-trades: say which with --format",
        ),
        (b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'aaaa'>]><x>&a;</x>", ("--broker", "ninjatrader"), "not in"),
    ],
    ids=["unknown", "binary", "no-timezone", "unknown-format-name", "ambiguous", "xml-entities"],
)
def test_bad_files_get_one_line_exit_2_and_store_nothing(env, tmp_path, content, args, message):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(content)
    result = cli(env, "import", str(bad), *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    # Besides the warning naming the key file a new data directory gets (back it up), one error line.
    lines = [line for line in result.stderr.strip().splitlines() if "Created a new encryption key file" not in line]
    assert len(lines) == 1, result.stderr


def test_a_malformed_row_is_reported_by_line_and_the_rest_imported(env, tmp_path):
    text = GRID.replace("NQ 12-24,Sell,1,20500", "NQ 12-24,Sell,x,20500")
    grid = tmp_path / "grid.csv"
    grid.write_text(text)
    (result,) = _import(env, str(grid), "--broker", "ninjatrader", "--timezone", "UTC")
    assert result["rows"] == 3 and result["imported"] == 2 and result["status"] == "partial"
    assert result["problems"] == ["line 5: Quantity: 'x' is not a number"]


def test_overlapping_generic_csv_exports_converge(env, tmp_path):
    header = "Date,Time,Symbol,Quantity,Price,Side,Commission,Execution ID,Account\n"
    rows = [
        "2024-11-05,09:30:00,AAPL,100,225.50,Buy,1.00,x1,U1\n",
        "2024-11-05,10:00:00,AAPL,50,226.00,Sell,0.50,x2,U1\n",
        "2024-11-05,11:00:00,AAPL,50,227.00,Sell,0.50,x3,U1\n",
    ]
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text(header + rows[0] + rows[1])
    second.write_text(header + rows[1] + rows[2])
    (a,) = _import(
        env, str(first), "--broker", "ninjatrader", "--format", "generic-csv", "--timezone", "America/New_York"
    )
    (b,) = _import(
        env, str(second), "--broker", "ninjatrader", "--format", "generic-csv", "--timezone", "America/New_York"
    )
    assert (a["imported"], b["imported"]) == (1, 1)
    listed = json.loads(cli(env, "trades", "--connection", a["connection_id"], "--format", "json").stdout)
    assert sorted(Decimal(r["realized_pnl"]) for r in listed) == [Decimal("25.00"), Decimal("75.00")]


def test_each_record_keeps_its_source(tmp_path):
    import brokersync

    perf = tmp_path / "perf.csv"
    perf.write_text(
        "Trade number,Instrument,Account,Strategy,Market pos.,Qty,Entry price,Exit price,Entry time,Exit time,"
        "Entry name,Exit name,Profit,Cum. net profit,Commission,MAE,MFE,ETD,Bars\n"
        "1,ES 12-24,Sim101,,Long,1,5850,5851,11/5/2024 8:30:12 AM,11/5/2024 9:02:44 AM,E,X,$50,$50,$4.08,0,0,0,1\n"
    )

    async def main():
        url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
        async with brokersync.BrokerSync(url, encryption_keys=brokersync.Vault.generate_key("k1")) as engine:
            result = await engine.import_file(perf, user_id="u", broker="ninjatrader", timezone="UTC")
            assert result.imported == 1
            (trade,) = [t async for t in engine.iter_trades(user_id="u")]
            return result, trade

    result, trade = asyncio.run(main())
    source = trade.raw["brokersync_source"]
    assert source == {
        "kind": "file",
        "file": "perf.csv",
        "sha256": result.sha256,
        "format": "ninjatrader-trades",
        "line": 2,
    }
    # and the listing says so: a round trip NinjaTrader reported, so one source
    assert trade.source == brokersync.RecordSource(
        kind="file", file="perf.csv", sha256=result.sha256, format="ninjatrader-trades", line=2
    )
    assert trade.opening_source is None and str(trade.source) == "perf.csv:2"


def _paired_sources(url: str, tmp_path: Path) -> list[tuple[str, str | None]]:
    import brokersync

    fills = tmp_path / "fills.csv"
    fills.write_text(
        "Date,Time,Symbol,Quantity,Price,Side,Account\n"
        "2024-11-05,09:30:00,AAPL,2,225.50,Buy,U1\n"
        "2024-11-05,10:00:00,AAPL,1,226.00,Sell,U1\n"
        "2024-11-05,11:00:00,AAPL,1,227.00,Sell,U1\n"
    )

    async def main() -> list[tuple[str, str | None]]:
        async with brokersync.BrokerSync(url, encryption_keys=brokersync.Vault.generate_key("k1")) as engine:
            await engine.upgrade_database()
            result = await engine.import_file(fills, user_id="u", broker="ninjatrader", format="generic-csv",
                                              timezone="UTC")  # fmt: skip
            assert result.imported == 2
            trades = [t async for t in engine.iter_trades(user_id="u")]
            assert {t.source.sha256 for t in trades} == {result.sha256}
            return sorted((str(t.source), str(t.opening_source)) for t in trades)

    return asyncio.run(main())


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def test_paired_round_trips_say_which_lines_their_fills_came_from(tmp_path, database):
    if database == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    else:
        sys.path.insert(0, str(Path(__file__).parent.parent))  # tests/_postgres.py: an embedded server
        from _postgres import fresh_database

        url = fresh_database()
    # line 2 opened 2 shares; lines 3 and 4 closed one each
    assert _paired_sources(url, tmp_path) == [("fills.csv:3", "fills.csv:2"), ("fills.csv:4", "fills.csv:2")]


def test_trades_export_as_generic_csv_imports_into_another_installation(env, tmp_path):
    grid = tmp_path / "grid.csv"
    grid.write_text(GRID)
    (first,) = _import(env, str(grid), "--broker", "ninjatrader", "--timezone", "America/Chicago")
    exported = tmp_path / "export.csv"
    written = cli(env, "trades", "--connection", first["connection_id"], "--format", "generic-csv", "-o", str(exported))
    assert written.returncode == 0, written.stderr
    assert exported.read_text().splitlines()[0].startswith("Date,Time,Symbol,Quantity,Price,Side,Commission")

    other = {**env, "BROKERSYNC_DATA_DIR": str(tmp_path / "other")}
    (moved,) = _import(other, str(exported), "--broker", "ninjatrader", "--format", "generic-csv", "--timezone", "UTC")
    assert moved["imported"] == 2

    def listing(environment, connection):
        out = cli(environment, "trades", "--connection", connection, "--format", "json")
        return sorted(
            (r["symbol"], r["direction"], Decimal(r["quantity"]), Decimal(r["realized_pnl"]), Decimal(r["fees"]))
            for r in json.loads(out.stdout)
        )

    assert listing(other, moved["connection_id"]) == listing(env, first["connection_id"])
