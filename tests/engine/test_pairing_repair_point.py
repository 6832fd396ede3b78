"""A late, corrected or busted execution re-pairs its instrument from the earliest execution it affects.

On SQLite and PostgreSQL, through the store: round trips closed before that point are neither read
nor written (an early execution altered behind the store's back does not leak into them, and their
``updated_at`` stays), only the round trips that really change count as updated, FIFO and LIFO alike;
and for any pages of executions over several instruments, in any order, with corrections that move
an execution in time or to another instrument, and busts, the stored round trips and open positions
equal pairing the final executions from scratch.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import tempfile
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from _postgres import fresh_database
from brokersync import Account, Execution, ExecutionCancellation, Instrument, Side
from brokersync._store import Store
from brokersync.pairing import pair_executions
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

pytestmark = pytest.mark.anyio

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
LATER = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
T0 = dt.datetime(2025, 3, 3, 14, 30, tzinfo=dt.UTC)
ACCOUNT = "A1"
STOCK = Instrument(symbol="MSFT", currency="USD")
INSTRUMENTS = [
    STOCK,
    Instrument(symbol="ESZ6", asset_class="future", currency="USD", multiplier=50, instrument_id="4955"),
]


async def _store(url: str, method: str = "fifo", cid: str = "c1") -> Store:
    store = Store(url)
    await store.upgrade()
    await store.create_connection(
        {"id": cid, "user_id": "u", "broker": "b", "environment": "live", "status": "active",
         "created_at": NOW, "updated_at": NOW},
        [Account(id=ACCOUNT)],
        NOW,
    )  # fmt: skip
    if method != "fifo":
        await store.set_pairing_method(cid, method, now=NOW)
    return store


@pytest.fixture(params=["fifo", "lifo"])
async def store(request: pytest.FixtureRequest, db_url: str) -> AsyncIterator[Store]:
    store = await _store(db_url, request.param)
    yield store
    await store.aclose()


def _fill(
    n: int,
    side: str,
    quantity: int,
    price: str,
    second: int,
    instrument: Instrument = STOCK,
    fees: str = "1.01",
    fee_currency: str | None = None,
) -> Execution:
    return Execution(
        broker_execution_id=f"X{n:04d}",
        account_id=ACCOUNT,
        instrument=instrument,
        side=Side(side),
        quantity=Decimal(quantity),
        price=Decimal(price),
        executed_at=T0 + dt.timedelta(seconds=second),
        fees=Decimal(fees),
        fee_currency=fee_currency,
    )


def _history() -> list[Execution]:
    """A long history: scale in twice, scale out in three pieces, over and over (60 fills, one every 10 s)."""
    pattern = [("buy", 2), ("buy", 3), ("sell", 1), ("sell", 3), ("sell", 1)]
    return [_fill(n, *pattern[n % 5], str(100 + n % 7), n * 10) for n in range(60)]


def _values(trips: dict[str, object]) -> dict[str, tuple[object, ...]]:
    """What a user sees of each round trip, fees in other currencies (``raw``) included."""
    return {
        k: (t.quantity, t.entry_price, t.exit_price, t.realized_pnl, t.fees, t.opened_at, t.closed_at,  # type: ignore[attr-defined]
            *(t.raw.get(name) for name in ("other_fees", "opening_fee_currency", "closing_fee_currency")))  # type: ignore[attr-defined]
        for k, t in trips.items()
    }  # fmt: skip


# a fee in the instrument's currency (implicit or named) or in another one, in its own exponent
FEES = st.sampled_from([("1.01", None), ("0.25", "USD"), ("0.0003", "BNB"), ("0.00001", "BTC")])


async def test_a_late_fill_in_the_middle_leaves_the_round_trips_closed_before_it_alone(store: Store) -> None:
    method = await _method(store)
    history = _history()
    await store.store_batch(connection_id="c1", account_id=ACCOUNT, batch=(), executions=history, now=NOW)
    # Behind the store's back, the first execution's price changes: a re-pair that read the history
    # from its start would carry it into the first round trips.
    async with store.write() as conn:
        await conn.execute(text("UPDATE executions SET price = '999' WHERE broker_execution_id = 'X0000'"))

    late = _fill(900, "sell", 2, "120", 405)  # between X0040 and X0041
    counts = await store.store_batch(connection_id="c1", account_id=ACCOUNT, batch=(), executions=[late], now=LATER)

    before = {t.broker_trade_id: t for t in pair_executions(history, method=method).round_trips}
    after = {t.broker_trade_id: t for t in pair_executions([*history, late], method=method).round_trips}
    old, new = _values(before), _values(after)
    changed = [k for k in old.keys() & new.keys() if old[k] != new[k]]
    assert (counts.imported, counts.updated, counts.cancelled) == (
        len(new.keys() - old.keys()),
        len(changed),
        len(old.keys() - new.keys()),
    )
    assert counts.imported + counts.updated + counts.cancelled > 0
    stored = {t.broker_trade_id: t async for t in store.iter_trades(connection_ids=["c1"])}
    assert _values(stored) == new  # X0000's altered price reached no round trip
    point = late.executed_at
    untouched = [t for t in stored.values() if t.closed_at is not None and t.closed_at < point]
    assert len(untouched) >= 20
    assert {t.updated_at for t in untouched} == {NOW}
    assert all(stored[k].updated_at == LATER for k in changed)


async def _method(store: Store) -> str:
    async with store.read() as conn:
        value = (await conn.execute(text("SELECT pairing_method FROM connections WHERE id = 'c1'"))).scalar()
    return str(value or "fifo")


async def test_a_bust_in_the_middle_re_pairs_from_it_and_tombstones_what_it_closed(store: Store) -> None:
    method = await _method(store)
    history = _history()
    await store.store_batch(connection_id="c1", account_id=ACCOUNT, batch=(), executions=history, now=NOW)
    bust = ExecutionCancellation(account_id=ACCOUNT, broker_execution_id="X0043", cancelled_at=LATER)
    counts = await store.store_batch(
        connection_id="c1", account_id=ACCOUNT, batch=(), execution_cancellations=[bust], now=LATER
    )
    live = [e for e in history if e.broker_execution_id != "X0043"]
    expected = _values({t.broker_trade_id: t for t in pair_executions(live, method=method).round_trips})
    stored = {t.broker_trade_id: t async for t in store.iter_trades(connection_ids=["c1"])}
    assert _values(stored) == expected
    assert counts.cancelled >= 1
    assert {t.updated_at for t in stored.values() if t.closed_at < history[43].executed_at} == {NOW}  # type: ignore[operator]


# --- the property, through the store, on both databases -----------------------------------------


@st.composite
def pages(draw: st.DrawFn) -> tuple[str, list[list[object]]]:
    """Pages of executions (two instruments), corrections (time, quantity, instrument) and busts."""
    count = draw(st.integers(1, 14))
    fills = [
        _fill(i, draw(st.sampled_from(["buy", "sell"])), draw(st.integers(1, 4)), str(draw(st.integers(90, 110))),
              draw(st.integers(0, 30)), draw(st.sampled_from(INSTRUMENTS)), *draw(FEES))
        for i in range(count)
    ]  # fmt: skip
    events: list[object] = list(draw(st.permutations(fills)))
    for _ in range(draw(st.integers(0, 4))):
        target = draw(st.sampled_from(fills))
        if draw(st.booleans()):
            events.insert(draw(st.integers(0, len(events))), ("bust", target.broker_execution_id))
        else:
            n = int(target.broker_execution_id[1:])
            correction = _fill(n, target.side.value, draw(st.integers(1, 4)), str(target.price),
                               draw(st.integers(0, 30)), draw(st.sampled_from(INSTRUMENTS)), *draw(FEES))  # fmt: skip
            events.insert(draw(st.integers(events.index(target) + 1, len(events))), correction)
    cuts = sorted(draw(st.lists(st.integers(0, len(events)), max_size=4)))
    split = [events[a:b] for a, b in zip([0, *cuts], [*cuts, len(events)], strict=True)]
    return draw(st.sampled_from(["fifo", "lifo"])), [page for page in split if page]


async def _check(url: str, method: str, split: list[list[object]]) -> None:
    cid = uuid.uuid4().hex[:12]  # one database, a connection per example
    store = await _store(url, method, cid)
    try:
        final: dict[str, Execution] = {}
        busted: set[str] = set()
        for page in split:
            fills = [e for e in page if isinstance(e, Execution)]
            busts = [
                ExecutionCancellation(account_id=ACCOUNT, broker_execution_id=e[1], cancelled_at=NOW)  # type: ignore[index]
                for e in page
                if isinstance(e, tuple)
            ]
            await store.store_batch(
                connection_id=cid,
                account_id=ACCOUNT,
                batch=(),
                executions=fills,
                execution_cancellations=busts,
                now=NOW,
            )
            final.update((e.broker_execution_id, e) for e in fills)
            busted.update(b.broker_execution_id for b in busts)
        live = [e for k, e in final.items() if k not in busted]
        expected: dict[str, object] = {}
        position: dict[str, Decimal] = {}
        lots: set[tuple[object, ...]] = set()
        for instrument in INSTRUMENTS:
            result = pair_executions([e for e in live if e.instrument == instrument], method=method)
            expected.update((t.broker_trade_id, t) for t in result.round_trips)
            lots.update((instrument.pairing_key, lot.broker_execution_id, lot.quantity, lot.fees, lot.fee_currency)
                        for lot in result.open_lots)  # fmt: skip
            if result.position:
                position[instrument.pairing_key] = result.position
        stored = {t.broker_trade_id: t async for t in store.iter_trades(connection_ids=[cid])}
        assert _values(stored) == _values(expected)
        stored_lots = await _open_lots(store, cid)
        assert stored_lots == lots  # the unassigned fees keep their currency, across pages and re-pairs
        # per currency, round trips and open lots hold exactly the live executions' fees
        held: dict[str, Decimal] = defaultdict(Decimal)
        for trip in stored.values():
            held[trip.currency] += trip.fees
            for currency, amount in trip.raw.get("other_fees", {}).items():
                held[currency] += Decimal(amount)
        by_id = {e.broker_execution_id: e for e in live}
        for _, execution_id, _, fees, _ in stored_lots:
            held[by_id[execution_id].fee_currency or by_id[execution_id].instrument.currency] += fees
        paid: dict[str, Decimal] = defaultdict(Decimal)
        for e in live:
            paid[e.fee_currency or e.instrument.currency] += e.fees
        assert {c: v for c, v in held.items() if v} == {c: v for c, v in paid.items() if v}
        positions = await store.positions(connection_ids=[cid], account_id=ACCOUNT)
        assert {p.instrument.pairing_key: p.quantity for p in positions} == position
        again = await store.store_batch(
            connection_id=cid, account_id=ACCOUNT, batch=(), executions=list(final.values()), now=LATER
        )
        assert (again.imported, again.updated, again.cancelled) == (0, 0, 0)
    finally:
        await store.aclose()


async def _open_lots(store: Store, cid: str) -> set[tuple[object, ...]]:
    async with store.read() as conn:
        rows = await conn.execute(
            text(
                "SELECT instrument_key, broker_execution_id, quantity, fees, fee_currency FROM open_lots "
                "WHERE connection_id = :cid"
            ),
            {"cid": cid},
        )
        return {(key, opening, Decimal(str(q)), Decimal(str(f)), currency) for key, opening, q, f, currency in rows}


def _run(url: str, examples: int) -> None:
    @settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(pages())
    def check(scenario: tuple[str, list[list[object]]]) -> None:
        asyncio.run(_check(url, *scenario))

    check()


def test_re_pairing_from_a_point_equals_pairing_from_scratch_on_sqlite() -> None:
    with tempfile.TemporaryDirectory() as directory:
        _run(f"sqlite+aiosqlite:///{Path(directory) / 'repair.db'}", examples=60)


@pytest.mark.integration
def test_re_pairing_from_a_point_equals_pairing_from_scratch_on_postgresql() -> None:
    _run(fresh_database(), examples=12)


async def test_migration_0008_gives_stored_round_trips_their_closing_time(db_url: str) -> None:
    store = Store(db_url)
    try:
        await store.upgrade("0007")
        await store.create_connection(
            {"id": "c1", "user_id": "u", "broker": "b", "environment": "live", "status": "active",
             "created_at": NOW, "updated_at": NOW},
            [Account(id=ACCOUNT)],
            NOW,
        )  # fmt: skip
        closed = T0 + dt.timedelta(seconds=10)
        async with store.write() as conn:
            for execution_id, side, when in (("O1", "buy", T0), ("C1", "sell", closed)):
                await conn.execute(
                    text(
                        "INSERT INTO executions (connection_id, account_id, broker_execution_id, instrument_key, "
                        "instrument, side, quantity, price, executed_at, fees, kind, raw, fingerprint, "
                        "first_seen_at, updated_at) VALUES ('c1', :a, :id, 'MSFT', '{}', :side, 1, 100, :at, 0, "
                        "'fill', '{}', 'f', :now, :now)"
                    ),
                    {
                        "a": ACCOUNT,
                        "id": execution_id,
                        "side": side,
                        "at": _stored_time(db_url, when),
                        "now": _stored_time(db_url, NOW),
                    },
                )
            await conn.execute(
                text(
                    "INSERT INTO round_trips (connection_id, account_id, broker_trade_id, instrument_key, "
                    "opening_execution_id, closing_execution_id) VALUES ('c1', :a, 'O1>C1', 'MSFT', 'O1', 'C1')"
                ),
                {"a": ACCOUNT},
            )
        assert await store.upgrade() == ("0007", Store.head())
        async with store.read() as conn:
            value = (await conn.execute(text("SELECT closed_at FROM round_trips"))).scalar()
        assert value in (closed, _stored_time(db_url, closed))
    finally:
        await store.aclose()


def _stored_time(db_url: str, value: dt.datetime) -> object:
    """A time as the database stores it (SQLite: the fixed-width UTC text)."""
    return value.strftime("%Y-%m-%d %H:%M:%S.%f") if db_url.startswith("sqlite") else value


async def test_a_re_pair_longer_than_a_slice_equals_pairing_from_scratch(store: Store) -> None:
    """More executions after the point than one slice holds (2,048): boundaries, a bust, a moved fill."""
    method = await _method(store)
    pattern = [("buy", 2), ("buy", 3), ("sell", 1), ("sell", 3), ("sell", 1), ("sell", 2), ("buy", 2)]
    history = [_fill(n, *pattern[n % 7], str(100 + n % 11), n * 10) for n in range(5000)]
    await store.store_batch(connection_id="c1", account_id=ACCOUNT, batch=(), executions=history, now=NOW)
    late = _fill(9000, "sell", 4, "120", 4005)  # early: ~4,600 executions after it, over three slices
    moved = _fill(2100, "buy", 3, "99", 45_005)  # a correction: from slice one to the last one
    bust = ExecutionCancellation(account_id=ACCOUNT, broker_execution_id="X3000", cancelled_at=LATER)
    counts = await store.store_batch(
        connection_id="c1",
        account_id=ACCOUNT,
        batch=(),
        executions=[late, moved],
        execution_cancellations=[bust],
        now=LATER,
    )
    final = {e.broker_execution_id: e for e in [*history, late, moved] if e.broker_execution_id != "X3000"}
    result = pair_executions(final.values(), method=method)
    before = _values({t.broker_trade_id: t for t in pair_executions(history, method=method).round_trips})
    expected = _values({t.broker_trade_id: t for t in result.round_trips})
    stored = {t.broker_trade_id: t async for t in store.iter_trades(connection_ids=["c1"])}
    assert _values(stored) == expected
    (position,) = await store.positions(connection_ids=["c1"], account_id=ACCOUNT)
    assert position.quantity == result.position
    assert counts.cancelled == len(before.keys() - expected.keys())
    assert counts.imported == len(expected.keys() - before.keys())
    assert counts.updated == sum(1 for k in before.keys() & expected.keys() if before[k] != expected[k])
