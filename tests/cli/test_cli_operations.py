"""What a user meets at the command line: one clear line for bad input, id prefixes, --json and
--wide, doctor, sync state, read-only databases. Real subprocesses on a real SQLite file; brokers are
`beta` (tests/packages/good, no network) and the sim plugin's loopback server.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PASSWORD = "pw-Sekr1t-for-cli"
EXE = str(Path(sys.executable).parent / "brokersync")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("BROKERSYNC_")}
    return {**base, "BROKERSYNC_DATA_DIR": str(tmp_path / "data"), "BROKERSYNC_PLUGINS": "beta,sim", "COLUMNS": "80"}


def cli(
    env: dict[str, str], *args: str, extra: dict[str, str] | None = None, **kw: object
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, *args],
        env={**env, **(extra or {})},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        **kw,  # type: ignore[call-overload]
    )


def one_line_error(result: subprocess.CompletedProcess[str], code: int = 2) -> str:
    """The result failed with ``code`` and one error line (no traceback); return that line."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 or lines[0].startswith("Usage:"), result.stderr
    return lines[-1]


def connect(env: dict[str, str], tmp_path: Path) -> str:
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps({"username": "ann"}))
    result = cli(
        env,
        "connect",
        "beta",
        "--credentials-file",
        str(creds),
        "--json",
        extra={"BROKERSYNC_CREDENTIAL_PASSWORD": PASSWORD},
    )
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout)["connection_id"])


def database(env: dict[str, str]) -> Path:
    return Path(env["BROKERSYNC_DATA_DIR"]) / "brokersync.db"


def count_rows(env: dict[str, str], table: str) -> int:
    with sqlite3.connect(database(env)) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


# -- bad input gets one clear line -------------------------------------------------------------------


def test_disconnect_delete_trades_without_a_terminal_needs_yes(env, tmp_path):
    connection_id = connect(env, tmp_path)
    assert cli(env, "sync", connection_id).returncode == 0
    refused = cli(env, "disconnect", connection_id, "--delete-trades")
    assert "--yes" in one_line_error(refused)
    assert count_rows(env, "trades") == 5
    done = cli(env, "disconnect", connection_id, "--delete-trades", "--yes", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"connection_id": connection_id, "disconnected": True, "trades_deleted": True}
    assert count_rows(env, "trades") == 0


def test_an_unusable_data_directory_is_one_line_naming_it(env, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    bad = {"BROKERSYNC_DATA_DIR": str(blocker / "data")}
    line = one_line_error(cli(env, "connect", "beta", "--set", "username=ann", extra=bad))
    assert str(blocker / "data") in line and "BROKERSYNC_DATA_DIR" in line
    line = one_line_error(cli(env, "status", extra=bad))
    assert str(blocker / "data") in line


def test_bad_options_are_refused_when_parsed(env, tmp_path):
    assert "NOPE" in one_line_error(cli(env, "--log-level", "NOPE", "plugins"))
    assert cli(env, "--log-level", "info", "plugins").returncode == 0
    connection_id = connect(env, tmp_path)
    line = one_line_error(cli(env, "trades", "-o", "/nonexistent/dir/x.csv"))
    assert "/nonexistent/dir" in line
    line = one_line_error(cli(env, "sync", connection_id, "--base-url", "nosuch=http://127.0.0.1:9/v1"))
    assert "no broker 'nosuch'" in line and "beta" in line
    line = one_line_error(cli(env, "connect", "sim", "--base-url", "sim=notaurl"))
    assert "'notaurl'" in line
    env_line = one_line_error(cli(env, "connections", extra={"BROKERSYNC_BASE_URLS": "nosuch=http://127.0.0.1:9/v1"}))
    assert "BROKERSYNC_BASE_URLS" in env_line and "no broker 'nosuch'" in env_line
    assert count_rows(env, "sync_runs") == 0


def test_impossible_time_windows_are_refused_and_empty_results_said(env, tmp_path):
    connection_id = connect(env, tmp_path)
    assert cli(env, "sync", connection_id).returncode == 0
    line = one_line_error(cli(env, "sync", "--all", "--since", "2024-01-01"))
    assert "--since" in line
    assert count_rows(env, "sync_runs") == 1
    line = one_line_error(cli(env, "trades", "--since", "2024-12-01", "--until", "2024-01-01"))
    assert "not before --until" in line
    nothing = cli(env, "trades", "--symbol", "NO-SUCH")
    assert nothing.returncode == 0
    assert "No trades match." in nothing.stderr and "Trades" not in nothing.stdout


@pytest.mark.parametrize("command", [["connections"], ["status"], ["trades"], ["runs"]])
def test_reads_on_a_missing_database_say_so_and_create_nothing(env, command):
    line = one_line_error(cli(env, *command))
    assert f"no brokersync database at {database(env)}" in line
    assert not Path(env["BROKERSYNC_DATA_DIR"]).exists()


def _without_root_file_powers() -> None:
    # root reads and writes any file: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the bounding
    # set (prctl PR_CAPBSET_DROP), so the command executed next meets file permissions like a user.
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):
        if libc.prctl(24, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_reads_work_on_a_read_only_database(env, tmp_path):
    connection_id = connect(env, tmp_path)
    assert cli(env, "sync", connection_id).returncode == 0
    data = Path(env["BROKERSYNC_DATA_DIR"])
    as_user: dict[str, object] = {"preexec_fn": _without_root_file_powers} if os.geteuid() == 0 else {}
    for p in data.iterdir():
        p.chmod(0o400)
    data.chmod(0o500)
    try:
        runs = cli(env, "runs", "--json", **as_user)
        assert runs.returncode == 0, runs.stderr
        assert [r["imported"] for r in json.loads(runs.stdout)] == [5]
        trades = cli(env, "trades", "--json", **as_user)
        assert trades.returncode == 0, trades.stderr
        assert len(json.loads(trades.stdout)) == 5
        status = cli(env, "status", "--json", **as_user)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["trades"] == 5
        assert cli(env, "connections", "--json", **as_user).returncode == 0
        assert cli(env, "sync", connection_id, **as_user).returncode != 0  # writing is still refused
    finally:
        data.chmod(0o700)


def test_a_wrong_key_exits_2_before_any_run_is_recorded(env, tmp_path):
    connection_id = connect(env, tmp_path)
    assert cli(env, "sync", connection_id).returncode == 0
    wrong = {"BROKERSYNC_ENCRYPTION_KEYS": cli(env, "keys", "generate").stdout.strip()}
    for args in (["sync", connection_id], ["sync", "--all"], ["sync", "--failed"]):
        line = one_line_error(cli(env, *args, extra=wrong))
        assert "nothing was synced" in line, args
    assert count_rows(env, "sync_runs") == 1
    status = cli(env, "status", extra={"BROKERSYNC_ENCRYPTION_KEYS": "not-a-key"})
    assert status.returncode == 1
    assert "BROKERSYNC_ENCRYPTION_KEYS" in status.stderr


# -- the sim broker on loopback: --base-url and a rejected password ---------------------------------


@pytest.fixture
def sim_server() -> Iterator[str]:
    from brokersync_sim import SimAPI, SimServer

    with SimServer(SimAPI(seed=3, accounts=1, trades_per_account=40)) as server:
        yield server.base_url


def test_connect_reconnect_and_sync_take_base_url(env, sim_server, tmp_path):
    creds = tmp_path / "sim.json"
    creds.write_text(json.dumps({"username": "bob", "password": "sim-password"}))
    url = ["--base-url", f"sim={sim_server}"]
    made = cli(env, "connect", "sim", "-e", "local", "--credentials-file", str(creds), "--json", *url)
    assert made.returncode == 0, made.stderr
    connection_id = json.loads(made.stdout)["connection_id"]
    synced = cli(env, "sync", connection_id[:6], "--json", *url)
    assert synced.returncode == 0, synced.stderr
    assert json.loads(synced.stdout)[0]["imported"] == 40
    again = cli(env, "reconnect", connection_id[:6], "--credentials-file", str(creds), "--json", *url)
    assert again.returncode == 0, again.stderr

    creds.write_text(json.dumps({"username": "bob", "password": "wrong"}))
    rejected = cli(env, "connect", "sim", "-e", "local", "--credentials-file", str(creds), *url)
    line = one_line_error(rejected, code=1)
    assert "rejected the credentials" in line and "reconnect" in line
    assert "POST" not in rejected.stderr and "401 {" not in rejected.stderr


# -- ids, --wide, --json ----------------------------------------------------------------------------


def _connections_sharing_a_prefix(env: dict[str, str]) -> list[str]:
    from brokersync import BrokerRegistry, BrokerSync

    async def go() -> list[str]:
        # One connection per account (ADR 0012): beta's accounts once per environment. The live one is
        # made again (deleted when it does not share the demo one's first character) until they collide.
        credentials = {"username": "ann", "password": PASSWORD}
        # A registry of its own: the process-wide one must not keep this test's allow-list.
        registry = BrokerRegistry(allow=env["BROKERSYNC_PLUGINS"].split(","))
        async with BrokerSync(f"sqlite:///{database(env)}", registry=registry) as engine:
            first = (await engine.connect_broker("local", "beta", credentials, "demo")).connection_id
            for _ in range(500):  # a 1/16 chance each time
                other = (await engine.connect_broker("local", "beta", credentials, "live")).connection_id
                if other[0] == first[0]:
                    return [first, other]
                await engine.disconnect_broker(other, "local", delete_trades=True)
        raise AssertionError("no two connection ids shared a first character")

    old = dict(os.environ)
    os.environ.update({k: v for k, v in env.items() if k.startswith("BROKERSYNC_") and k != "BROKERSYNC_PLUGINS"})
    try:
        return asyncio.run(go())
    finally:
        os.environ.clear()
        os.environ.update(old)


def test_unique_prefixes_name_connections_and_ambiguous_ones_list_the_matches(env):
    ids = _connections_sharing_a_prefix(env)
    shared = ids[-1][0]
    twins = sorted(i for i in ids if i.startswith(shared))
    line = one_line_error(cli(env, "sync", shared))
    assert all(t in line for t in twins) and "matches" in line
    target = twins[0]
    unique = next(target[:n] for n in range(1, 37) if sum(i.startswith(target[:n]) for i in ids) == 1)
    synced = cli(env, "sync", unique, "--json")
    assert synced.returncode == 0, synced.stderr
    assert json.loads(synced.stdout)[0]["connection_id"] == target
    runs = json.loads(cli(env, "runs", "--connection", unique, "--json").stdout)
    assert [r["connection_id"] for r in runs] == [target]
    assert len(json.loads(cli(env, "trades", "--connection", unique, "--json").stdout)) == 5


def test_wide_tables_show_full_ids(env, tmp_path):
    connection_id = connect(env, tmp_path)
    assert cli(env, "sync", connection_id).returncode == 0
    narrow = cli(env, "connections")
    assert connection_id not in narrow.stdout
    wide = cli(env, "connections", "--wide")
    assert connection_id in wide.stdout
    assert connection_id in cli(env, "runs", "--wide").stdout
    assert connection_id not in cli(env, "runs").stdout


def test_json_on_every_reporting_command(env, tmp_path):
    connection_id = connect(env, tmp_path)
    assert cli(env, "sync", connection_id).returncode == 0
    trades = cli(env, "trades", "--json", "--account", "B-2")
    assert [t["broker_trade_id"] for t in json.loads(trades.stdout)] == ["B-2-1", "B-2-2"]
    assert json.loads(cli(env, "trades", "--format", "json").stdout)[0]["connection_id"] == connection_id
    assert cli(env, "trades", "--json", "--format", "csv").returncode == 2
    rotated = json.loads(cli(env, "keys", "rotate", "--json").stdout)
    assert (
        rotated["reencrypted"] == 1
        and rotated["active_key_id"] in (Path(env["BROKERSYNC_DATA_DIR"]) / "encryption-keys").read_text()
    )
    assert json.loads(cli(env, "db", "upgrade", "--json").stdout)["upgraded"] is False
    for command in ("worker", "disconnect", "doctor", "connections"):
        assert "--json" in cli(env, command, "--help").stdout, command


# -- doctor, status, connections state ---------------------------------------------------------------


def test_doctor_checks_plugins_schema_secrets_and_permissions(env, tmp_path):
    connection_id = connect(env, tmp_path)
    data = Path(env["BROKERSYNC_DATA_DIR"])
    assert oct(data.stat().st_mode & 0o777) == "0o700"
    assert oct(database(env).stat().st_mode & 0o777) == "0o600"
    healthy = cli(env, "doctor")
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert [line.split()[0] for line in healthy.stdout.splitlines()] == ["ok"] * len(healthy.stdout.splitlines())
    checks = {c["check"]: c for c in json.loads(cli(env, "doctor", "--json").stdout)}
    assert {"plugins", "schema", "keys", "secrets", "permissions: database", "permissions: data directory"} <= set(
        checks
    )

    database(env).chmod(0o644)
    wrong = {"BROKERSYNC_ENCRYPTION_KEYS": cli(env, "keys", "generate").stdout.strip()}
    sick = cli(env, "doctor", "--json", extra={**wrong, "BROKERSYNC_QUEUE_URL": "redis://127.0.0.1:9/0"})
    assert sick.returncode == 1
    failed = {c["check"]: c["detail"] for c in json.loads(sick.stdout) if not c["ok"]}
    assert set(failed) == {"secrets", "permissions: database", "queue"}
    assert connection_id in failed["secrets"] and "chmod 600" in failed["permissions: database"]


def test_connections_state_shows_and_resets_the_sync_position(env, tmp_path):
    connection_id = connect(env, tmp_path)
    assert cli(env, "sync", connection_id).returncode == 0
    shown = json.loads(cli(env, "connections", "state", connection_id[:5], "--json").stdout)
    assert [a["account_id"] for a in shown["accounts"]] == ["B-1", "B-2"]
    assert all(a["watermark"] for a in shown["accounts"])
    assert "--yes" in one_line_error(cli(env, "connections", "state", connection_id, "--reset"))
    reset = cli(env, "connections", "state", connection_id, "--reset", "--yes", "--json")
    assert reset.returncode == 0, reset.stderr
    assert json.loads(reset.stdout)["accounts_reset"] == 2
    after = json.loads(cli(env, "connections", "state", connection_id, "--json").stdout)
    assert [a["watermark"] for a in after["accounts"]] == [None, None]
    assert count_rows(env, "trades") == 5


def test_shell_completion_is_served(env):
    result = cli(env, extra={"_BROKERSYNC_COMPLETE": "bash_source"})
    assert result.returncode == 0
    assert "_BROKERSYNC_COMPLETE=bash_complete" in result.stdout
    words = cli(env, extra={"_BROKERSYNC_COMPLETE": "bash_complete", "COMP_WORDS": "brokersync doc", "COMP_CWORD": "1"})
    assert "doctor" in words.stdout
