"""Issue 11, the engine side: account identity, the heartbeat lease and unlock, interrupted runs,
the key file next to a database with secrets, and a token refused between trade pages.

Every test runs on a SQLite file and on PostgreSQL (see ``conftest.db_url``), with the fake broker.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import fakebroker
import pytest
from brokersync import (
    AccountAlreadyConnectedError,
    BrokerAuthError,
    BrokerSync,
    ConfigurationError,
    ConnectionStatus,
    RunStatus,
    SyncInProgressError,
    SyncProgress,
)
from engine_support import Clock

pytestmark = pytest.mark.anyio

ALICE = "alice"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# -- 1. a broker account belongs to one connection of a user -------------------------------------


async def test_connecting_the_same_login_twice_is_refused_naming_the_existing_connection(engine: BrokerSync) -> None:
    first = await engine.connect_broker(ALICE, fakebroker.KEY, fakebroker.CREDENTIALS)
    with pytest.raises(AccountAlreadyConnectedError) as info:
        await engine.connect_broker(ALICE, fakebroker.KEY, fakebroker.CREDENTIALS)
    assert info.value.connection_id == first.connection_id
    assert info.value.account_ids == ("ACC-1", "ACC-2")
    assert first.connection_id in str(info.value) and "reconnect" in str(info.value)
    assert [c.id for c in await engine.list_connections(user_id=ALICE)] == [first.connection_id]  # nothing stored

    # A disconnected connection still has the accounts: reconnect it rather than doubling its trades.
    await engine.disconnect_broker(first.connection_id, ALICE)
    with pytest.raises(AccountAlreadyConnectedError):
        await engine.connect_broker(ALICE, fakebroker.KEY, fakebroker.CREDENTIALS)


async def test_two_users_may_connect_the_same_account_and_each_gets_their_own_copy(
    engine: BrokerSync, api: fakebroker.FakeBrokerApi
) -> None:
    mine = await engine.connect_broker(ALICE, fakebroker.KEY, fakebroker.CREDENTIALS)
    theirs = await engine.connect_broker("bob", fakebroker.KEY, fakebroker.CREDENTIALS)
    for connection, user in ((mine, ALICE), (theirs, "bob")):
        result = await engine.sync_broker_trades(connection.connection_id, user)
        assert result.status is RunStatus.SUCCEEDED and result.imported == len(api.expected())
    assert await engine.count_trades(user_id=ALICE) == await engine.count_trades(user_id="bob") == len(api.expected())


async def test_an_account_a_second_login_gains_later_is_stored_once_and_reported(
    engine: BrokerSync, api: fakebroker.FakeBrokerApi
) -> None:
    # Login one reaches ACC-1, login two ACC-2; later the broker adds each account to the other login.
    acc2 = api.trades.pop("ACC-2")
    first = await engine.connect_broker(ALICE, fakebroker.KEY, fakebroker.CREDENTIALS)
    acc1 = api.trades.pop("ACC-1")
    api.trades["ACC-2"] = acc2
    second = await engine.connect_broker(ALICE, fakebroker.KEY, fakebroker.CREDENTIALS)
    api.trades["ACC-1"] = acc1

    one = await engine.sync_broker_trades(first.connection_id, ALICE)
    two = await engine.sync_broker_trades(second.connection_id, ALICE)

    assert (one.status, one.imported) == (RunStatus.PARTIAL, len(acc1))
    assert (two.status, two.imported) == (RunStatus.PARTIAL, len(acc2))
    [skipped_by_one] = one.errors
    assert skipped_by_one.account_id == "ACC-2" and skipped_by_one.broker_trade_id is None
    assert first.connection_id in skipped_by_one.reason and second.connection_id in skipped_by_one.reason
    [skipped_by_two] = two.errors
    assert skipped_by_two.account_id == "ACC-1"
    stored = [(t.account_id, t.broker_trade_id) async for t in engine.iter_trades(user_id=ALICE)]
    assert len(stored) == len(set(stored)) == len(api.expected())  # every trade once, none twice
    assert {a.account_id for a in (await engine.get_connection(first.connection_id, ALICE)).accounts} == {"ACC-1"}

    # Once the owner is disconnected, the other connection takes the account over.
    await engine.disconnect_broker(second.connection_id, ALICE)
    again = await engine.sync_broker_trades(first.connection_id, ALICE)
    assert again.status is RunStatus.SUCCEEDED and again.errors == ()


# -- 2. a short lease kept alive by a heartbeat; unlock ------------------------------------------


async def test_the_heartbeat_keeps_a_short_lease_through_a_page_longer_than_its_ttl(
    make_engine, api: fakebroker.FakeBrokerApi, tmp_path: Path
) -> None:
    ttl = dt.timedelta(seconds=1.5)
    syncing = make_engine(clock=_now, lease_ttl=ttl)
    await syncing.upgrade_database()
    connection = await syncing.connect_broker(ALICE, fakebroker.KEY, fakebroker.CREDENTIALS)
    api.hold_file = tmp_path / "release"  # the broker holds the first page until the file exists
    task = asyncio.create_task(syncing.sync_broker_trades(connection.connection_id, ALICE))
    other = make_engine(clock=_now, lease_ttl=ttl)
    try:
        await asyncio.sleep(ttl.total_seconds() * 2.5)  # the page takes well over one TTL
        with pytest.raises(SyncInProgressError):
            await other.sync_broker_trades(connection.connection_id, ALICE)
        info = await other.lease_info(connection.connection_id, ALICE)
        assert info is not None and info.fresh and info.holder == syncing.holder
        assert info.heartbeat_at is not None and _now() - info.heartbeat_at < ttl
        with pytest.raises(SyncInProgressError, match="alive"):
            await other.unlock_connection(connection.connection_id, ALICE)
    finally:
        api.hold_file.write_text("go")
    result = await task
    assert result.ok and result.imported == len(api.expected())
    assert await other.lease_info(connection.connection_id, ALICE) is None


async def test_unlock_frees_a_dead_holders_lease_and_closes_its_run(make_engine) -> None:
    engine = make_engine(clock=_now)
    await engine.upgrade_database()
    connection = await engine.connect_broker(ALICE, fakebroker.KEY, fakebroker.CREDENTIALS)
    # A process took the lease (default TTL: 60 s) 45 s ago and died: no heartbeat since.
    taken = _now() - dt.timedelta(seconds=45)
    run = {"id": "dead-run", "connection_id": connection.connection_id, "user_id": ALICE, "broker": fakebroker.KEY}
    run |= {"trigger": "manual", "status": "running", "started_at": taken, "holder": "host:1:dead"}
    run |= dict.fromkeys(("imported", "skipped", "updated", "cancelled", "error_count", "retries"), 0)
    run |= {"rate_limit_waits": 0, "rate_limit_wait_ms": 0}
    assert await engine.store.begin_run(
        connection.connection_id,
        holder="host:1:dead",
        run_id="dead-run",
        now=taken,
        ttl=engine.settings.lease_ttl,
        run=run,
    )
    with pytest.raises(SyncInProgressError):  # the lease has not lapsed yet
        await engine.sync_broker_trades(connection.connection_id, ALICE)

    freed = await engine.unlock_connection(connection.connection_id, ALICE)

    assert freed is not None and freed.holder == "host:1:dead" and not freed.fresh
    [dead] = await engine.list_runs(connection_id=connection.connection_id)
    assert dead.status is RunStatus.INTERRUPTED and "unlock" in (dead.error_message or "")
    assert await engine.unlock_connection(connection.connection_id, ALICE) is None  # nothing left to free
    assert (await engine.sync_broker_trades(connection.connection_id, ALICE)).ok


async def test_the_lease_ttl_comes_from_the_environment(make_engine, monkeypatch) -> None:
    monkeypatch.setenv("BROKERSYNC_LEASE_TTL", "7.5")
    assert make_engine().settings.lease_ttl == dt.timedelta(seconds=7.5)
    monkeypatch.setenv("BROKERSYNC_LEASE_TTL", "soon")
    with pytest.raises(ConfigurationError, match="BROKERSYNC_LEASE_TTL"):
        make_engine()


# -- 3. an interrupted run is not a failure ------------------------------------------------------


async def test_an_interrupted_run_keeps_its_counts_and_is_no_failure_in_the_statistics(
    engine: BrokerSync, api: fakebroker.FakeBrokerApi
) -> None:
    api.page_size = 5
    connection = await engine.connect_broker(ALICE, fakebroker.KEY, fakebroker.CREDENTIALS)
    third = asyncio.Event()

    async def on_progress(progress: SyncProgress) -> None:
        if progress.batches == 3:
            third.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(engine.sync_broker_trades(connection.connection_id, ALICE, on_progress=on_progress))
    await third.wait()
    task.cancel("SIGTERM")
    with pytest.raises(asyncio.CancelledError):
        await task

    [run] = await engine.list_runs(connection_id=connection.connection_id)
    stored = await engine.count_trades(connection_id=connection.connection_id)
    assert (run.status, run.imported, run.error_type) == (RunStatus.INTERRUPTED, stored, None)
    assert stored == 15 and "stopped by SIGTERM" in (run.error_message or "")
    info = await engine.get_connection(connection.connection_id, ALICE)
    assert info.status is ConnectionStatus.ACTIVE and info.last_sync_status is RunStatus.INTERRUPTED
    stats = await engine.sync_stats()
    assert (stats.total.interrupted, stats.total.failed, stats.total.failure_rate) == (1, 0, None)
    assert stats.total.imported == stored
    assert stats.alerts() == []


# -- 4. the key file belongs to the database -------------------------------------------------------


async def test_a_missing_key_file_is_never_replaced_while_the_database_holds_secrets(
    db_url: str, api: fakebroker.FakeBrokerApi, clock: Clock, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv("BROKERSYNC_ENCRYPTION_KEYS", raising=False)
    monkeypatch.setenv("BROKERSYNC_DATA_DIR", str(tmp_path / "data"))
    key_file = tmp_path / "data" / "encryption-keys"

    def engine() -> BrokerSync:
        return BrokerSync(db_url, transports={fakebroker.KEY: api.transport()}, clock=clock, auto_upgrade=True)

    async with engine() as first:
        connection = await first.connect_broker(ALICE, fakebroker.KEY, fakebroker.CREDENTIALS)
    assert key_file.exists()  # created on a database without secrets
    backup = key_file.read_bytes()
    key_file.unlink()

    async with engine() as second:
        for attempt in (
            second.sync_broker_trades(connection.connection_id, ALICE),
            second.connect_broker("bob", fakebroker.KEY, fakebroker.CREDENTIALS),
            second.rotate_keys(),
        ):
            with pytest.raises(ConfigurationError) as info:
                await attempt
            assert str(key_file) in str(info.value) and "back-up" in str(info.value)
        with pytest.raises(ConfigurationError, match="missing"):
            second.vault  # noqa: B018 - building the vault must not create a key either
    assert not key_file.exists()

    key_file.write_bytes(backup)  # restored from the back-up: everything works again
    key_file.chmod(0o600)
    async with engine() as third:
        assert (await third.sync_broker_trades(connection.connection_id, ALICE)).ok


# -- 5. a token refused between pages ------------------------------------------------------------


async def test_a_token_refused_between_pages_logs_in_again_and_resumes(
    engine: BrokerSync, api: fakebroker.FakeBrokerApi
) -> None:
    api.page_size = 5
    connection = await engine.connect_broker(ALICE, fakebroker.KEY, fakebroker.CREDENTIALS)
    pages = 0

    def revoke_on_third_page() -> None:
        nonlocal pages
        pages += 1
        if pages == 3:  # the broker ends every session and refuses every refresh token
            api.tokens.clear()
            api.refresh_tokens.clear()

    api.on_trades = revoke_on_third_page
    logins = api.auth_calls
    result = await engine.sync_broker_trades(connection.connection_id, ALICE)

    assert result.status is RunStatus.SUCCEEDED
    stored = {
        (t.account_id, t.broker_trade_id) async for t in engine.iter_trades(connection_id=connection.connection_id)
    }
    assert stored == set(api.expected())
    assert api.auth_calls == logins + 1  # logged in once with the stored password
    assert (await engine.get_connection(connection.connection_id, ALICE)).status is ConnectionStatus.ACTIVE


async def test_a_refused_login_after_a_refused_token_still_needs_reauth(
    engine: BrokerSync, api: fakebroker.FakeBrokerApi
) -> None:
    api.page_size = 5
    connection = await engine.connect_broker(ALICE, fakebroker.KEY, fakebroker.CREDENTIALS)
    pages = 0

    def change_password_on_second_page() -> None:
        nonlocal pages
        pages += 1
        if pages == 2:
            api.password = "changed-at-the-broker"
            api.tokens.clear()
            api.refresh_tokens.clear()

    api.on_trades = change_password_on_second_page
    with pytest.raises(BrokerAuthError):
        await engine.sync_broker_trades(connection.connection_id, ALICE)
    info = await engine.get_connection(connection.connection_id, ALICE)
    assert info.status is ConnectionStatus.NEEDS_REAUTH
    [run] = await engine.list_runs(connection_id=connection.connection_id)
    assert run.status is RunStatus.FAILED and run.imported == 5  # the first page was stored, and counted
