"""``brokersync demo``: the main job, run offline against the simulated broker on the embedded defaults."""

from __future__ import annotations

import csv
import io
import json
import stat
import subprocess
import sys

import pytest
from brokersync._cli import cli
from click.testing import CliRunner

# The sim's fills account, paired FIFO by hand from its script (brokersync_sim._fills): fill -> (qty).
# A1 buy 100, A2 buy 50, A3 sell 120 (scale-out), A4 sell 60 (reversal), A5 buy 30; E1 sell 2, E2 sell 1,
# E3 buy 1; M1 buy 10, M2 buy 15, M4 sell 15. Then a late M3 sell 10 (executed before M4) and a bust of A5.
FIRST_PAIRS = {"A1>A3": "100", "A2>A3": "20", "A2>A4": "30", "A4>A5": "30", "E1>E3": "1", "M1>M4": "10", "M2>M4": "5"}
LATE_NEW = ["M1>M3"]  # M3 now takes M1's lot ...
LATE_UPDATED = {"M2>M4": ("5", "15")}  # ... so M4 takes all of M2
TOMBSTONED = ["A4>A5", "M1>M4"]  # the bust of A5, and M1>M4 that no longer exists


def _short(account: str, key: str) -> str:
    return key.replace(f"{account}-", "")


def run_demo(*args: str):
    return CliRunner().invoke(cli, ["demo", *args], catch_exceptions=False)


@pytest.fixture
def report(tmp_path):
    result = run_demo("--data-dir", str(tmp_path), "--trades", "3000", "--fault-rate", "0.2", "--seed", "3", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_first_sync_imports_every_valid_trade_and_reports_the_invalid_ones(report):
    first = report["first_sync"]
    assert report["broker_trades"] == 3000
    assert first["imported"] + first["invalid_records"] == 3000 + len(FIRST_PAIRS)
    assert first["skipped"] == first["updated"] == 0
    assert report["stored_trades"] == first["imported"] + len(LATE_NEW)
    assert first["status"] in ("succeeded", "partial")


def test_second_sync_imports_nothing_and_applies_the_brokers_corrections(report):
    second = report["second_sync"]
    assert second["imported"] == len(LATE_NEW)  # the late fill's round trip; no trade twice
    assert second["updated"] > 0
    assert second["skipped"] + second["updated"] + second["invalid_records"] >= 3000  # + the fills account's
    assert report["stored_trades"] == report["first_sync"]["imported"] + len(LATE_NEW)


def test_injected_faults_are_absorbed_and_show_up_as_retries(report):
    faults = report["faults_injected"]
    assert sum(faults.values()) > 0
    absorbed = sum(report[s]["retries"] + report[s]["rate_limit_waits"] for s in ("first_sync", "second_sync"))
    assert absorbed >= 1
    assert report["token_renewals"] >= faults.get("token_expiry", 0), "an ended session is renewed, not fatal"
    assert report["first_sync"]["status"] != "failed"
    assert report["second_sync"]["status"] != "failed"


def test_the_demo_keeps_its_database_and_a_private_key_file_in_the_data_dir(report, tmp_path):
    assert (tmp_path / "brokersync.db").is_file()
    key_files = [p for p in tmp_path.iterdir() if p.is_file() and p.name != "brokersync.db"]
    assert key_files, "the embedded default generates an encryption key file"
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in key_files)
    assert "sim-password" not in (tmp_path / "brokersync.db").read_bytes().decode("latin-1")


def test_the_text_output_shows_the_summary_and_some_trades(tmp_path):
    result = run_demo("--data-dir", str(tmp_path), "--trades", "600", "--accounts", "2", "--fault-rate", "0")
    assert result.exit_code == 0, result.output
    for label in ("imported", "skipped", "updated", "retries", "rate-limit waits", "duration", "A few stored trades"):
        assert label in result.output
    assert "The second sync imported 1 trades" in result.output  # the late fill's round trip
    output = " ".join(result.output.split())
    assert "Executions paired into round trips (FIFO)" in output
    assert "Second sync - open positions: AAPL -30 @" in output and "ESZ5 -2 @" in output
    assert "Late fill re-paired:" in output and "updated, qty 5 -> 15" in output
    assert "Late fill paired: new round trip" in output
    assert output.count("Tombstone:") == len(TOMBSTONED)


def test_the_fills_account_is_paired_fifo_with_a_late_fill_and_a_bust(report):
    fills = report["fills"]
    account = fills["account"]
    assert account.endswith("-FILLS")
    first = {_short(account, k): t["quantity"] for k, t in fills["round_trips_first_sync"].items()}
    assert first == FIRST_PAIRS
    assert [_short(account, k) for k in fills["new_in_second_sync"]] == LATE_NEW
    updated = {
        _short(account, k): (c["quantity_before"], c["quantity_after"])
        for k, c in fills["re_paired_in_second_sync"].items()
    }
    assert updated == LATE_UPDATED
    assert sorted(_short(account, k) for k in fills["tombstones"]) == TOMBSTONED
    assert all(reason.startswith("re-paired") for reason in fills["tombstones"].values())
    # after the bust of A5 the A4 reversal's short 30 is open again; E1+E2 minus E3 is short 2; MSFT is flat
    assert {p["symbol"]: p["quantity"] for p in fills["open_positions"]} == {"AAPL": "-30", "ESZ5": "-2"}


def test_without_the_sim_plugin_the_demo_says_what_to_install():
    code = (
        "import sys; sys.modules['brokersync_sim'] = None\nfrom brokersync._cli import main\nsys.exit(main(['demo']))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "pip install brokersync-sim" in done.stderr


def test_running_the_demo_again_in_the_same_directory_works_and_counts_its_own_connection(tmp_path):
    args = ("--data-dir", str(tmp_path), "--trades", "400", "--accounts", "1", "--fault-rate", "0", "--json")
    first = json.loads(run_demo(*args).stdout)
    again = run_demo(*args)
    assert again.exit_code == 0, again.output
    second = json.loads(again.stdout)
    assert second["connection_id"] != first["connection_id"]
    assert second["stored_trades"] == second["first_sync"]["imported"] + len(LATE_NEW) == 400 + len(FIRST_PAIRS) + 1


def test_the_second_sync_records_the_trades_the_broker_busted(report):
    second = report["second_sync"]
    assert report["first_sync"]["cancelled"] == 0  # the sim busts trades only after a complete listing
    # 0.1% of 1000 trades in each of 3 accounts, and the fills account's round trips re-pairing removed
    assert second["cancelled"] == report["cancelled_trades"] == 3 + len(TOMBSTONED)


def test_trades_leaves_cancelled_trades_out_unless_asked(report, tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'brokersync.db'}"
    args = ["trades", "--database-url", url, "--user", "demo-user", "--format", "csv"]
    default = CliRunner().invoke(cli, args, catch_exceptions=False)
    everything = CliRunner().invoke(cli, [*args, "--include-cancelled"], catch_exceptions=False)
    as_json = CliRunner().invoke(cli, [*args[:-2], "--format", "json", "--include-cancelled"], catch_exceptions=False)
    assert default.exit_code == everything.exit_code == as_json.exit_code == 0, default.output + everything.output

    plain = list(csv.DictReader(io.StringIO(default.stdout)))
    rows = list(csv.DictReader(io.StringIO(everything.stdout)))
    assert "status" not in plain[0]
    assert len(plain) == report["stored_trades"] - report["cancelled_trades"]
    assert len(rows) == report["stored_trades"]
    busted = [r for r in rows if r["status"] == "cancelled"]
    assert len(busted) == report["cancelled_trades"]
    busted_trades = [r for r in busted if not r["account_id"].endswith("-FILLS")]
    assert len(busted_trades) == 3
    assert all(r["cancelled_at"] and r["cancel_reason"] == "busted by the exchange" for r in busted_trades)
    assert {r["status"] for r in rows} == {"ok", "cancelled"}
    assert not {r["broker_trade_id"] for r in busted} & {r["broker_trade_id"] for r in plain}
    records = json.loads(as_json.stdout)
    assert sorted(r["broker_trade_id"] for r in records if r["status"] == "cancelled") == sorted(
        r["broker_trade_id"] for r in busted
    )
