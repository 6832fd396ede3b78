"""Builders and an independent oracle for the pairing tests.

The oracle pairs unit by unit: every execution of integer quantity ``q`` becomes ``q`` units, and
each unit that moves against the position closes the oldest (FIFO) or newest (LIFO) open unit. It
shares nothing with ``brokersync._pairing`` but the rules written in its docstring.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal
from typing import Any

from brokersync import Execution, ExecutionKind, Instrument

T0 = dt.datetime(2025, 1, 6, 14, 30, tzinfo=dt.UTC)
STOCK = Instrument(symbol="AAPL", currency="USD")
ES = Instrument(symbol="ESZ5", asset_class="future", currency="USD", multiplier=50, instrument_id="495512563")
PUT = Instrument(
    symbol="AAPL 250117P00200000",
    asset_class="option",
    currency="USD",
    multiplier=100,
    underlying="AAPL",
    expiry="2025-01-17",
    strike=Decimal(200),
    right="put",
)
BTC_USDT = Instrument(symbol="BTC/USDT", asset_class="crypto", currency="USDT", instrument_id="BTCUSDT")


def ex(
    execution_id: str,
    side: str,
    quantity: str | int,
    price: str,
    minute: int,
    *,
    fees: str = "0",
    kind: str = "fill",
    instrument: Instrument = STOCK,
    account: str = "U1",
    fee_currency: str | None = None,
) -> Execution:
    return Execution(
        broker_execution_id=execution_id,
        account_id=account,
        instrument=instrument,
        side=side,
        quantity=Decimal(quantity),
        price=Decimal(price),
        executed_at=T0 + dt.timedelta(minutes=minute),
        fees=Decimal(fees),
        fee_currency=fee_currency,
        kind=kind,
    )


def oracle(executions: list[Execution], *, lifo: bool = False) -> dict[str, tuple[int, Decimal]]:
    """Round trips by id -> (quantity, gross P&L), pairing integer units one at a time."""
    units: list[tuple[str, int, Decimal]] = []  # (opening id, sign, price)
    closed: dict[str, list[Any]] = defaultdict(lambda: [0, Decimal(0)])
    for e in sorted(executions, key=lambda e: (e.executed_at, e.broker_execution_id)):
        sign = 1 if e.side == "buy" else -1
        price = Decimal(0) if e.kind is ExecutionKind.EXPIRY else e.price
        for _ in range(int(e.quantity)):
            if units and units[0][1] != sign:
                opening_id, opening_sign, entry = units.pop(-1 if lifo else 0)
                trip = closed[f"{opening_id}>{e.broker_execution_id}"]
                trip[0] += 1
                trip[1] += (price - entry) * opening_sign * e.instrument.multiplier
            else:
                units.append((e.broker_execution_id, sign, price))
    return {key: (q, pnl) for key, (q, pnl) in closed.items()}
