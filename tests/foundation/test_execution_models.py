"""The execution-side models: instruments, executions, their cancellations and position snapshots."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from brokersync import (
    AssetClass,
    Capabilities,
    Execution,
    ExecutionCancellation,
    ExecutionKind,
    Instrument,
    OptionRight,
    Position,
    Reports,
    Side,
    TradePage,
)

T0 = dt.datetime(2024, 11, 5, 14, 30, tzinfo=dt.UTC)
ES = Instrument(symbol="ESZ4", asset_class="future", currency="usd", multiplier=50, instrument_id=2665267)


def _execution(**overrides):
    values = {
        "broker_execution_id": "e1",
        "account_id": "U1",
        "instrument": ES,
        "side": "buy",
        "quantity": Decimal(2),
        "price": Decimal("5850.25"),
        "executed_at": T0,
    }
    values.update(overrides)
    return Execution(**values)


def test_instrument_pairing_key_prefers_the_broker_id():
    assert ES.pairing_key == "id:2665267"
    assert ES.currency == "USD" and ES.multiplier == Decimal(50) and ES.asset_class is AssetClass.FUTURE
    assert Instrument(symbol=" aapl ", currency="USD").pairing_key == "symbol:AAPL"


def test_option_instrument_fields():
    option = Instrument(
        symbol="AAPL 241115C00225000",
        asset_class="option",
        currency="USD",
        multiplier=100,
        underlying="AAPL",
        expiry="2024-11-15",
        strike=Decimal(225),
        right="call",
    )
    assert option.expiry == dt.date(2024, 11, 15)
    assert option.right is OptionRight.CALL


def test_execution_from_mapping_instrument_and_signed_quantity():
    execution = _execution(instrument={"symbol": "AAPL", "currency": "USD"}, side="sell")
    assert execution.instrument.pairing_key == "symbol:AAPL"
    assert execution.signed_quantity == Decimal(-2)
    assert execution.kind is ExecutionKind.FILL
    assert execution.side is Side.SELL


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"quantity": Decimal(0)}, "Execution.quantity must be positive"),
        ({"quantity": Decimal(-1)}, "Execution.quantity must be positive"),
        ({"price": 5850.25}, "Execution.price must be a Decimal"),
        ({"price": Decimal(-1)}, "Execution.price must not be negative"),
        ({"executed_at": dt.datetime(2024, 11, 5)}, "naive datetime"),
        ({"side": "hold"}, "'hold' is not a valid Side"),
    ],
)
def test_execution_refuses_bad_values(overrides, message):
    with pytest.raises((TypeError, ValueError), match=message):
        _execution(**overrides)


def test_execution_times_are_utc():
    eastern = dt.timezone(dt.timedelta(hours=-5))
    assert _execution(executed_at=dt.datetime(2024, 11, 5, 9, 30, tzinfo=eastern)).executed_at == T0


def test_position_refuses_zero_quantity():
    with pytest.raises(ValueError, match="Position.quantity must not be zero"):
        Position(account_id="U1", instrument=ES, quantity=Decimal(0), average_price=Decimal(1))


def test_trade_page_carries_executions_cancellations_and_positions():
    bust = ExecutionCancellation(account_id="U1", broker_execution_id="e1", cancelled_at=T0)
    page = TradePage(executions=[_execution()], cancellations=[bust], positions=[])
    assert page.records == () and len(page.executions) == 1 and page.cancellations == (bust,)
    assert page.positions == ()
    assert TradePage(records=[]).positions is None  # no snapshot: the previous one stands


def test_capabilities_say_what_an_account_reports():
    assert Capabilities().reports is Reports.ROUND_TRIPS
    assert Capabilities(reports="both", positions=True).reports is Reports.BOTH
