"""Issue 11 on the command line, in real subprocesses on a SQLite file with the `beta` test broker:
the key file next to a database with secrets, a login connected twice, and ``brokersync unlock``."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from pathlib import Path

import pytest
from brokersync import BrokerSync

from tests.cli.test_engine_cli import cli, connect


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("BROKERSYNC_")}
    return {**base, "BROKERSYNC_DATA_DIR": str(tmp_path / "data"), "BROKERSYNC_PLUGINS": "beta", "COLUMNS": "200"}


def test_a_new_key_file_is_announced_and_a_missing_one_is_never_replaced(env, tmp_path: Path) -> None:
    key_file = tmp_path / "data" / "encryption-keys"
    creds = tmp_path / "creds.json"
    creds.write_text('{"username": "ann"}')
    first = cli(
        env, "connect", "beta", "--credentials-file", str(creds), extra={"BROKERSYNC_CREDENTIAL_PASSWORD": "pw"}
    )
    assert first.returncode == 0, first.stderr
    assert f"Created a new encryption key file at {key_file}" in first.stderr  # at the default log level
    assert "Back it up" in first.stderr
    key_file.unlink()

    for args in (("sync", "--all"), ("keys", "rotate"), ("connect", "beta", "--credentials-file", str(creds))):
        result = cli(env, *args, extra={"BROKERSYNC_CREDENTIAL_PASSWORD": "pw"})
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert f"the encryption key file {key_file} is missing" in result.stderr
        assert "Restore the file from your back-up" in result.stderr
        assert "Traceback" not in result.stderr
    status = cli(env, "status")
    assert "unavailable" in status.stdout
    assert not key_file.exists()  # never replaced by a key that opens none of the stored secrets
    runs = cli(env, "runs", "--json")
    assert runs.stdout.strip() == "[]"  # no run was recorded


def test_connecting_the_same_login_twice_exits_2_and_points_to_reconnect(env, tmp_path: Path) -> None:
    first = connect(env, tmp_path)
    creds = tmp_path / "creds.json"
    again = cli(
        env, "connect", "beta", "--credentials-file", str(creds), extra={"BROKERSYNC_CREDENTIAL_PASSWORD": "pw"}
    )
    assert again.returncode == 2
    assert f"in connection {first}" in again.stderr and f"brokersync reconnect {first}" in again.stderr
    other_user = connect(env, tmp_path, user="someone-else")  # another user's copy is allowed
    assert other_user != first


def _take_lease(tmp_path: Path, connection_id: str, *, seconds_ago: float, run_id: str) -> None:
    async def go() -> None:
        url = f"sqlite+aiosqlite:///{tmp_path / 'data' / 'brokersync.db'}"
        async with BrokerSync(url) as engine:
            taken = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds_ago)
            run = {"id": run_id, "connection_id": connection_id, "user_id": "local", "broker": "beta"}
            run |= {"trigger": "manual", "status": "running", "started_at": taken, "holder": "host:4242:abc"}
            run |= dict.fromkeys(("imported", "skipped", "updated", "cancelled", "error_count", "retries"), 0)
            run |= {"rate_limit_waits": 0, "rate_limit_wait_ms": 0}
            assert await engine.store.begin_run(
                connection_id, holder="host:4242:abc", run_id=run_id, now=taken, ttl=dt.timedelta(minutes=10), run=run
            )

    asyncio.run(go())


def test_unlock_frees_a_stale_lease_with_confirmation_and_refuses_a_live_one(env, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BROKERSYNC_DATA_DIR", str(tmp_path / "data"))
    connection_id = connect(env, tmp_path)
    idle = cli(env, "unlock", connection_id)
    assert idle.returncode == 0 and "is not locked" in idle.stdout

    _take_lease(tmp_path, connection_id, seconds_ago=1, run_id="run-alive")  # alive: it renewed its lease a second ago
    alive = cli(env, "unlock", connection_id, "--yes")
    assert alive.returncode == 1 and "host:4242:abc" in alive.stderr and "alive" in alive.stderr
    blocked = cli(env, "sync", connection_id)
    assert blocked.returncode == 1 and "already being synced" in blocked.stderr

    _release(tmp_path, connection_id)  # now a holder that has been silent for 8 minutes
    _take_lease(tmp_path, connection_id, seconds_ago=8 * 60, run_id="run-dead")
    unasked = cli(env, "unlock", connection_id)  # no terminal: confirmation impossible
    assert unasked.returncode == 2 and "--yes" in unasked.stderr
    freed = cli(env, "unlock", connection_id, "--yes")
    assert freed.returncode == 0, freed.stderr
    assert "Unlocked connection" in freed.stdout and "host:4242:abc" in freed.stdout
    assert cli(env, "sync", connection_id).returncode == 0  # not blocked any more
    runs = cli(env, "runs", "--json")
    assert '"interrupted"' in runs.stdout and "unlock" in runs.stdout


def _release(tmp_path: Path, connection_id: str) -> None:
    async def go() -> None:
        url = f"sqlite+aiosqlite:///{tmp_path / 'data' / 'brokersync.db'}"
        async with BrokerSync(url) as engine:
            await engine.store.release_lease(connection_id, holder="host:4242:abc")

    asyncio.run(go())
