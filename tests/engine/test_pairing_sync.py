"""The engine pairs executions into round trips across syncs, on SQLite and PostgreSQL.

Worked examples of what a user sees (round trips, counts, tombstones, positions), and a property:
for any executions arriving in any order over any number of syncs, with corrections and busts,
the stored round trips are FIFO computed from scratch on the final set, and a re-sync changes nothing.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import fillsbroker
import pytest
from _postgres import fresh_database
from brokersync import BrokerSync, Execution, Reports, Vault
from brokersync.errors import PluginContractError
from brokersync.pairing import pair_executions
from engine_support import Clock, engine_factory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.anyio


@pytest.fixture
def fills() -> Iterator[fillsbroker.FillsApi]:
    fillsbroker.register()
    yield fillsbroker.FillsApi()
    fillsbroker.unregister()


@pytest.fixture
async def sync_engine(db_url: str, fills: fillsbroker.FillsApi) -> AsyncIterator[BrokerSync]:
    async with engine_factory(
        db_url, keys=Vault.generate_key("k1"), transports={fillsbroker.KEY: fills.transport()}, clock=Clock()
    ) as make:
        engine = make()
        await engine.upgrade_database()
        yield engine


async def _trips(engine: BrokerSync, *, cancelled: bool = False) -> dict[str, tuple[Decimal, Decimal | None, Decimal]]:
    return {
        t.broker_trade_id: (t.quantity, t.realized_pnl, t.fees)
        async for t in engine.iter_trades(user_id="u1", include_cancelled=cancelled)
        if cancelled is False or t.cancelled_at is not None
    }


async def test_a_position_opened_in_one_sync_becomes_a_round_trip_when_a_later_sync_closes_it(
    sync_engine: BrokerSync, fills: fillsbroker.FillsApi
) -> None:
    connection = await sync_engine.connect_broker("u1", fillsbroker.KEY, fillsbroker.CREDENTIALS)
    fills.fill("U1", "B1", "buy", 100, "10.00", 1, commission="1.00")
    fills.fill("U1", "B2", "buy", 50, "11.00", 2)
    first = await sync_engine.sync_broker_trades(connection.connection_id, "u1")
    assert (first.imported, first.updated, first.cancelled) == (0, 0, 0)
    (position,) = await sync_engine.positions(user_id="u1")
    assert (position.symbol, position.quantity, position.source) == ("AAPL", Decimal(150), "lots")
    assert position.average_price == (Decimal(100) * 10 + Decimal(50) * 11) / 150

    fills.fill("U1", "S1", "sell", 120, "12.00", 3, commission="0.60")
    second = await sync_engine.sync_broker_trades(connection.connection_id, "u1")
    assert (second.imported, second.updated, second.cancelled) == (2, 0, 0)
    assert await _trips(sync_engine) == {
        "B1>S1": (Decimal(100), Decimal(200), Decimal("1.50")),  # 1.00 + 100/120 of 0.60
        "B2>S1": (Decimal(20), Decimal(20), Decimal("0.10")),
    }
    (position,) = await sync_engine.positions(user_id="u1", connection_id=connection.connection_id)
    assert position.quantity == Decimal(30)

    again = await sync_engine.sync_broker_trades(connection.connection_id, "u1", trigger="scheduled")
    assert (again.imported, again.updated, again.cancelled) == (0, 0, 0)


async def test_a_late_fill_re_pairs_and_a_bust_leaves_tombstones(
    sync_engine: BrokerSync, fills: fillsbroker.FillsApi
) -> None:
    connection = await sync_engine.connect_broker("u1", fillsbroker.KEY, fillsbroker.CREDENTIALS)
    cid = connection.connection_id
    fills.fill("U1", "B2", "buy", 1, "12", 5)
    fills.fill("U1", "S1", "sell", 1, "15", 9)
    await sync_engine.sync_broker_trades(cid, "u1")
    assert set(await _trips(sync_engine)) == {"B2>S1"}

    fills.fill("U1", "B1", "buy", 1, "10", 1)  # arrives late: it was the older lot all along
    late = await sync_engine.sync_broker_trades(cid, "u1")
    assert (late.imported, late.cancelled) == (1, 1)
    assert await _trips(sync_engine) == {"B1>S1": (Decimal(1), Decimal(5), Decimal(0))}
    assert set(await _trips(sync_engine, cancelled=True)) == {"B2>S1"}
    (position,) = await sync_engine.positions(user_id="u1")
    assert (position.quantity, position.average_price) == (Decimal(1), Decimal(12))

    fills.bust("U1", "B1")  # the opening fill of a reported round trip is busted
    busted = await sync_engine.sync_broker_trades(cid, "u1")
    assert (busted.imported, busted.cancelled) == (0, 1)
    assert await _trips(sync_engine) == {"B2>S1": (Decimal(1), Decimal(3), Decimal(0))}  # back, tombstone lifted
    assert await sync_engine.positions(user_id="u1") == []


async def test_a_corrected_fill_updates_its_round_trip(sync_engine: BrokerSync, fills: fillsbroker.FillsApi) -> None:
    connection = await sync_engine.connect_broker("u1", fillsbroker.KEY, fillsbroker.CREDENTIALS)
    fills.fill("U1", "B1", "buy", 2, "10", 1)
    fills.fill("U1", "S1", "sell", 2, "11", 2)
    await sync_engine.sync_broker_trades(connection.connection_id, "u1")
    fills.fill("U1", "S1", "sell", 2, "11.50", 2)  # the broker corrects the price
    corrected = await sync_engine.sync_broker_trades(connection.connection_id, "u1")
    assert (corrected.imported, corrected.updated, corrected.cancelled) == (0, 1, 0)
    assert await _trips(sync_engine) == {"B1>S1": (Decimal(2), Decimal(3), Decimal(0))}


async def test_a_malformed_fill_is_reported_and_skipped(sync_engine: BrokerSync, fills: fillsbroker.FillsApi) -> None:
    connection = await sync_engine.connect_broker("u1", fillsbroker.KEY, fillsbroker.CREDENTIALS)
    fills.fill("U1", "B1", "buy", 1, "10", 1)
    fills.fill("U1", "BAD", "buy", "-3", "10", 2)
    fills.fill("U1", "S1", "sell", 1, "12", 3)
    result = await sync_engine.sync_broker_trades(connection.connection_id, "u1")
    assert result.imported == 1
    (error,) = result.errors
    assert error.broker_trade_id == "BAD"
    assert "quantity" in error.reason


async def test_lifo_is_a_per_connection_option_and_re_pairs_at_once(
    sync_engine: BrokerSync, fills: fillsbroker.FillsApi
) -> None:
    connection = await sync_engine.connect_broker("u1", fillsbroker.KEY, fillsbroker.CREDENTIALS)
    fills.fill("U1", "B1", "buy", 1, "10", 1)
    fills.fill("U1", "B2", "buy", 1, "12", 2)
    fills.fill("U1", "S1", "sell", 1, "15", 3)
    await sync_engine.sync_broker_trades(connection.connection_id, "u1")
    assert set(await _trips(sync_engine)) == {"B1>S1"}
    changed = await sync_engine.set_pairing_method(connection.connection_id, "u1", "lifo")
    assert changed == 2  # one new round trip, one tombstone
    assert await _trips(sync_engine) == {"B2>S1": (Decimal(1), Decimal(3), Decimal(0))}
    fills.fill("U1", "B3", "buy", 1, "13", 4)
    fills.fill("U1", "S2", "sell", 1, "14", 5)
    await sync_engine.sync_broker_trades(connection.connection_id, "u1")
    assert set(await _trips(sync_engine)) == {"B2>S1", "B3>S2"}


async def test_a_broker_that_pairs_by_itself_reports_its_positions_and_is_never_paired_again(
    sync_engine: BrokerSync, fills: fillsbroker.FillsApi
) -> None:
    fillsbroker.register(Reports.BOTH)
    connection = await sync_engine.connect_broker("u1", fillsbroker.KEY, fillsbroker.CREDENTIALS)
    fills.fill("U1", "B1", "buy", 2, "10", 1)
    fills.fill("U1", "S1", "sell", 1, "11", 2)
    fills.positions["U1"] = [{"symbol": "AAPL", "qty": "1", "price": "10"}]
    result = await sync_engine.sync_broker_trades(connection.connection_id, "u1")
    assert result.imported == 0
    assert await _trips(sync_engine) == {}
    (position,) = await sync_engine.positions(user_id="u1")
    assert (position.quantity, position.average_price, position.source) == (Decimal(1), Decimal(10), "broker snapshot")
    fills.positions["U1"] = []
    fills.fill("U1", "S2", "sell", 1, "12", 3)  # a new page carries the (now empty) snapshot
    await sync_engine.sync_broker_trades(connection.connection_id, "u1")
    assert await sync_engine.positions(user_id="u1") == []


# --- what each account reports (Account.reports over Capabilities.reports) -----------------------


@pytest.fixture
async def mixed(db_url: str) -> AsyncIterator[tuple[BrokerSync, fillsbroker.FillsApi]]:
    api = fillsbroker.FillsApi(accounts=("U1", "U2"))
    async with engine_factory(
        db_url, keys=Vault.generate_key("k1"), transports={fillsbroker.KEY: api.transport()}, clock=Clock()
    ) as make:
        engine = make()
        await engine.upgrade_database()
        yield engine, api
    fillsbroker.unregister()


async def test_an_account_declared_round_trips_only_that_sends_executions_fails_with_a_plugin_error(
    mixed: tuple[BrokerSync, fillsbroker.FillsApi],
) -> None:
    engine, api = mixed
    fillsbroker.register(account_reports={"U2": Reports.ROUND_TRIPS})
    connection = await engine.connect_broker("u1", fillsbroker.KEY, fillsbroker.CREDENTIALS)
    api.fill("U2", "B1", "buy", 1, "10", 1)
    with pytest.raises(PluginContractError) as raised:
        await engine.sync_broker_trades(connection.connection_id, "u1")
    message = str(raised.value)
    assert "account 'U2', which reports round trips only (Account.reports is 'round_trips')" in message
    assert "Reports.EXECUTIONS" in message
    (run,) = await engine.list_runs(connection_id=connection.connection_id)
    assert (run.status.value, run.error_type) == ("failed", "validation")  # how plugin contract errors classify


async def test_a_broker_with_fill_accounts_and_self_pairing_accounts_pairs_only_the_fills(
    mixed: tuple[BrokerSync, fillsbroker.FillsApi],
) -> None:
    engine, api = mixed
    fillsbroker.register(account_reports={"U2": Reports.BOTH})
    connection = await engine.connect_broker("u1", fillsbroker.KEY, fillsbroker.CREDENTIALS)
    for account in ("U1", "U2"):
        api.fill(account, f"{account}-B1", "buy", 2, "10", 1)
        api.fill(account, f"{account}-S1", "sell", 1, "11", 2)
    api.positions["U2"] = [{"symbol": "AAPL", "qty": "1", "price": "10"}]
    result = await engine.sync_broker_trades(connection.connection_id, "u1")
    assert (result.status.value, result.imported) == ("succeeded", 1)
    assert set(await _trips(engine)) == {"U1-B1>U1-S1"}  # U2's fills are kept, never paired
    positions = {(p.account_id, p.source, p.quantity) for p in await engine.positions(user_id="u1")}
    assert positions == {("U1", "lots", Decimal(1)), ("U2", "broker snapshot", Decimal(1))}


# --- the property, on both databases ------------------------------------------------------------


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[tuple[str, ...]], int]:
    """Broker events (fill / correct / bust) in delivery order, and how many syncs they spread over."""
    count = draw(st.integers(1, 9))
    fills = [
        ("fill", f"E{i}", draw(st.sampled_from(["buy", "sell"])), str(draw(st.integers(1, 4))),
         str(draw(st.integers(90, 110))), str(draw(st.integers(0, 6))), draw(st.sampled_from(["0", "0.10", "1.00"])))
        for i in range(count)
    ]  # fmt: skip
    events: list[tuple[str, ...]] = list(draw(st.permutations(fills)))
    for _ in range(draw(st.integers(0, 3))):
        target = draw(st.sampled_from(fills))
        if draw(st.booleans()):
            events.insert(draw(st.integers(0, len(events))), ("bust", target[1]))
        else:
            correction = ("fill", target[1], target[2], str(draw(st.integers(1, 4))), target[4],
                          str(draw(st.integers(0, 6))), target[6])  # fmt: skip
            position = events.index(target) + 1
            events.insert(draw(st.integers(position, len(events))), correction)
    return events, draw(st.integers(1, 4))


async def _check_scenario(db_url: str, events: list[tuple[str, ...]], syncs: int) -> None:
    fills = fillsbroker.FillsApi()
    async with engine_factory(
        db_url, keys=Vault.generate_key("k1"), transports={fillsbroker.KEY: fills.transport()}, clock=Clock()
    ) as make:
        engine = make()
        # One connection per account (ADR 0012), and every example shares the database: a user each.
        user = f"u-{uuid.uuid4().hex[:12]}"
        connection = await engine.connect_broker(user, fillsbroker.KEY, fillsbroker.CREDENTIALS)
        cid = connection.connection_id
        step = max(1, -(-len(events) // syncs))
        for start in range(0, len(events), step):
            for event in events[start : start + step]:
                if event[0] == "bust":
                    fills.bust("U1", event[1])
                else:
                    _, fill_id, side, qty, price, minute, fee = event
                    fills.fill("U1", fill_id, side, qty, price, int(minute), commission=fee)
            await engine.sync_broker_trades(cid, user, trigger="scheduled")

        final: dict[str, Execution] = {}
        for event in events:  # the broker's final word on each fill, without the busted ones
            if event[0] == "fill":
                _, fill_id, side, qty, price, minute, fee = event
                final[fill_id] = Execution(
                    broker_execution_id=fill_id, account_id="U1",
                    instrument={"symbol": "AAPL", "currency": "USD"}, side=side, quantity=Decimal(qty),
                    price=Decimal(price), executed_at=fillsbroker.T0.replace(minute=30 + int(minute)),
                    fees=Decimal(fee),
                )  # fmt: skip
        for event in events:
            if event[0] == "bust":
                final.pop(event[1], None)
        expected = pair_executions(final.values())
        stored = {
            t.broker_trade_id: (t.quantity, t.entry_price, t.exit_price, t.realized_pnl, t.fees, t.opened_at)
            async for t in engine.iter_trades(connection_id=cid)
        }
        assert stored == {
            t.broker_trade_id: (t.quantity, t.entry_price, t.exit_price, t.realized_pnl, t.fees, t.opened_at)
            for t in expected.round_trips
        }
        positions = await engine.positions(connection_id=cid)
        assert sum((p.quantity for p in positions), Decimal(0)) == expected.position

        again = await engine.sync_broker_trades(cid, user)  # a full re-sync: the broker sends everything again
        assert (again.imported, again.updated, again.cancelled) == (0, 0, 0)


def _run_property(db_url: str, max_examples: int) -> None:
    asyncio.run(_upgrade(db_url))

    @settings(max_examples=max_examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(scenarios())
    def check(scenario: tuple[list[tuple[str, ...]], int]) -> None:
        fillsbroker.register()
        try:
            asyncio.run(_check_scenario(db_url, *scenario))
        finally:
            fillsbroker.unregister()

    check()


async def _upgrade(db_url: str) -> None:
    async with BrokerSync(db_url, encryption_keys=Vault.generate_key("k1")) as engine:
        await engine.upgrade_database()


def test_stored_round_trips_equal_fifo_from_scratch_on_sqlite() -> None:
    with tempfile.TemporaryDirectory() as directory:
        _run_property(f"sqlite+aiosqlite:///{Path(directory) / 'pairing.db'}", max_examples=60)


@pytest.mark.integration
def test_stored_round_trips_equal_fifo_from_scratch_on_postgresql() -> None:
    _run_property(fresh_database(), max_examples=15)
