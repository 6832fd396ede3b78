"""Every migration goes down and up again, and the data a user synced survives the round trip."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import fakebroker
import pytest
from brokersync import Account, BrokerSync, Execution, Instrument
from brokersync._store import Store
from brokersync._store._fingerprints import fingerprint
from brokersync._store._instruments import instrument_json
from brokersync.pairing import pair_executions
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


async def test_migration_0009_gives_open_lots_the_fee_currency_of_their_opening_execution(db_url: str) -> None:
    # Lots stored before revision 0009 had fees without a currency; the upgrade takes it from the
    # opening execution, and pairing then keeps a BNB fee out of a USDT round trip's fees.
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    opened = dt.datetime(2025, 3, 3, 14, 30, tzinfo=dt.UTC)
    pair = Instrument(symbol="BTC/USDT", asset_class="crypto", currency="USDT", instrument_id="BTCUSDT")
    store = Store(db_url)
    try:
        await store.upgrade("0008")
        await store.create_connection(
            {"id": "c1", "user_id": "u", "broker": "b", "environment": "live", "status": "active",
             "created_at": now, "updated_at": now},
            [Account(id="A1")],
            now,
        )  # fmt: skip
        async with store.write() as conn:
            for execution_id, fee_currency in (("B1", "BNB"), ("B2", None)):
                params = {
                    "id": execution_id,
                    "key": pair.pairing_key,
                    "instrument": instrument_json(pair),
                    "at": _stored_time(db_url, opened),
                    "now": _stored_time(db_url, now),
                    "currency": fee_currency,
                }
                await conn.execute(
                    text(
                        "INSERT INTO executions (connection_id, account_id, broker_execution_id, instrument_key, "
                        "instrument, side, quantity, price, executed_at, fees, fee_currency, kind, raw, fingerprint, "
                        "first_seen_at, updated_at) VALUES ('c1', 'A1', :id, :key, :instrument, 'buy', 1, 42000, :at, "
                        "0.00075, :currency, 'fill', '{}', 'f', :now, :now)"
                    ),
                    params,
                )
                await conn.execute(
                    text(
                        "INSERT INTO open_lots (connection_id, account_id, instrument_key, broker_execution_id, "
                        "position, direction, quantity, price, opened_at, fees, fee_quantum) VALUES ('c1', 'A1', "
                        ":key, :id, :position, 'long', 1, 42000, :at, 0.00075, -5)"
                    ),
                    {**params, "position": int(execution_id[1]) - 1},
                )
        assert await store.upgrade() == ("0008", Store.head())
        async with store.read() as conn:
            rows = await conn.execute(text("SELECT broker_execution_id, fee_currency FROM open_lots"))
            assert dict(rows.all()) == {"B1": "BNB", "B2": None}

        close = Execution(
            broker_execution_id="S1", account_id="A1", instrument=pair, side="sell", quantity=Decimal(2),
            price=Decimal(43000), executed_at=opened + dt.timedelta(minutes=1), fees=Decimal("0.50"),
            fee_currency="USDT",
        )  # fmt: skip
        await store.store_batch(connection_id="c1", account_id="A1", batch=(), executions=[close], now=now)
        trips = {t.broker_trade_id: t async for t in store.iter_trades(connection_ids=["c1"])}
        assert {k: (t.fees, t.raw.get("other_fees")) for k, t in trips.items()} == {
            "B1>S1": (Decimal("0.25"), {"BNB": "0.00075"}),  # the BNB fee stays BNB
            "B2>S1": (Decimal("0.25075"), None),  # NULL: the instrument's currency, USDT: added
        }
    finally:
        await store.aclose()


def _stored_time(db_url: str, value: dt.datetime) -> object:
    """A time as the database stores it (SQLite: the fixed-width UTC text)."""
    return value.strftime("%Y-%m-%d %H:%M:%S.%f") if db_url.startswith("sqlite") else value


async def test_migration_0009_rewrites_round_trips_that_added_fees_of_two_currencies(db_url: str) -> None:
    # Before revision 0009 a round trip bought paying BTC and sold paying USDT had both shares in
    # its USDT fees. The upgrade rewrites it from the shares its raw recorded; others stay untouched.
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    at = dt.datetime(2025, 3, 3, 14, 30, tzinfo=dt.UTC)
    btc = Instrument(symbol="BTC/USDT", asset_class="crypto", currency="USDT", instrument_id="BTCUSDT")
    eth = Instrument(symbol="ETH/USDT", asset_class="crypto", currency="USDT", instrument_id="ETHUSDT")

    def fill(
        execution_id: str, instrument: Instrument, side: str, quantity: str, fees: str, currency: str
    ) -> Execution:
        return Execution(
            broker_execution_id=execution_id, account_id="A1", instrument=instrument, side=side,
            quantity=Decimal(quantity), price=Decimal(3000 if instrument is eth else 42000),
            executed_at=at + dt.timedelta(minutes="BSEF".index(execution_id[0])),
            fees=Decimal(fees), fee_currency=currency,
        )  # fmt: skip

    executions = [
        fill("B1", btc, "buy", "2", "0.0010", "BTC"),
        fill("S1", btc, "sell", "1", "21.50", "USDT"),
        fill("E1", eth, "buy", "1", "1.50", "USDT"),
        fill("F1", eth, "sell", "1", "1.60", "USDT"),
    ]
    store = Store(db_url)
    try:
        await store.upgrade()
        await store.create_connection(
            {"id": "c1", "user_id": "u", "broker": "b", "environment": "live", "status": "active",
             "created_at": now, "updated_at": now},
            [Account(id="A1")],
            now,
        )  # fmt: skip
        await store.store_batch(connection_id="c1", account_id="A1", batch=(), executions=executions, now=now)
        expected = {t.broker_trade_id: t for e in ([*executions[:2]], [*executions[2:]])
                    for t in pair_executions(e).round_trips}  # fmt: skip
        mixed = expected["B1>S1"]
        assert (mixed.fees, mixed.raw["other_fees"]) == (Decimal("21.50"), {"BTC": "0.0005"})
        old_raw = {k: v for k, v in mixed.raw.items() if k not in ("other_fees", "opening_fee_currency")}
        async with store.write() as conn:  # the row as revision 0008's code wrote it
            await conn.execute(
                text("UPDATE trades SET fees = :fees, raw = :raw, fingerprint = 'old' WHERE broker_trade_id = 'B1>S1'"),
                {"fees": "21.5005" if db_url.startswith("sqlite") else Decimal("21.5005"), "raw": json.dumps(old_raw)},
            )
        await downgrade_schema(store.engine, "0008")
        assert await store.upgrade() == ("0008", Store.head())

        stored = {t.broker_trade_id: t async for t in store.iter_trades(connection_ids=["c1"])}
        assert stored["B1>S1"].fees == Decimal("21.50")
        assert dict(stored["B1>S1"].raw) == dict(mixed.raw)
        assert stored["B1>S1"].updated_at > now
        assert (stored["E1>F1"].fees, stored["E1>F1"].updated_at) == (Decimal("3.10"), now)  # untouched
        async with store.read() as conn:
            fp = (await conn.execute(text("SELECT fingerprint FROM trades WHERE broker_trade_id = 'B1>S1'"))).scalar()
            lots = (await conn.execute(text("SELECT broker_execution_id, fees, fee_currency FROM open_lots"))).all()
        assert fp == fingerprint(mixed)  # a later re-pair that finds the same values counts nothing
        assert [(i, Decimal(str(f)), c) for i, f, c in lots] == [("B1", Decimal("0.0005"), "BTC")]
    finally:
        await store.aclose()
