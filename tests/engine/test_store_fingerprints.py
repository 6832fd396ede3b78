"""Fingerprints: numerically equal decimals are the same trade, stored fingerprints match the
trade's, and the 0003 migration rewrites fingerprints the previous version stored."""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal

import attrs
import pytest
from brokersync import Account, Direction, Trade
from brokersync._store import Store, fingerprint
from brokersync._store._fingerprints import canonical_decimal
from brokersync._store._types import utc_text
from engine_support import downgrade_schema
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text

pytestmark = pytest.mark.anyio

NOW = dt.datetime(2025, 3, 3, 12, 0, tzinfo=dt.UTC)
MIGRATION = "0003"


def trade(index: int, **changes: object) -> Trade:
    base = Trade(
        broker_trade_id=f"T{index}",
        account_id="A1",
        symbol="ESZ4",
        direction=Direction.LONG,
        opened_at=NOW - dt.timedelta(days=1, minutes=index, microseconds=index),
        closed_at=NOW - dt.timedelta(days=1),
        entry_price=Decimal("4312.25"),
        exit_price=Decimal("4313.5"),
        quantity=Decimal(2),
        realized_pnl=Decimal("125.5"),
        fees=Decimal("4.18"),
        currency="USD",
        raw={"id": index},
    )
    return attrs.evolve(base, **changes)


# Trades whose decimals are written with trailing zeros or an exponent (what a broker may send),
# and one without (its fingerprint never changed).
TRADES = [
    trade(0, entry_price=Decimal("4312.50"), exit_price=Decimal("4313.50"), realized_pnl=Decimal("125.00")),
    trade(1, quantity=Decimal("2.0"), fees=Decimal("4.10")),
    trade(2, quantity=Decimal("1E+1"), exit_price=None, realized_pnl=None, closed_at=None),
    trade(3, fees=Decimal("0.00"), realized_pnl=Decimal("-0.0")),
    trade(4),
]


def exact_fingerprint(t: Trade) -> str:
    """The fingerprint the previous version stored: each decimal's exact text."""
    closed = "" if t.closed_at is None else utc_text(t.closed_at)
    fields = (t.symbol, t.direction.value, utc_text(t.opened_at), closed, t.entry_price, t.exit_price, t.quantity)
    fields += (t.realized_pnl, t.fees, t.currency)
    return hashlib.blake2b("\x1f".join(str(f) for f in fields).encode(), digest_size=16).hexdigest()


# --- canonical decimal text ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("texts", "canonical"),
    [
        (["1.5", "1.50", "15E-1", "0.15E+1", "1.500000"], "1.5"),
        (["100", "1E+2", "1.00E+2", "100.000", "10E+1"], "100"),
        (["0", "-0", "0.000", "-0.00", "0E+3", "-0E-7"], "0"),
        (["-2.10", "-2.1", "-21E-1"], "-2.1"),
        (["0.0000001", "1E-7", "1.0E-7"], "0.0000001"),
        (["1E+2000", "1.000E+2000"], "1E+2000"),
        (["-12345E-2003", "-1.2345000E-1999"], "-12345E-2003"),
    ],
)
def test_numerically_equal_decimals_have_one_canonical_text(texts: list[str], canonical: str) -> None:
    assert {canonical_decimal(str(Decimal(value))) for value in texts} == {canonical}


def test_a_huge_integer_written_out_and_with_an_exponent_is_the_same_number() -> None:
    written_out = str(Decimal(10**2000))  # 2001 digits, no exponent
    assert canonical_decimal(written_out) == canonical_decimal(str(Decimal("1E+2000"))) == "1E+2000"


finite = st.decimals(allow_nan=False, allow_infinity=False)


@given(value=finite, zeros=st.integers(0, 30))
def test_rescaling_a_decimal_keeps_its_canonical_text(value: Decimal, zeros: int) -> None:
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    rescaled = Decimal((sign, (*digits, *(0,) * zeros), exponent - zeros))
    assert rescaled == value
    assert canonical_decimal(str(rescaled)) == canonical_decimal(str(value))
    assert Decimal(canonical_decimal(str(value))) == value  # the canonical text is the same number


@given(first=finite, second=finite)
def test_different_numbers_have_different_canonical_texts(first: Decimal, second: Decimal) -> None:
    same_text = canonical_decimal(str(first)) == canonical_decimal(str(second))
    assert same_text == (first == second)


# --- through the store -----------------------------------------------------------------------------


@pytest.fixture
async def store(db_url: str) -> Store:
    store = Store(db_url)
    await store.upgrade()
    await connect(store)
    yield store
    await store.aclose()


async def connect(store: Store) -> None:
    await store.create_connection(
        {"id": "c1", "user_id": "u", "broker": "b", "environment": "live", "status": "active",
         "credentials": "v1:k:x", "created_at": NOW, "updated_at": NOW},
        [Account(id="A1")],
        NOW,
    )  # fmt: skip


async def stored_fingerprints(store: Store) -> dict[str, str]:
    async with store.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT broker_trade_id, fingerprint FROM trades"))).all()
    return {str(row[0]): str(row[1]) for row in rows}


async def test_the_stored_fingerprint_is_the_fingerprint_of_the_trade(store: Store) -> None:
    # The store computes fingerprints inline (its fast path); fingerprint() is the reference.
    values = ["3", "30", "0.30", "3.0E+5", "-7.10"]
    more = [
        trade(10 + i, quantity=Decimal(value).copy_abs(), realized_pnl=Decimal(value)) for i, value in enumerate(values)
    ]
    await store.store_batch(connection_id="c1", account_id="A1", batch=[*TRADES, *more], now=NOW)

    assert await stored_fingerprints(store) == {t.broker_trade_id: fingerprint(t) for t in [*TRADES, *more]}


async def test_a_scale_change_is_skipped_and_a_value_change_is_updated(store: Store) -> None:
    await store.store_batch(connection_id="c1", account_id="A1", batch=[trade(0), trade(1)], now=NOW)
    rescaled = [trade(0, entry_price=Decimal("4312.250"), quantity=Decimal("2.00")), trade(1, fees=Decimal("4.180"))]
    counts = await store.store_batch(connection_id="c1", account_id="A1", batch=rescaled, now=NOW)
    assert (counts.imported, counts.skipped, counts.updated) == (0, 2, 0)

    corrected = [trade(0, entry_price=Decimal("4312.26")), trade(1)]
    counts = await store.store_batch(connection_id="c1", account_id="A1", batch=corrected, now=NOW)
    assert (counts.imported, counts.skipped, counts.updated) == (0, 1, 1)
    stored = {t.broker_trade_id: t async for t in store.iter_trades(connection_ids=["c1"])}
    assert stored["T0"].entry_price == Decimal("4312.26")


# --- the 0003 migration ----------------------------------------------------------------------------


def revision_before_migration() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", "brokersync:_migrations")
    before = ScriptDirectory.from_config(config).get_revision(MIGRATION).down_revision
    assert isinstance(before, str)
    return before


async def write_as_previous_version(store: Store, trades: list[Trade]) -> None:
    """Store ``trades`` with the fingerprints the version before 0003 wrote."""
    await store.store_batch(connection_id="c1", account_id="A1", batch=trades, now=NOW)
    async with store.engine.begin() as conn:
        for t in trades:
            await conn.execute(
                text("UPDATE trades SET fingerprint = :fp WHERE broker_trade_id = :id"),
                {"fp": exact_fingerprint(t), "id": t.broker_trade_id},
            )


async def test_upgrading_rewrites_old_fingerprints_so_a_resync_updates_nothing(db_url: str) -> None:
    store = Store(db_url)
    try:
        await store.upgrade(revision_before_migration())
        await connect(store)
        await write_as_previous_version(store, TRADES)
        old = await stored_fingerprints(store)
        # Without the migration these would all count as updated on the next sync (not T4: no
        # trailing zero, no exponent, so its fingerprint is the same in both versions).
        assert {
            tid for tid, fp in old.items() if fp != fingerprint(next(t for t in TRADES if t.broker_trade_id == tid))
        }
        assert old["T4"] == fingerprint(TRADES[4])

        before, after = await store.upgrade()
        assert (before, after) == (revision_before_migration(), Store.head())
        assert await stored_fingerprints(store) == {t.broker_trade_id: fingerprint(t) for t in TRADES}

        counts = await store.store_batch(connection_id="c1", account_id="A1", batch=TRADES, now=NOW)
        assert (counts.imported, counts.skipped, counts.updated) == (0, len(TRADES), 0)
        changed = [*TRADES[:2], attrs.evolve(TRADES[2], quantity=Decimal("11"))]
        counts = await store.store_batch(connection_id="c1", account_id="A1", batch=changed, now=NOW)
        assert (counts.imported, counts.skipped, counts.updated) == (0, 2, 1)
    finally:
        await store.aclose()


async def test_the_migration_works_in_batches_and_downgrades_to_the_exact_fingerprints(db_url: str) -> None:
    store = Store(db_url)
    try:
        await store.upgrade(revision_before_migration())
        await connect(store)
        many = [trade(100 + i, entry_price=Decimal(f"{4000 + i}.{i % 10}0")) for i in range(5001)]  # > one batch
        await write_as_previous_version(store, many)
        await store.upgrade()
        assert await stored_fingerprints(store) == {t.broker_trade_id: fingerprint(t) for t in many}

        await downgrade_schema(store.engine, revision_before_migration())
        assert await stored_fingerprints(store) == {t.broker_trade_id: exact_fingerprint(t) for t in many}
    finally:
        await store.aclose()
