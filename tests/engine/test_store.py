"""The store on its own: migrations, exact types, counted upserts, leases."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import attrs
import pytest
from brokersync import Account, ConfigurationError, Direction, Trade
from brokersync._store import Store, fingerprint
from sqlalchemy import text

pytestmark = pytest.mark.anyio

NOW = dt.datetime(2025, 3, 3, 12, 0, tzinfo=dt.UTC)


def trade(index: int, **changes: object) -> Trade:
    base = Trade(
        broker_trade_id=f"T{index}",
        account_id="A1",
        symbol="ESZ4",
        direction=Direction.LONG,
        opened_at=NOW - dt.timedelta(days=1, minutes=index),
        closed_at=NOW - dt.timedelta(days=1),
        entry_price=Decimal("4312.25"),
        exit_price=Decimal("4313.50"),
        quantity=Decimal(2),
        realized_pnl=Decimal("125.00"),
        fees=Decimal("4.18"),
        currency="USD",
        raw={"id": index},
    )
    return attrs.evolve(base, **changes)


@pytest.fixture
async def store(db_url: str) -> Store:
    store = Store(db_url)
    await store.upgrade()
    await store.create_connection(
        {"id": "c1", "user_id": "u", "broker": "b", "environment": "live", "status": "active",
         "credentials": "v1:k:x", "created_at": NOW, "updated_at": NOW},
        [Account(id="A1")],
        NOW,
    )  # fmt: skip
    yield store
    await store.aclose()


async def test_migrations_create_exactly_the_declared_schema_and_are_idempotent(store: Store) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from brokersync._store._schema import metadata

    def diff(connection):  # type: ignore[no-untyped-def]
        return compare_metadata(MigrationContext.configure(connection), metadata)

    async with store.engine.connect() as conn:
        assert await conn.run_sync(diff) == []
    assert await store.upgrade() == (Store.head(), Store.head())
    assert await store.revision() == Store.head()


async def test_upsert_counts_new_duplicate_changed_and_repeated(store: Store) -> None:
    batch = [trade(i) for i in range(5)]
    first = await store.store_batch(connection_id="c1", account_id="A1", batch=batch, now=NOW)
    changed = [trade(0, exit_price=Decimal("4400")), trade(1, raw={"id": 1, "note": "raw only"}), *batch[2:], batch[3]]
    second = await store.store_batch(connection_id="c1", account_id="A1", batch=changed, now=NOW)

    assert (first.imported, first.skipped, first.updated) == (5, 0, 0)
    assert (second.imported, second.skipped, second.updated) == (0, 5, 1)  # raw-only change and the repeat: skipped
    assert await store.count_trades(connection_ids=["c1"]) == 5
    stored = {t.broker_trade_id: t async for t in store.iter_trades(connection_ids=["c1"])}
    assert stored["T0"].exit_price == Decimal("4400")
    assert stored["T1"].raw == {"id": 1}


async def test_money_is_exact_text_on_sqlite_and_numeric_on_postgresql(store: Store) -> None:
    pennies = trade(9, realized_pnl=Decimal("0.1") + Decimal("0.2"), fees=Decimal("1E-12"))
    await store.store_batch(connection_id="c1", account_id="A1", batch=[pennies], now=NOW)

    [back] = [t async for t in store.iter_trades(connection_ids=["c1"])]
    assert back.realized_pnl == Decimal("0.3")
    assert back.fees == Decimal("1E-12")
    async with store.engine.connect() as conn:
        kind = (await conn.execute(text("SELECT realized_pnl FROM trades"))).scalar_one()
    assert isinstance(kind, str if store.dialect == "sqlite" else Decimal)
    assert back.opened_at == pennies.opened_at
    assert back.opened_at.tzinfo is dt.UTC


async def test_the_watermark_and_cursor_move_with_the_batch_or_not_at_all(store: Store) -> None:
    mark = NOW - dt.timedelta(minutes=5)
    await store.store_batch(connection_id="c1", account_id="A1", batch=[trade(1)], now=NOW, cursor="42", watermark=mark)
    [account] = await store.list_accounts("c1")
    assert (account.watermark, account.cursor) == (mark, "42")
    await store.store_batch(connection_id="c1", account_id="A1", batch=[], now=NOW, cursor=None, watermark=None)
    [account] = await store.list_accounts("c1")
    assert (account.watermark, account.cursor) == (mark, "42")  # a page without a cursor keeps the last one


async def test_a_lost_lease_rolls_the_batch_back(store: Store) -> None:
    from brokersync import LeaseLostError

    ttl = dt.timedelta(minutes=1)
    assert await store.acquire_lease("c1", holder="me", run_id="r1", now=NOW, ttl=ttl)
    assert not await store.acquire_lease("c1", holder="other", run_id="r2", now=NOW, ttl=ttl)
    assert await store.acquire_lease("c1", holder="other", run_id="r2", now=NOW + ttl, ttl=ttl)  # mine expired

    with pytest.raises(LeaseLostError, match="another sync took over"):
        await store.store_batch(
            connection_id="c1", account_id="A1", batch=[trade(1)], now=NOW, cursor="7", lease=("me", NOW + ttl)
        )
    assert await store.count_trades() == 0
    assert [a.cursor for a in await store.list_accounts("c1")] == [None]


def test_fingerprint_covers_normalized_fields_not_raw() -> None:
    assert fingerprint(trade(1)) == fingerprint(trade(1, raw={"other": True}))
    assert fingerprint(trade(1)) != fingerprint(trade(1, fees=Decimal("4.19")))
    eastern = dt.timezone(dt.timedelta(hours=-5))
    same_instant = trade(1).opened_at.astimezone(eastern)
    assert fingerprint(trade(1)) == fingerprint(trade(1, opened_at=same_instant))


def test_in_memory_sqlite_and_unknown_databases_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="SQLite file"):
        Store("sqlite:///:memory:")
    with pytest.raises(ConfigurationError, match="supports SQLite and PostgreSQL") as caught:
        Store("mysql://user:hunter2@db/x")
    assert "hunter2" not in str(caught.value)


async def test_an_unreachable_database_is_a_store_error_without_the_password() -> None:
    from brokersync import BrokerSync, StoreError

    engine = BrokerSync("postgresql://bob:hunter2@127.0.0.1:1/brokersync", encryption_keys="k1:" + "A" * 43 + "=")
    try:
        with pytest.raises(StoreError, match="cannot reach the database") as caught:
            await engine.list_connections()
        with pytest.raises(StoreError, match="127.0.0.1"):
            await engine.upgrade_database()
    finally:
        await engine.aclose()
    assert "hunter2" not in str(caught.value)


async def test_large_batches_are_classified_completely(store: Store) -> None:
    batch = [trade(i) for i in range(1234)]  # more ids than one lookup statement takes on SQLite
    first = await store.store_batch(connection_id="c1", account_id="A1", batch=batch, now=NOW)
    batch[1200] = trade(1200, fees=Decimal("0.01"))
    second = await store.store_batch(connection_id="c1", account_id="A1", batch=batch, now=NOW)

    assert (first.imported, first.skipped, first.updated) == (1234, 0, 0)
    assert (second.imported, second.skipped, second.updated) == (0, 1233, 1)
