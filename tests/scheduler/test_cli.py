"""``brokersync scheduler`` as a real process: it syncs, and SIGTERM mid-sync never leaves a lease held."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from brokersync import BrokerSync, Vault
from brokersync_sim import SimAPI, SimServer

pytestmark = pytest.mark.anyio

TRADES = "GET /accounts/{id}/trades"


def _env(db_url: str, keys: str, tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        BROKERSYNC_DATABASE_URL=db_url,
        BROKERSYNC_ENCRYPTION_KEYS=keys,
        BROKERSYNC_DATA_DIR=str(tmp_path / "data"),
    )
    return env


def _scheduler(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    code = "import sys; from brokersync._cli import main; sys.exit(main())"
    return subprocess.Popen(
        [sys.executable, "-c", code, "scheduler", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


async def _connect(db_url: str, keys: str, server: SimServer) -> str:
    async with BrokerSync(db_url, encryption_keys=keys, base_urls={"sim": server.base_url}) as engine:
        await engine.upgrade_database()
        result = await engine.connect_broker("u1", "sim", {"username": "alice", "password": "sim-password"})
        return result.connection_id


@pytest.mark.parametrize(
    ("grace", "finished", "sig"),
    [("60", True, signal.SIGTERM), ("0", False, signal.SIGTERM), ("60", True, signal.SIGHUP)],
    ids=["sigterm-finishes-the-sync", "sigterm-with-no-grace-abandons-it", "sighup-finishes-the-sync"],
)
async def test_sigterm_mid_sync_stops_the_scheduler_and_frees_the_lease(db_url, tmp_path, grace, finished, sig):
    keys = Vault.generate_key("k1")
    api = SimAPI(seed=21, accounts=2, trades_per_account=2500, correction_rate=0, latency=0.05)
    with SimServer(api) as server:
        connection = await _connect(db_url, keys, server)
        process = _scheduler(
            _env(db_url, keys, tmp_path), "--interval", "3600", "--grace", grace, "--base-url", f"sim={server.base_url}"
        )
        try:
            _wait_for(lambda: api.stats.by_path[TRADES] >= 2, "the scheduler to be mid-sync")
            process.send_signal(sig)
            out, err = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert process.returncode == 0, err
        assert "scheduler stopped" in out
        assert ("abandoned at shutdown" in out) is not finished

        async with BrokerSync(db_url, encryption_keys=keys, base_urls={"sim": server.base_url}) as engine:
            assert await engine.store.lease_holder(connection) is None, "the lease must be free after SIGTERM"
            stored = await engine.count_trades()
            if finished:
                assert stored == 5000
                (run,) = await engine.list_runs(limit=None)
                assert run.status.value == "succeeded"
            else:
                assert stored < 5000
                api.latency = 0.0
                result = await engine.sync_broker_trades(connection, "u1")  # not blocked by a stale lease
                assert result.ok
                assert await engine.count_trades() == 5000


async def test_once_runs_every_job_a_single_time_and_reports_it(tmp_path):
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'brokersync.db'}"
    keys = Vault.generate_key("k1")
    api = SimAPI(seed=22, accounts=1, trades_per_account=50, correction_rate=0)
    with SimServer(api) as server:
        connection = await _connect(db_url, keys, server)
        process = _scheduler(
            _env(db_url, keys, tmp_path),
            "--once",
            "--interval",
            "0",
            "--connection",
            f"{connection}=60",
            "--base-url",
            f"sim={server.base_url}",
        )
        out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert f"{connection}: 1 synced (0 failed), 50 imported" in out
    assert "scheduler stopped: 1 runs, 1 syncs (0 failed), 50 imported" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--interval", "0"], "nothing to schedule"),
        (["--connection", "no-equals-sign"], "must look like ID=SECONDS"),
        (["--base-url", "sim"], "must look like BROKER=URL"),
    ],
    ids=["nothing", "bad-connection", "bad-base-url"],
)
def test_bad_options_exit_2_with_a_clear_message(tmp_path, args, message):
    env = _env(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", Vault.generate_key("k1"), tmp_path)
    process = _scheduler(env, *args)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 2
    assert message in err
