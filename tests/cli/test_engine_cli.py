"""The engine's CLI end to end, in real subprocesses, on a real SQLite file.

The broker is `beta` from the installed test distribution tests/packages/good (no network needed).
"""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import select
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

PASSWORD = "pw-Sekr1t-for-cli"
EXE = str(Path(sys.executable).parent / "brokersync")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("BROKERSYNC_")}
    return {**base, "BROKERSYNC_DATA_DIR": str(tmp_path / "data"), "BROKERSYNC_PLUGINS": "beta", "COLUMNS": "200"}


def cli(env: dict[str, str], *args: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, *args],
        env={**env, **(extra or {})},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def connect(env: dict[str, str], tmp_path: Path, user: str = "local") -> str:
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps({"username": "ann"}))
    result = cli(
        env,
        "connect",
        "beta",
        "--credentials-file",
        str(creds),
        "--json",
        "--user",
        user,
        extra={"BROKERSYNC_CREDENTIAL_PASSWORD": PASSWORD},
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [a["id"] for a in data["accounts"]] == ["B-1", "B-2"]
    assert data["environment"] == "demo" and data["status"] == "active"
    return str(data["connection_id"])


def test_connect_sync_resync_export_and_audit(env, tmp_path):
    connection_id = connect(env, tmp_path)

    first = cli(env, "sync", connection_id, "--json")
    assert first.returncode == 0, first.stderr
    [result] = json.loads(first.stdout)
    assert (result["imported"], result["skipped"], result["updated"], result["error_count"]) == (5, 0, 0, 1)
    assert result["status"] == "partial"
    assert "B-2-bad" in json.dumps(result["errors"]) and "float 1.5 is not allowed" in json.dumps(result["errors"])

    again = cli(env, "sync", connection_id)
    assert again.returncode == 0, again.stderr
    assert "Sync results" in again.stdout
    [second] = json.loads(cli(env, "runs", "--json", "--limit", "1").stdout)
    assert (second["imported"], second["skipped"]) == (0, 5)

    out = tmp_path / "trades.csv"
    exported = cli(env, "trades", "--format", "csv", "--output", str(out))
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert sorted(r["broker_trade_id"] for r in rows) == ["B-1-1", "B-1-2", "B-1-3", "B-2-1", "B-2-2"]
    assert {r["entry_price"] for r in rows} == {"5800.25"}
    assert sum(Decimal(r["realized_pnl"]) for r in rows) == Decimal("125.00")

    as_json = json.loads(cli(env, "trades", "--format", "json", "--account", "B-2").stdout)
    assert [t["broker_trade_id"] for t in as_json] == ["B-2-1", "B-2-2"]
    assert as_json[0]["opened_at"] == "2024-11-01T14:30:00+00:00"

    table = cli(env, "trades", "--symbol", "ESZ4", "--limit", "2")
    assert table.returncode == 0 and "B-1-1" in table.stdout

    runs = json.loads(cli(env, "runs", "--json").stdout)
    assert [r["trigger"] for r in runs] == ["manual", "manual"]
    status = json.loads(cli(env, "status", "--json").stdout)
    assert status["trades"] == 5 and status["connections"] == {"active": 1} and status["schema_current"] is True


def test_secrets_never_on_the_command_line_and_never_stored_in_clear(env, tmp_path):
    refused = cli(env, "connect", "beta", "--set", f"password={PASSWORD}", "--set", "username=ann")
    assert refused.returncode == 2
    assert "'password' is a secret" in refused.stderr

    missing = cli(env, "connect", "beta")
    assert missing.returncode == 2
    assert (
        "missing required field 'username'" in missing.stderr and "missing required field 'password'" in missing.stderr
    )

    connection_id = connect(env, tmp_path)
    assert cli(env, "sync", connection_id).returncode == 0
    database = Path(env["BROKERSYNC_DATA_DIR"]) / "brokersync.db"
    blob = database.read_bytes()
    for wal in database.parent.glob("brokersync.db-*"):
        blob += wal.read_bytes()
    assert PASSWORD.encode() not in blob
    assert b"beta-ann" not in blob  # the access token beta issues


def _controlling_terminal() -> None:
    import fcntl
    import termios

    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def test_password_prompt_does_not_echo(env, tmp_path):
    primary, replica = pty.openpty()
    proc = subprocess.Popen(
        [EXE, "connect", "beta", "--set", "username=ann", "--json"],
        env=env,
        stdin=replica,
        stdout=subprocess.PIPE,
        stderr=replica,
        # A new session whose controlling terminal is the pty: the prompt (getpass opens /dev/tty)
        # must come here, not on the terminal pytest runs in (`nox -s tests` from a shell).
        start_new_session=True,
        preexec_fn=_controlling_terminal,
    )
    os.close(replica)
    seen = b""
    deadline = time.monotonic() + 60
    while b"password" not in seen.lower() and time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 1)
        if ready:
            seen += os.read(primary, 1024)
    os.write(primary, PASSWORD.encode() + b"\n")
    stdout, _ = proc.communicate(timeout=60)
    try:
        while select.select([primary], [], [], 0.2)[0]:
            seen += os.read(primary, 1024)
    except OSError:
        pass
    os.close(primary)
    assert proc.returncode == 0, seen
    assert PASSWORD.encode() not in seen + stdout
    assert json.loads(stdout)["broker"] == "beta"


def test_keys_rotate_reencrypts_and_syncing_still_works(env, tmp_path):
    connection_id = connect(env, tmp_path)
    key_file = Path(env["BROKERSYNC_DATA_DIR"]) / "encryption-keys"
    before = key_file.read_text()
    rotated = cli(env, "keys", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    assert "Re-encrypted" in rotated.stdout
    assert key_file.read_text() != before
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert cli(env, "sync", connection_id).returncode == 0
    status = json.loads(cli(env, "status", "--json").stdout)
    assert status["active_key_id"] in rotated.stdout


def test_disconnect_and_unknown_connection(env, tmp_path):
    connection_id = connect(env, tmp_path)
    gone = cli(env, "disconnect", connection_id, "--yes")
    assert gone.returncode == 0, gone.stderr
    assert json.loads(cli(env, "connections", "--json").stdout) in (
        [],
        [{**json.loads(cli(env, "connections", "--json").stdout)[0]}],
    )
    unknown = cli(env, "sync", "no-such-connection")
    assert unknown.returncode == 2
    assert "no-such-connection" in unknown.stderr


def test_usage_errors_exit_2(env):
    assert cli(env, "sync").returncode == 2
    assert cli(env, "sync", "x", "--all").returncode == 2
    bad_time = cli(env, "trades", "--since", "yesterday")
    assert bad_time.returncode == 2 and "not an ISO date" in bad_time.stderr
    upgrade = cli(env, "db", "upgrade")
    assert upgrade.returncode == 0 and "Schema" in upgrade.stdout
    assert cli(env, "keys", "generate").stdout.count(":") == 1


def test_base_urls_from_the_environment_are_validated(env):
    bad = cli(env, "connections", extra={"BROKERSYNC_BASE_URLS": "beta=notaurl"})
    assert bad.returncode == 2
    assert "BROKERSYNC_BASE_URLS: 'beta=notaurl' must look like BROKER=http(s)://HOST/PATH" in bad.stderr
    assert "Traceback" not in bad.stderr
    good = cli(env, "db", "upgrade", extra={"BROKERSYNC_BASE_URLS": "beta=http://127.0.0.1:9/v1"})
    assert good.returncode == 0, good.stderr


def test_the_prompt_test_passes_when_pytest_itself_runs_in_a_terminal():
    # `python -m nox -s tests` typed in a shell: pytest has a controlling terminal of its own.
    test = f"{Path(__file__)}::test_password_prompt_does_not_echo"
    pid, fd = pty.fork()
    if pid == 0:  # the child: a new session whose controlling terminal is the pty
        os.execv(sys.executable, [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test])
    output = b""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child exited and closed the pty
                break
            if not chunk:
                break
            output += chunk
    else:
        os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, output.decode(errors="replace")[-2000:]
    assert b"1 passed" in output
