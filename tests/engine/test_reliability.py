"""Reliability on the real databases: crashes, database errors, concurrent processes, secrets.

Every test runs on a SQLite file and on PostgreSQL (see ``conftest.db_url``). Worker processes run
``sync_worker.py`` against the same database and a fake broker built from the same seed.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import fakebroker
import pytest
from brokersync import BrokerSync, RunStatus, StoreError, SyncInProgressError
from engine_support import Clock
from sqlalchemy import text

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

WORKER = Path(__file__).with_name("sync_worker.py")
ACCOUNTS = {"ACC-1": 360, "ACC-2": 240}
PAGE_SIZE = 40  # 9 + 6 pages
# More kill points on demand (e.g. a nightly job): BROKERSYNC_TEST_KILL_POINTS=50.
KILL_POINTS = int(os.environ.get("BROKERSYNC_TEST_KILL_POINTS", "6"))


def accounts_arg() -> str:
    return ",".join(f"{name}={count}" for name, count in ACCOUNTS.items())


@pytest.fixture
def clock() -> Clock:
    # Worker processes use the real clock; this one starts at the real time too.
    return Clock(dt.datetime.now(dt.UTC))


@pytest.fixture
def api(clock: Clock) -> fakebroker.FakeBrokerApi:
    return fakebroker.FakeBrokerApi(accounts=dict(ACCOUNTS), clock=clock, page_size=PAGE_SIZE)


def start_worker(
    db_url: str, keys: str, connection_id: str, trigger: str, hold: Path | None = None, user: str = "alice"
) -> subprocess.Popen[str]:
    args = [sys.executable, str(WORKER), db_url, keys, connection_id, user, trigger, accounts_arg(), str(PAGE_SIZE)]
    if hold is not None:
        args.append(str(hold))
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


async def assert_exactly_the_brokers_trades(
    engine: BrokerSync, connection_id: str, api: fakebroker.FakeBrokerApi
) -> None:
    rows = [t async for t in engine.iter_trades(connection_id=connection_id)]
    keys = [(t.account_id, t.broker_trade_id) for t in rows]
    assert len(keys) == len(set(keys)), "a trade is stored twice"
    expected = api.expected()
    assert set(keys) == set(expected), "trades lost or invented"
    for trade in rows:
        wire = expected[(trade.account_id, trade.broker_trade_id)]
        assert trade.entry_price == Decimal(wire["entry_price"])
        assert trade.exit_price == Decimal(wire["exit_price"])
        assert trade.quantity == Decimal(wire["quantity"])


async def test_sigkill_at_random_points_then_resync_gives_exactly_the_brokers_trades(
    engine: BrokerSync, make_engine, db_url: str, keys: str, api: fakebroker.FakeBrokerApi, clock: Clock
) -> None:
    rng = random.Random(20251124)
    total_pages = sum(-(-count // PAGE_SIZE) for count in ACCOUNTS.values())
    kills = 0
    for attempt in range(KILL_POINTS):
        user = f"alice-{attempt}"  # one user per attempt: a user connects a broker account once
        connection = await engine.connect_broker(user, fakebroker.KEY, fakebroker.CREDENTIALS)
        worker = start_worker(
            db_url, keys, connection.connection_id, "manual" if attempt % 2 else "scheduled", user=user
        )
        kill_after = rng.randrange(0, total_pages)  # progress lines to see before the kill
        assert worker.stdout is not None
        seen = 0
        for line in worker.stdout:
            if line.startswith("progress"):
                seen += 1
                if seen > kill_after:
                    break
            elif line.startswith(("result", "error")):
                break
        # A little more work after the batch we saw, so some kills land inside a transaction.
        for _ in range(rng.randrange(0, 4)):
            worker.stdout.readline()
        if worker.poll() is None:
            os.kill(worker.pid, signal.SIGKILL)
            kills += 1
        _, err = worker.communicate(timeout=60)
        assert worker.returncode in (-signal.SIGKILL, 0), err

        # The dead worker's lease expires; then a normal sync (manual or scheduled) completes the job.
        later = make_engine(clock=lambda: dt.datetime.now(dt.UTC) + engine.settings.lease_ttl + dt.timedelta(minutes=1))
        result = await later.sync_broker_trades(
            connection.connection_id, user, trigger="scheduled" if attempt % 3 else "manual"
        )
        assert result.ok
        await assert_exactly_the_brokers_trades(later, connection.connection_id, api)
        runs = await later.list_runs(connection_id=connection.connection_id)
        assert runs[0].status is RunStatus.SUCCEEDED
        if worker.returncode == -signal.SIGKILL:
            assert runs[1].status is RunStatus.INTERRUPTED  # the dead run is closed, not left "running"
    assert kills >= KILL_POINTS * 2 // 3  # the kills really happened mid-sync


async def _install_failure(engine: BrokerSync, trade_id: str) -> None:
    async with engine.store.engine.begin() as conn:
        if engine.store.dialect == "sqlite":
            await conn.execute(
                text(
                    "CREATE TRIGGER boom BEFORE INSERT ON trades WHEN NEW.broker_trade_id = "
                    f"'{trade_id}' BEGIN SELECT RAISE(ABORT, 'disk quota exceeded (injected)'); END"
                )
            )
        else:
            await conn.execute(
                text(
                    "CREATE FUNCTION boom() RETURNS trigger AS $$ BEGIN "
                    f"IF NEW.broker_trade_id = '{trade_id}' THEN RAISE EXCEPTION 'disk quota exceeded (injected)'; "
                    "END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            await conn.execute(text("CREATE TRIGGER boom BEFORE INSERT ON trades FOR EACH ROW EXECUTE FUNCTION boom()"))


async def _remove_failure(engine: BrokerSync) -> None:
    async with engine.store.engine.begin() as conn:
        await conn.execute(
            text("DROP TRIGGER boom" if engine.store.dialect == "sqlite" else "DROP TRIGGER boom ON trades")
        )


async def test_database_error_mid_sync_fails_the_run_keeps_the_watermark_and_recovers(
    engine: BrokerSync, api: fakebroker.FakeBrokerApi, clock: Clock
) -> None:
    connection = await engine.connect_broker("alice", fakebroker.KEY, fakebroker.CREDENTIALS)
    await engine.sync_broker_trades(connection.connection_id, "alice")
    before = {
        a.account_id: (a.watermark, a.cursor)
        for a in (await engine.get_connection(connection.connection_id, "alice")).accounts
    }
    for index in range(360, 480):
        api.add_trade("ACC-1", index, opened=clock() - dt.timedelta(minutes=index))
    await _install_failure(engine, "ACC-1-T000450")  # the third page of new ACC-1 trades
    clock.advance(hours=1)

    with pytest.raises(StoreError, match="disk quota exceeded"):
        await engine.sync_broker_trades(connection.connection_id, "alice", trigger="scheduled")

    [failed, _] = await engine.list_runs(connection_id=connection.connection_id)
    assert failed.status is RunStatus.FAILED
    assert (failed.error_message or "").count("disk quota exceeded") == 1  # said once, not repeated
    after = {
        a.account_id: (a.watermark, a.cursor)
        for a in (await engine.get_connection(connection.connection_id, "alice")).accounts
    }
    assert after["ACC-1"][0] == before["ACC-1"][0]  # the watermark did not move
    assert await engine.count_trades(connection_id=connection.connection_id) == 600 + 80  # two good pages stayed

    await _remove_failure(engine)
    result = await engine.sync_broker_trades(connection.connection_id, "alice", trigger="scheduled")
    assert result.ok
    assert result.imported == 40
    await assert_exactly_the_brokers_trades(engine, connection.connection_id, api)
    after = {
        a.account_id: a.watermark for a in (await engine.get_connection(connection.connection_id, "alice")).accounts
    }
    assert after["ACC-1"] == clock() - engine.settings.settle


async def test_two_processes_syncing_one_connection_exactly_one_runs(
    engine: BrokerSync, db_url: str, keys: str, api: fakebroker.FakeBrokerApi, tmp_path: Path
) -> None:
    connection = await engine.connect_broker("alice", fakebroker.KEY, fakebroker.CREDENTIALS)
    hold = tmp_path / "release-the-broker"
    first = start_worker(db_url, keys, connection.connection_id, "manual", hold=hold)
    second = None
    try:
        assert first.stdout is not None
        assert first.stdout.readline().strip() == "started", first.stderr.read()  # type: ignore[union-attr]
        # The first worker holds the lease and is mid-sync. A second process must be refused...
        second = start_worker(db_url, keys, connection.connection_id, "manual")
        out, err = second.communicate(timeout=120)
        assert second.returncode == 1, err
        assert out.startswith("error SyncInProgressError"), out
        # ...and so must this process.
        with pytest.raises(SyncInProgressError, match="already being synced"):
            await engine.sync_broker_trades(connection.connection_id, "alice")
    finally:
        hold.touch()
        out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert out.strip().splitlines()[-1] == "result succeeded 600 0 0"
    await assert_exactly_the_brokers_trades(engine, connection.connection_id, api)
    runs = await engine.list_runs(connection_id=connection.connection_id)
    assert [r.status for r in runs] == [RunStatus.SUCCEEDED]
