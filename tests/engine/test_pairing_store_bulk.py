"""The store's bulk pairing path, on SQLite and PostgreSQL: large pages, crypto currencies, re-pairs.

A page larger than one multi-row statement (256 rows) is stored and paired; what a user reads back
(round trips with their prices, fees, P&L and raw audit fields; open positions) equals pairing the
same executions from scratch with the public ``pair_executions``. A round trip in ``USDT`` (a
four-letter crypto ticker) is stored and listed on both databases.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal

import attrs
import pytest
from brokersync import Account, Execution, Instrument, Side, Trade
from brokersync._store import Store
from brokersync.pairing import pair_executions

pytestmark = pytest.mark.anyio

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
T0 = dt.datetime(2025, 3, 3, 14, 30, tzinfo=dt.UTC)
ACCOUNT = "A1"
BTC = Instrument(symbol="BTC/USDT", asset_class="crypto", currency="USDT")
STOCKS = [Instrument(symbol=f"S{i}", currency="USD") for i in range(3)]
FUTURE = Instrument(symbol="ESZ6", asset_class="future", currency="USD", multiplier=50, instrument_id="4955")


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    store = Store(db_url)
    await store.upgrade()
    await store.create_connection(
        {"id": "c1", "user_id": "u", "broker": "b", "environment": "live", "status": "active",
         "created_at": NOW, "updated_at": NOW},
        [Account(id=ACCOUNT)],
        NOW,
    )  # fmt: skip
    yield store
    await store.aclose()


def _executions(count: int, start: int = 0, *, late: bool = False) -> list[Execution]:
    """Fills over 4 instruments: runs of buys then sells of uneven sizes (partials, reversals, scale-ins)."""
    instruments = [*STOCKS, FUTURE]
    result = []
    for n in range(start, start + count):
        k = n // len(instruments)
        result.append(
            Execution(
                broker_execution_id=f"X{n:06d}",
                account_id=ACCOUNT,
                instrument=instruments[n % len(instruments)],
                side=Side.BUY if (k // 3) % 2 == 0 else Side.SELL,
                quantity=Decimal(1 + (n * 7) % 5),
                price=Decimal(100 + n % 37) + Decimal("0.25"),
                executed_at=T0 + dt.timedelta(seconds=-n if late else n),
                fees=Decimal("1.01") if n % 3 else Decimal("0.35"),
            )
        )
    return result


def _expected(executions: list[Execution]) -> tuple[dict[str, Trade], dict[str, Decimal]]:
    by_key: dict[str, list[Execution]] = {}
    for e in executions:
        by_key.setdefault(e.instrument.pairing_key, []).append(e)
    trips: dict[str, Trade] = {}
    positions: dict[str, Decimal] = {}
    for key, group in by_key.items():
        result = pair_executions(group)
        trips.update((t.broker_trade_id, t) for t in result.round_trips)
        if result.position:
            positions[key] = result.position
    return trips, positions


async def _stored(store: Store) -> tuple[dict[str, Trade], dict[str, Decimal]]:
    trips = {t.broker_trade_id: t async for t in store.iter_trades(connection_ids=["c1"])}
    positions = {
        p.instrument.pairing_key: p.quantity for p in await store.positions(connection_ids=["c1"], account_id=ACCOUNT)
    }
    return {k: Trade(**{f.name: getattr(t, f.name) for f in attrs.fields(Trade)}) for k, t in trips.items()}, positions


def _same(stored: dict[str, Trade], expected: dict[str, Trade]) -> None:
    assert stored.keys() == expected.keys()
    for trade_id, trade in expected.items():
        assert stored[trade_id] == trade, trade_id
        assert stored[trade_id].raw == trade.raw, trade_id


async def test_a_page_larger_than_one_statement_stores_what_pairing_from_scratch_gives(store: Store) -> None:
    executions = _executions(1300)
    counts = await store.store_batch(
        connection_id="c1", account_id=ACCOUNT, batch=(), executions=executions[:1100], now=NOW
    )
    more = await store.store_batch(
        connection_id="c1", account_id=ACCOUNT, batch=(), executions=executions[1000:], now=NOW
    )  # 100 sent again, 200 new: pairing continues from the stored open lots

    expected, positions = _expected(executions)
    stored, stored_positions = await _stored(store)
    _same(stored, expected)
    assert stored_positions == positions
    assert counts.imported + more.imported == len(expected)
    assert more.skipped == 100


async def test_a_late_page_re_pairs_every_instrument_it_touches(store: Store) -> None:
    first = _executions(600)
    await store.store_batch(connection_id="c1", account_id=ACCOUNT, batch=(), executions=first, now=NOW)
    late = _executions(8, start=600, late=True)  # before everything stored, two per instrument
    counts = await store.store_batch(connection_id="c1", account_id=ACCOUNT, batch=(), executions=late, now=NOW)

    expected, positions = _expected(first + late)
    everything = {t.broker_trade_id async for t in store.iter_trades(connection_ids=["c1"], include_cancelled=True)}
    live, stored_positions = await _stored(store)
    _same(live, expected)
    assert stored_positions == positions
    assert counts.cancelled == len(everything - expected.keys())  # round trips that no longer exist: tombstoned
    assert counts.cancelled > 0


async def test_a_usdt_round_trip_is_stored_and_listed(store: Store) -> None:
    buy = Execution(broker_execution_id="b1", account_id=ACCOUNT, instrument=BTC, side="buy",
                    quantity=Decimal("0.5"), price=Decimal("60000.10"), executed_at=T0, fees=Decimal("0.03"),
                    fee_currency="USDT")  # fmt: skip
    sell = attrs.evolve(buy, broker_execution_id="s1", side="sell", price=Decimal("61000.10"),
                        executed_at=T0 + dt.timedelta(hours=1))  # fmt: skip
    reported = Trade(broker_trade_id="r1", account_id=ACCOUNT, symbol="ETH/USDT", direction="long", opened_at=T0,
                     closed_at=T0, entry_price=Decimal("3000"), exit_price=Decimal("3100"), quantity=Decimal(1),
                     realized_pnl=Decimal(100), currency="USDT")  # fmt: skip

    await store.store_batch(connection_id="c1", account_id=ACCOUNT, batch=[reported], executions=[buy, sell], now=NOW)

    trades = {t.broker_trade_id: t async for t in store.iter_trades(connection_ids=["c1"])}
    assert {t.currency for t in trades.values()} == {"USDT"}
    assert trades["b1>s1"].realized_pnl == Decimal("500.000")
    assert trades["b1>s1"].fees == Decimal("0.06")
    assert trades["r1"].realized_pnl == Decimal(100)


@pytest.mark.integration
async def test_postgresql_plans_from_fresh_statistics_after_a_bulk_write() -> None:
    # Without statistics PostgreSQL takes a just-filled table for an empty one: listing 1,000 round
    # trips right after storing them took 160 s. The store refreshes them as its writes double.
    from _postgres import fresh_database
    from sqlalchemy import text

    store = Store(fresh_database())
    try:
        await store.upgrade()
        await store.create_connection(
            {"id": "c1", "user_id": "u", "broker": "b", "environment": "live", "status": "active",
             "created_at": NOW, "updated_at": NOW},
            [Account(id=ACCOUNT)],
            NOW,
        )  # fmt: skip

        async def estimated_rows() -> float:
            async with store.engine.connect() as conn:
                query = text("SELECT reltuples FROM pg_class WHERE relname = 'executions'")
                return float((await conn.execute(query)).scalar_one())

        executions = _executions(1300)
        await store.store_batch(connection_id="c1", account_id=ACCOUNT, batch=(), executions=executions[:100], now=NOW)
        assert await estimated_rows() < 0  # a small write: never analyzed yet (PostgreSQL says -1)
        await store.store_batch(connection_id="c1", account_id=ACCOUNT, batch=(), executions=executions[100:], now=NOW)
        assert await estimated_rows() == 1300  # analyzed: a table this small is sampled whole
    finally:
        await store.aclose()
