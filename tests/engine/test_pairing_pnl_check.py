"""The core checks a broker's own realized P&L (``Execution.broker_realized_pnl``) against its round trips.

On SQLite and PostgreSQL, through ``sync_broker_trades``: the check uses the lots the core keeps
across syncs (not one page's executions), runs again when a late fill re-pairs, and its mismatches
reach ``SyncResult.warnings`` and the run's audit like a plugin's ``ctx.warn``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import fillsbroker
import pytest
from brokersync import BrokerSync, Execution, Vault
from brokersync.pairing import pair_executions
from brokersync.results import SyncResult
from engine_support import Clock, engine_factory

pytestmark = pytest.mark.anyio

CODE = "brokersync.pnl_mismatch"


@pytest.fixture
def fills() -> Iterator[fillsbroker.FillsApi]:
    fillsbroker.register()
    yield fillsbroker.FillsApi(page_size=10)
    fillsbroker.unregister()


@pytest.fixture
async def sync_engine(db_url: str, fills: fillsbroker.FillsApi) -> AsyncIterator[BrokerSync]:
    async with engine_factory(
        db_url, keys=Vault.generate_key("k1"), transports={fillsbroker.KEY: fills.transport()}, clock=Clock()
    ) as make:
        engine = make()
        await engine.upgrade_database()
        yield engine


async def _sync(engine: BrokerSync, connection_id: str) -> SyncResult:
    result = await engine.sync_broker_trades(connection_id, "u1", trigger="scheduled")
    assert result.status.value == "succeeded"
    return result


async def test_a_figure_that_agrees_gives_no_warning_and_a_wrong_one_exactly_one_with_both_figures(
    sync_engine: BrokerSync, fills: fillsbroker.FillsApi
) -> None:
    connection = await sync_engine.connect_broker("u1", fillsbroker.KEY, fillsbroker.CREDENTIALS)
    fills.fill("U1", "B1", "buy", 100, "10.00", 1, commission="1.00", realized="0")
    # (12 - 10) x 100 = 200 gross, less 1.00 opening and 1.00 closing commission
    fills.fill("U1", "S1", "sell", 100, "12.00", 2, commission="1.00", realized="198.00")
    fills.fill("U1", "B2", "buy", 10, "20.00", 3, symbol="MSFT", realized="0")
    fills.fill("U1", "S2", "sell", 10, "21.00", 4, symbol="MSFT", realized="5.00")  # brokersync: 10.00
    result = await _sync(sync_engine, connection.connection_id)
    assert result.imported == 2
    [warning] = result.warnings
    assert (warning.account_id, warning.record_id, warning.code) == ("U1", "S2", CODE)
    assert warning.message == (
        "MSFT, closing execution: the round trips brokersync paired realized 10.00 USD net of fees, "
        "the broker reports 5.00 USD (difference -5.00 USD)"
    )
    assert result.warning_count == 1
    [run] = await sync_engine.list_runs(connection_id=connection.connection_id)
    assert run.warnings == result.warnings
    # the same executions again: nothing was re-derived, nothing is told twice
    again = await _sync(sync_engine, connection.connection_id)
    assert (again.imported, again.warnings) == (0, ())


async def test_a_lot_opened_in_one_sync_added_to_and_closed_in_the_next_is_checked_with_the_lots_kept(
    sync_engine: BrokerSync, fills: fillsbroker.FillsApi
) -> None:
    # IBKR's false positive: a position opened before the statement's period, added to and closed
    # in it. The broker's FIFO figure is right; only the statement's executions alone disagree.
    connection = await sync_engine.connect_broker("u1", fillsbroker.KEY, fillsbroker.CREDENTIALS)
    fills.fill("U1", "B1", "buy", 100, "10.00", 1, commission="1.00", realized="0", open_close="open")
    first = await _sync(sync_engine, connection.connection_id)
    assert first.warnings == ()

    fills.log["U1"].clear()  # the next statement covers the second day only
    fills.fill("U1", "B2", "buy", 50, "11.00", 2, commission="0.50", realized="0", open_close="open")
    # FIFO: (12 - 10) x 100 + (12 - 11) x 50 = 250, less 1.00 + 0.50 + 1.50 commissions
    fills.fill("U1", "S1", "sell", 150, "12.00", 3, commission="1.50", realized="247.00", open_close="close")
    second = await _sync(sync_engine, connection.connection_id)
    assert second.imported == 2 and (second.warnings, second.warning_count) == ((), 0)

    # what a check of the statement alone computes: S1 closes only B2's 50 there (a false mismatch)
    statement = [
        Execution(broker_execution_id="B2", account_id="U1", instrument={"symbol": "AAPL", "currency": "USD"},
                  side="buy", quantity=Decimal(50), price=Decimal("11.00"), fees=Decimal("0.50"),
                  executed_at=fillsbroker.T0 + dt.timedelta(minutes=2)),
        Execution(broker_execution_id="S1", account_id="U1", instrument={"symbol": "AAPL", "currency": "USD"},
                  side="sell", quantity=Decimal(150), price=Decimal("12.00"), fees=Decimal("1.50"),
                  executed_at=fillsbroker.T0 + dt.timedelta(minutes=3)),
    ]  # fmt: skip
    alone = pair_executions(statement).round_trips
    assert sum(((t.realized_pnl or Decimal(0)) - t.fees for t in alone), Decimal(0)) != Decimal("247.00")


@pytest.mark.parametrize(
    ("figure", "warned"),
    [("300.00", False), ("200.00", True)],  # the broker's FIFO with the late fill; a stale figure
)
async def test_a_late_fill_re_pairs_and_the_close_sent_again_is_checked_anew(
    sync_engine: BrokerSync, fills: fillsbroker.FillsApi, figure: str, warned: bool
) -> None:
    connection = await sync_engine.connect_broker("u1", fillsbroker.KEY, fillsbroker.CREDENTIALS)
    fills.fill("U1", "B1", "buy", 100, "10.00", 2, realized="0")
    fills.fill("U1", "S1", "sell", 100, "12.00", 3, realized="200.00")
    first = await _sync(sync_engine, connection.connection_id)
    assert (first.imported, first.warnings) == (1, ())

    # a fill at minute 0 arrives late; the overlapping statement sends S1 again, unchanged but for
    # the broker's figure: FIFO now closes B0 (bought at 9), so (12 - 9) x 100 = 300
    fills.fill("U1", "B0", "buy", 100, "9.00", 0, realized="0")
    fills.fill("U1", "S1", "sell", 100, "12.00", 3, realized=figure)
    second = await _sync(sync_engine, connection.connection_id)
    trips = {t.broker_trade_id: t.realized_pnl async for t in sync_engine.iter_trades(user_id="u1")}
    assert trips == {"B0>S1": Decimal(300)}
    if warned:
        [warning] = second.warnings
        assert (warning.record_id, warning.code) == ("S1", CODE)
        assert "realized 300.00 USD net of fees, the broker reports 200.00 USD" in warning.message
    else:
        assert second.warnings == ()


async def test_closes_the_core_cannot_compare_are_left_unchecked(
    sync_engine: BrokerSync, fills: fillsbroker.FillsApi
) -> None:
    connection = await sync_engine.connect_broker("u1", fillsbroker.KEY, fillsbroker.CREDENTIALS)
    # a close of a position opened before the core's history: the core closed nothing
    fills.fill("U1", "S0", "sell", 100, "12.00", 1, realized="150.00", open_close="close")
    # a close (C) of more than the core holds: the rest was opened before its history
    fills.fill("U1", "B1", "buy", 10, "30.00", 2, symbol="MSFT", realized="0")
    fills.fill("U1", "S1", "sell", 40, "31.00", 3, symbol="MSFT", realized="99.00", open_close="close")
    # a commission in another currency: not in the round trip's fees, converted in the broker's figure
    fills.fill("U1", "B2", "buy", 10, "50.00", 4, symbol="NVDA", commission="1.00", commission_currency="EUR")
    fills.fill("U1", "S2", "sell", 10, "51.00", 5, symbol="NVDA", commission="1.00", realized="7.92")
    # the control: the same kind of close with a wrong figure and nothing to excuse it
    fills.fill("U1", "B3", "buy", 10, "50.00", 6, symbol="AMD", commission="1.00")
    fills.fill("U1", "S3", "sell", 10, "51.00", 7, symbol="AMD", commission="1.00", realized="7.92")
    result = await _sync(sync_engine, connection.connection_id)
    assert [(w.record_id, w.code) for w in result.warnings] == [("S3", CODE)]
