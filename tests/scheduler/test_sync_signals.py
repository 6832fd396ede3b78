"""``brokersync sync`` as a real process against the sim broker on loopback: stop signals and kill -9.

SIGINT, SIGTERM and SIGHUP stop a sync the same way: the run is recorded ``interrupted`` with the
trades it stored, the lease goes back at once, the exit status is 128 + the signal number. A
process killed with SIGKILL cannot clean up: its connection is free again after one (short) TTL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from brokersync import BrokerSync, RunStatus, Vault
from brokersync_sim import SimAPI, SimServer

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

TRADES = "GET /accounts/{id}/trades"
TOTAL = 2 * 2500
CODE = "import sys; from brokersync._cli import main; sys.exit(main())"


def _env(db_url: str, keys: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKERSYNC_")}
    env.update(
        BROKERSYNC_DATABASE_URL=db_url,
        BROKERSYNC_ENCRYPTION_KEYS=keys,
        BROKERSYNC_DATA_DIR=str(tmp_path / "data"),
        BROKERSYNC_USER="u1",
    )
    return env


def _brokersync(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CODE, *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _sim(latency: float = 0.3) -> SimAPI:
    # 5 pages of 1000 trades, each request 0.3 s: a sync takes about 2 s, time to stop it mid-way.
    return SimAPI(seed=31, accounts=2, trades_per_account=2500, correction_rate=0, latency=latency)


async def _connect(db_url: str, keys: str, server: SimServer) -> str:
    async with BrokerSync(db_url, encryption_keys=keys, base_urls={"sim": server.base_url}) as engine:
        await engine.upgrade_database()
        result = await engine.connect_broker("u1", "sim", {"username": "alice", "password": "sim-password"})
        return result.connection_id


@pytest.mark.parametrize(
    ("sig", "target"),
    [(signal.SIGTERM, "one"), (signal.SIGHUP, "one"), (signal.SIGINT, "one"), (signal.SIGTERM, "all")],
    ids=["sigterm", "sighup", "sigint", "sigterm-all"],
)
async def test_a_stop_signal_records_an_interrupted_run_with_what_it_stored_and_frees_the_lease(
    db_url: str, tmp_path: Path, sig: signal.Signals, target: str
) -> None:
    keys = Vault.generate_key("k1")
    api = _sim()
    with SimServer(api) as server:
        connection = await _connect(db_url, keys, server)
        which = ["--all"] if target == "all" else [connection]
        process = _brokersync(_env(db_url, keys, tmp_path), "sync", *which, "--base-url", f"sim={server.base_url}")
        try:
            _wait_for(lambda: api.stats.by_path[TRADES] >= 3, "the sync to have stored a page")
            process.send_signal(sig)
            _out, err = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()

        assert process.returncode == 128 + sig.value, err
        assert f"Stopped by {sig.name}" in err and "Traceback" not in err
        api.latency = 0.0
        async with BrokerSync(db_url, encryption_keys=keys, base_urls={"sim": server.base_url}) as engine:
            assert await engine.store.lease_holder(connection) is None, "the lease must be given back"
            stored = await engine.count_trades()
            assert 0 < stored < TOTAL
            [run] = await engine.list_runs(limit=None)
            assert run.status is RunStatus.INTERRUPTED and run.error_type is None
            assert run.imported == stored  # the true count of what was committed, not 0
            assert f"stopped by {sig.name}" in (run.error_message or "")
            stats = await engine.sync_stats()
            assert (stats.total.interrupted, stats.total.failed) == (1, 0) and stats.alerts() == []

            result = await engine.sync_broker_trades(connection, "u1", trigger="scheduled")  # not blocked
            assert result.ok and await engine.count_trades() == TOTAL


async def test_after_kill_9_the_connection_is_free_again_within_one_short_ttl(db_url: str, tmp_path: Path) -> None:
    keys = Vault.generate_key("k1")
    api = _sim(latency=1.5)  # pages slower than a heartbeat interval: only the heartbeat renews the lease
    ttl = 3.0
    env = _env(db_url, keys, tmp_path)
    with SimServer(api) as server:
        connection = await _connect(db_url, keys, server)
        url = f"sim={server.base_url}"
        process = _brokersync(env, "sync", connection, "--base-url", url, "--lease-ttl", str(ttl))
        try:
            _wait_for(lambda: api.stats.by_path[TRADES] >= 3, "the sync to have stored a page")
            time.sleep(ttl * 0.5)  # a heartbeat has renewed the lease since the page was stored
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        killed_at = time.monotonic()
        api.latency = 0.0

        async with BrokerSync(db_url, encryption_keys=keys) as engine:
            held = await engine.lease_info(connection, "u1")
        assert held is not None and held.holder.split(":")[1] == str(process.pid)  # the dead holder's lease
        while True:
            again = subprocess.run(
                [sys.executable, "-c", CODE, "sync", connection, "--base-url", url],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            if again.returncode == 0:
                break
            assert "already being synced" in again.stderr, again.stderr
            assert time.monotonic() - killed_at < ttl + 10, "the dead sync blocked its connection too long"
            time.sleep(0.2)
        assert time.monotonic() - killed_at < ttl + 10
        async with BrokerSync(db_url, encryption_keys=keys) as engine:
            runs = await engine.list_runs(limit=None)
            assert [r.status for r in runs] == [RunStatus.SUCCEEDED, RunStatus.INTERRUPTED]
            assert await engine.count_trades() == TOTAL


async def test_scheduler_once_does_not_exit_0_after_abandoning_a_sync(tmp_path: Path) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'brokersync.db'}"
    keys = Vault.generate_key("k1")
    api = _sim()
    with SimServer(api) as server:
        await _connect(db_url, keys, server)
        process = _brokersync(
            _env(db_url, keys, tmp_path),
            "scheduler",
            "--once",
            "--interval",
            "60",
            "--grace",
            "0",
            "--base-url",
            f"sim={server.base_url}",
        )
        try:
            _wait_for(lambda: api.stats.by_path[TRADES] >= 3, "the scheduler to be mid-sync")
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert "abandoned" in out, err
        assert process.returncode == 1, (out, err)
        async with BrokerSync(db_url, encryption_keys=keys) as engine:
            [run] = await engine.list_runs(limit=None)
            assert run.status is RunStatus.INTERRUPTED and run.imported == await engine.count_trades() > 0
