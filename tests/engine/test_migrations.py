"""Every migration goes down and up again, and the data a user synced survives the round trip."""

from __future__ import annotations

from pathlib import Path

import fakebroker
import pytest
from brokersync import BrokerSync
from brokersync._store import Store
from engine_support import downgrade_schema
from sqlalchemy import text

pytestmark = pytest.mark.anyio

VERSIONS = Path(__file__).parents[2] / "core" / "src" / "brokersync" / "_migrations" / "versions"


def _revisions() -> list[str]:
    return sorted(path.name.split("_", 1)[0] for path in VERSIONS.glob("[0-9]*_*.py"))


def test_the_newest_migration_file_is_the_head() -> None:
    revisions = _revisions()
    assert revisions == sorted(set(revisions)), "two migrations share a number"
    assert Store.head() == revisions[-1]


async def test_each_migration_downgrades_and_upgrades_with_trades_kept(engine: BrokerSync, db_url: str) -> None:
    connected = await engine.connect_broker("u1", fakebroker.KEY, fakebroker.CREDENTIALS)
    await engine.sync_broker_trades(connected.connection_id, "u1")
    before = [(t.broker_trade_id, t.entry_price, t.realized_pnl) async for t in engine.iter_trades(user_id="u1")]
    assert before

    store = Store(db_url)
    try:
        for target in reversed(_revisions()[:-1]):  # one step down at a time, to the first revision
            await downgrade_schema(store.engine, target)
            assert await store.revision() == target
        async with store.engine.connect() as conn:
            stored = (await conn.execute(text("SELECT count(*) FROM trades"))).scalar_one()
        assert stored == len(before)
        assert await store.upgrade() == (_revisions()[0], Store.head())
    finally:
        await store.aclose()

    after = [(t.broker_trade_id, t.entry_price, t.realized_pnl) async for t in engine.iter_trades(user_id="u1")]
    assert after == before
    again = await engine.sync_broker_trades(connected.connection_id, "u1")
    assert (again.imported, again.updated, again.skipped) == (0, 0, len(before))


async def test_an_account_in_a_crypto_currency_is_stored_on_every_database(
    engine: BrokerSync, api: fakebroker.FakeBrokerApi, db_url: str
) -> None:
    # Account.currency accepts tickers such as USDT (as Trade.currency does); PostgreSQL enforced
    # the 3-character column of revision 0001 until revision 0007 widened it.
    api.account_currency = "USDT"
    connected = await engine.connect_broker("u1", fakebroker.KEY, fakebroker.CREDENTIALS)
    assert {account.currency for account in connected.accounts} == {"USDT"}
    result = await engine.sync_broker_trades(connected.connection_id, "u1")
    assert result.imported > 0
    store = Store(db_url)
    try:
        async with store.engine.connect() as conn:
            stored = (await conn.execute(text("SELECT DISTINCT currency FROM accounts"))).scalars().all()
    finally:
        await store.aclose()
    assert stored == ["USDT"]
