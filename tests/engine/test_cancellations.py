"""Cancelled (busted) trades: tombstones before/with/after their trade, idempotent, hidden by default,
validated one by one, atomic with the page's cursor, removed on disconnect. SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import fakebroker
import pytest
from brokersync import BrokerSync, ConnectionNotFoundError, RunStatus, StoredTrade, StoreError
from engine_support import Clock
from sqlalchemy import text

pytestmark = pytest.mark.anyio

BUST_AT = dt.datetime(2025, 3, 3, 9, 15, tzinfo=dt.UTC)
TRADE = "ACC-1-T000004"


async def listed(engine: BrokerSync, connection_id: str, *, include_cancelled: bool = False) -> dict[str, StoredTrade]:
    return {
        t.broker_trade_id: t
        async for t in engine.iter_trades(connection_id=connection_id, include_cancelled=include_cancelled)
    }


async def tombstones(engine: BrokerSync) -> list[tuple[str, str, str]]:
    async with engine.store.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT connection_id, account_id, broker_trade_id FROM trade_cancellations ORDER BY 3")
        )
        return [tuple(r) for r in rows]


async def connect(engine: BrokerSync, user: str = "alice") -> str:
    return (await engine.connect_broker(user, fakebroker.KEY, fakebroker.CREDENTIALS)).connection_id


async def test_a_cancellation_after_its_trade_hides_it_and_a_repeat_counts_zero(
    engine: BrokerSync, api: fakebroker.FakeBrokerApi
) -> None:
    cid = await connect(engine)
    first = await engine.sync_broker_trades(cid, "alice")
    assert (first.imported, first.cancelled) == (35, 0)

    api.cancel("ACC-1", TRADE, at=BUST_AT, reason="Ca")
    second = await engine.sync_broker_trades(cid, "alice")
    third = await engine.sync_broker_trades(cid, "alice")  # the broker reports the bust again

    assert (second.imported, second.updated, second.cancelled, second.status) == (0, 0, 1, RunStatus.SUCCEEDED)
    assert third.cancelled == 0
    shown = await listed(engine, cid)
    assert TRADE not in shown and len(shown) == 34
    assert await engine.count_trades(connection_id=cid) == 34
    assert await engine.count_trades(connection_id=cid, include_cancelled=True) == 35
    everything = await listed(engine, cid, include_cancelled=True)
    busted = everything[TRADE]
    assert busted.is_cancelled and busted.cancelled_at == BUST_AT and busted.cancel_reason == "Ca"
    assert busted.entry_price == Decimal(api.trades["ACC-1"][TRADE]["entry_price"])  # the row itself is kept
    assert not any(t.is_cancelled for k, t in everything.items() if k != TRADE)
    runs = await engine.list_runs(connection_id=cid)
    assert [r.cancelled for r in runs] == [0, 1, 0]  # newest first: the audit row keeps the count


async def test_a_cancellation_in_the_same_page_as_its_trade(engine: BrokerSync, api: fakebroker.FakeBrokerApi) -> None:
    api.cancel("ACC-2", "ACC-2-T000001", at=BUST_AT)
    cid = await connect(engine)

    result = await engine.sync_broker_trades(cid, "alice")

    assert (result.imported, result.cancelled) == (35, 1)
    assert "ACC-2-T000001" not in await listed(engine, cid)
    assert (await listed(engine, cid, include_cancelled=True))["ACC-2-T000001"].cancelled_at == BUST_AT


async def test_a_cancellation_before_its_trade_hides_the_trade_when_it_arrives(
    engine: BrokerSync, api: fakebroker.FakeBrokerApi, clock: Clock
) -> None:
    cid = await connect(engine)
    await engine.sync_broker_trades(cid, "alice")
    api.cancel("ACC-1", "ACC-1-T000100", at=BUST_AT)  # not reported as a trade yet
    early = await engine.sync_broker_trades(cid, "alice", trigger="scheduled")
    assert early.cancelled == 1
    assert await tombstones(engine) == [(cid, "ACC-1", "ACC-1-T000100")]

    api.add_trade("ACC-1", 100, opened=clock())  # booked late: the broker reports it after the bust
    clock.advance(minutes=5)
    late = await engine.sync_broker_trades(cid, "alice", trigger="scheduled")

    assert (late.imported, late.cancelled) == (1, 0)
    assert "ACC-1-T000100" not in await listed(engine, cid)
    assert (await listed(engine, cid, include_cancelled=True))["ACC-1-T000100"].is_cancelled


async def test_invalid_cancellations_are_reported_and_not_stored_the_rest_of_the_page_is(
    engine: BrokerSync, api: fakebroker.FakeBrokerApi
) -> None:
    api.invalid_cancellations["ACC-1"] = [
        {"broker_trade_id": "ACC-1-T000002", "cancelled_at": "2025-03-03T09:15:00"},  # naive time
        {"cancelled_at": "2025-03-03T09:15:00+00:00", "reason": "no id"},  # which trade?
    ]
    api.cancel("ACC-1", TRADE, at=BUST_AT)
    cid = await connect(engine)

    result = await engine.sync_broker_trades(cid, "alice")

    assert result.status == RunStatus.PARTIAL
    assert (result.imported, result.cancelled, result.error_count) == (35, 1, 2)
    reasons = {e.broker_trade_id: e.reason for e in result.errors}
    assert "naive datetime" in reasons["ACC-1-T000002"] and "cancelled_at" in reasons["ACC-1-T000002"]
    assert "broker_trade_id" in reasons[None]
    assert await tombstones(engine) == [(cid, "ACC-1", TRADE)]
    assert "ACC-1-T000002" in await listed(engine, cid)  # its trade is not cancelled
    [run] = await engine.list_runs(connection_id=cid)
    assert run.error_count == 2 and run.cancelled == 1


async def test_a_failure_mid_page_stores_no_tombstone_without_its_trades_and_cursor(
    engine: BrokerSync, api: fakebroker.FakeBrokerApi
) -> None:
    cid = await connect(engine)
    api.cancel("ACC-1", TRADE, at=BUST_AT)
    # A real database failure after the page's trades and tombstones are written, before its cursor.
    async with engine.store.engine.begin() as conn:
        if engine.store.dialect == "sqlite":
            await conn.execute(
                text(
                    "CREATE TRIGGER fail_cursor BEFORE INSERT ON sync_cursors "
                    "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
                )
            )
        else:
            await conn.execute(
                text(
                    "CREATE FUNCTION fail_cursor() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$ "
                    "LANGUAGE plpgsql"
                )
            )
            await conn.execute(
                text(
                    "CREATE TRIGGER fail_cursor BEFORE INSERT ON sync_cursors "
                    "FOR EACH ROW EXECUTE FUNCTION fail_cursor()"
                )
            )

    with pytest.raises(StoreError, match="disk full"):
        await engine.sync_broker_trades(cid, "alice")

    assert await tombstones(engine) == []
    assert await engine.count_trades(connection_id=cid, include_cancelled=True) == 0
    assert [a.cursor for a in (await engine.get_connection(cid, "alice")).accounts] == [None, None]
    [run] = await engine.list_runs(connection_id=cid)
    assert (run.status, run.cancelled) == (RunStatus.FAILED, 0)

    async with engine.store.engine.begin() as conn:
        on_table = "" if engine.store.dialect == "sqlite" else " ON sync_cursors"
        await conn.execute(text("DROP TRIGGER fail_cursor" + on_table))
    retry = await engine.sync_broker_trades(cid, "alice")
    assert (retry.imported, retry.cancelled) == (35, 1)
    assert await tombstones(engine) == [(cid, "ACC-1", TRADE)]


async def test_disconnect_with_its_trades_removes_the_tombstones(
    engine: BrokerSync, api: fakebroker.FakeBrokerApi
) -> None:
    keep = await connect(engine)
    gone = await connect(engine, "bob")  # the same account, another user's copy
    api.cancel("ACC-1", TRADE, at=BUST_AT)
    api.cancel("ACC-2", "ACC-2-T000999", at=BUST_AT)  # a tombstone whose trade never came
    await engine.sync_broker_trades(keep, "alice")
    await engine.sync_broker_trades(gone, "bob")
    assert len(await tombstones(engine)) == 4

    await engine.disconnect_broker(keep, "alice")  # trades (and tombstones) stay
    await engine.disconnect_broker(gone, "bob", delete_trades=True)

    assert {row[0] for row in await tombstones(engine)} == {keep}
    assert TRADE not in await listed(engine, keep)


async def test_the_sim_broker_busts_trades_end_to_end(db_url: str, keys: str) -> None:
    from brokersync_sim import SimAPI

    api = SimAPI(seed=11, accounts=2, trades_per_account=300, correction_rate=0.01, cancel_rate=0.01)
    async with BrokerSync(db_url, encryption_keys=keys, transports={"sim": api.transport()}) as engine:
        await engine.upgrade_database()
        cid = (await engine.connect_broker("sam", "sim", {"username": "sam", "password": "sim-password"})).connection_id
        first = await engine.sync_broker_trades(cid, "sam")
        busted_before_second = set(api.expected_cancellations("sam"))
        second = await engine.sync_broker_trades(cid, "sam")
        busted_before_third = set(api.expected_cancellations("sam"))
        third = await engine.sync_broker_trades(cid, "sam", trigger="scheduled")

        assert (first.imported, first.cancelled) == (600, 0)
        assert len(busted_before_second) == 6  # 1% of 300, per account, after the first complete listing
        assert (second.imported, second.cancelled) == (0, 6)
        assert third.cancelled == len(busted_before_third - busted_before_second) == 6
        shown = await listed(engine, cid)
        assert set(shown) == set(api.expected_trades("sam")) - busted_before_third
        everything = await listed(engine, cid, include_cancelled=True)
        assert {k for k, t in everything.items() if t.is_cancelled} == busted_before_third
        assert all(t.cancel_reason == "busted by the exchange" for t in everything.values() if t.is_cancelled)


async def test_upgrading_from_0001_keeps_audit_rows_with_zero_cancelled(db_url: str) -> None:
    from brokersync._store import Store

    store = Store(db_url)
    try:
        assert await store.upgrade("0001") == (None, "0001")
        async with store.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO sync_runs (id, connection_id, user_id, broker, trigger, status, started_at, "
                    "imported, skipped, updated, error_count, retries, rate_limit_waits, rate_limit_wait_ms) "
                    "VALUES ('r1', 'c1', 'u', 'b', 'manual', 'succeeded', :at, 3, 0, 0, 0, 0, 0, 0)"
                ),
                {"at": "2025-03-03 12:00:00.000000" if store.dialect == "sqlite" else BUST_AT},
            )
        assert await store.upgrade() == ("0001", Store.head())
        [run] = await store.list_runs()
        assert (run.imported, run.cancelled) == (3, 0)
    finally:
        await store.aclose()


async def test_repeats_within_one_page_are_one_tombstone_and_the_first_report_wins(db_url: str) -> None:
    from brokersync import Account, TradeCancellation
    from brokersync._store import Store

    store = Store(db_url)
    try:
        await store.upgrade()
        now = BUST_AT + dt.timedelta(hours=1)
        await store.create_connection(
            {"id": "c1", "user_id": "u", "broker": "b", "environment": "live", "status": "active",
             "created_at": now, "updated_at": now},
            [Account(id="A1")],
            now,
        )  # fmt: skip
        first = TradeCancellation(account_id="A1", broker_trade_id="T1", cancelled_at=BUST_AT, reason="Ca")
        again = TradeCancellation(account_id="A1", broker_trade_id="T1", cancelled_at=now, reason="later")
        counts = await store.store_batch(
            connection_id="c1", account_id="A1", batch=[], now=now, cursor="9", cancellations=[first, again]
        )
        repeat = await store.store_batch(connection_id="c1", account_id="A1", batch=[], now=now, cancellations=[again])
        assert (counts.cancelled, repeat.cancelled) == (1, 0)
        async with store.engine.connect() as conn:
            rows = (await conn.execute(text("SELECT broker_trade_id, reason FROM trade_cancellations"))).all()
        assert [tuple(r) for r in rows] == [("T1", "Ca")]
        assert [a.cursor for a in await store.list_accounts("c1")] == ["9"]
    finally:
        await store.aclose()


async def test_tombstones_are_listed_with_whether_their_trade_is_stored(
    engine: BrokerSync, api: fakebroker.FakeBrokerApi, clock: Clock
) -> None:
    cid = await connect(engine)
    await engine.sync_broker_trades(cid, "alice")
    api.cancel("ACC-1", TRADE, at=BUST_AT, reason="Ca")  # a stored trade
    api.cancel("ACC-2", "ACC-2-T000500", at=BUST_AT + dt.timedelta(hours=1))  # never reported as a trade
    await engine.sync_broker_trades(cid, "alice", trigger="scheduled")

    listed_all = await engine.list_cancellations(user_id="alice")
    assert [(c.broker_trade_id, c.trade_stored, c.reason) for c in listed_all] == [
        ("ACC-2-T000500", False, "busted"),  # newest cancellation first
        (TRADE, True, "Ca"),
    ]
    assert listed_all[1].cancelled_at == BUST_AT and listed_all[1].connection_id == cid
    orphans = await engine.list_cancellations(user_id="alice", without_trade=True)
    assert [c.broker_trade_id for c in orphans] == ["ACC-2-T000500"]
    assert [c.broker_trade_id for c in await engine.list_cancellations(connection_id=cid, account_id="ACC-1")] == [
        TRADE
    ]
    assert await engine.list_cancellations(user_id="mallory") == []  # another user sees nothing
    with pytest.raises(ConnectionNotFoundError):
        await engine.list_cancellations(user_id="mallory", connection_id=cid)

    api.add_trade("ACC-2", 500, opened=clock())  # the broker reports the busted trade after all
    clock.advance(minutes=5)
    await engine.sync_broker_trades(cid, "alice", trigger="scheduled")
    assert await engine.list_cancellations(user_id="alice", without_trade=True) == []


def test_the_cli_lists_cancellations_as_json(
    db_url: str, keys: str, api: fakebroker.FakeBrokerApi, clock: Clock
) -> None:
    import asyncio
    import json

    from brokersync._cli import cli
    from click.testing import CliRunner

    async def prepare() -> str:
        async with BrokerSync(
            db_url, encryption_keys=keys, transports={fakebroker.KEY: api.transport()}, clock=clock
        ) as engine:
            await engine.upgrade_database()
            cid = await connect(engine)
            api.cancel("ACC-1", TRADE, at=BUST_AT, reason="Ca")
            await engine.sync_broker_trades(cid, "alice")
            return cid

    cid = asyncio.run(prepare())
    env = {"BROKERSYNC_ENCRYPTION_KEYS": keys}
    args = ["--database-url", db_url, "--user", "alice", "--json"]
    done = CliRunner().invoke(cli, ["cancellations", *args], env=env)
    assert done.exit_code == 0, done.output
    (row,) = json.loads(done.output)
    assert (row["connection_id"], row["broker_trade_id"], row["reason"], row["trade_stored"]) == (
        cid,
        TRADE,
        "Ca",
        True,
    )
    assert row["cancelled_at"].startswith("2025-03-03T09:15:00")
    done = CliRunner().invoke(cli, ["cancellations", "--without-trade", *args], env=env)
    assert done.exit_code == 0, done.output
    assert json.loads(done.output) == []
