"""Pairing executions (fills) into round trips: pure functions, no I/O.

One call pairs the executions of ONE instrument of ONE account, in time order, starting from the
open lots left by earlier calls (so pairing continues across syncs), and returns the round trips
it closed and the lots still open. The store (``_store/_executions.py``) persists the lots.

Rules (``docs/adr/0009-pairing.md``):

- Order: executions sort by ``(executed_at, broker_execution_id)``, so the input order never matters.
- Matching: a fill against an open position closes lots, oldest first (FIFO, the default) or
  newest first (LIFO). Each matched piece is one round trip; a lot closed in parts gives one round
  trip per part. A fill larger than the open position closes it and opens the rest the other way
  (a reversal). Fills in the position's direction open new lots (scale-in).
- Prices: the round trip's entry price is the opening execution's price, its exit price the closing
  execution's price; an option expiry closes at price ``0``; an assignment or exercise closes the
  option leg at its recorded price.
- P&L is gross: ``(exit - entry) x quantity x multiplier`` for a long, ``(entry - exit) x ...`` for
  a short, in the instrument's currency. Fees are kept apart in ``Trade.fees``.
- Fees are prorated by quantity. An execution's fees are split over its pieces in the order the
  pieces are taken: a piece taking ``q`` of the ``Q`` still unassigned gets the still-unassigned fee
  ``F`` times ``q / Q``, rounded half-even to the fee's own exponent; the piece that takes the last
  of the quantity gets whatever fee remains. So the pieces of an execution add up to its fees
  exactly, in ``Decimal``. A round trip's fees are its opening piece's share plus its closing
  piece's share; an open lot carries the opening fee not yet assigned.
- Ids: a round trip's ``broker_trade_id`` is ``"<opening id>><closing id>"``. One closing
  execution takes at most one piece of one lot, so the pair is unique; re-pairing the same
  executions gives the same ids (idempotent). An id longer than 255 characters is replaced by a
  hash of it (``"rt:" + blake2b``).
"""

from __future__ import annotations

import collections
import datetime as dt
import enum
import hashlib
from collections.abc import Iterable, Sequence
from decimal import ROUND_HALF_EVEN, Decimal

import attrs

from brokersync.models import Direction, Execution, ExecutionKind, Instrument, Trade

__all__ = [
    "Lot",
    "PairingMethod",
    "PairingResult",
    "execution_order",
    "pair_executions",
    "round_trip_id",
    "share_fee",
]

_MAX_ID = 255
_ZERO = Decimal(0)


class PairingMethod(enum.StrEnum):
    """Which open lot a closing fill matches first."""

    FIFO = "fifo"  # the oldest lot (the default)
    LIFO = "lifo"  # the newest lot


@attrs.frozen(kw_only=True)
class Lot:
    """An open piece of a position: what is left of one opening execution.

    Attributes:
        broker_execution_id: The execution that opened it.
        direction: Long (opened by a buy) or short (opened by a sell).
        quantity: The quantity still open (positive).
        price: The opening execution's price.
        opened_at: When the opening execution executed.
        fees: The opening execution's fees not yet assigned to a round trip.
        fee_quantum: The exponent of the opening execution's fees (the rounding step of its shares).
    """

    broker_execution_id: str
    direction: Direction
    quantity: Decimal
    price: Decimal
    opened_at: dt.datetime
    fees: Decimal
    fee_quantum: int

    @property
    def signed_quantity(self) -> Decimal:
        """``+quantity`` for a long lot, ``-quantity`` for a short one."""
        return self.quantity if self.direction is Direction.LONG else -self.quantity


@attrs.frozen(kw_only=True)
class PairingResult:
    """What pairing produced: the round trips closed (in closing order) and the lots left open."""

    round_trips: tuple[Trade, ...]
    open_lots: tuple[Lot, ...]

    @property
    def position(self) -> Decimal:
        """The net open quantity: positive long, negative short."""
        return sum((lot.signed_quantity for lot in self.open_lots), _ZERO)


def execution_order(execution: Execution) -> tuple[dt.datetime, str]:
    """The sort key of pairing: execution time, then the broker's execution id (a stable tiebreak)."""
    return (execution.executed_at, execution.broker_execution_id)


def round_trip_id(opening_id: str, closing_id: str) -> str:
    """The deterministic id of the round trip pairing two executions."""
    text = f"{opening_id}>{closing_id}"
    if len(text) <= _MAX_ID:
        return text
    return "rt:" + hashlib.blake2b(text.encode(), digest_size=20).hexdigest()


def _exponent(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # models refuse NaN and infinities
    return exponent


def share_fee(fees: Decimal, quantity: Decimal, taken: Decimal, quantum: int) -> Decimal:
    """The fee share of a piece taking ``taken`` of ``quantity`` (both unassigned), ``fees`` unassigned.

    The last piece (``taken == quantity``) gets all of ``fees``; others get the proportional share
    rounded half-even to ``10 ** quantum``.
    """
    if taken >= quantity or not fees:
        return fees if taken >= quantity else _ZERO
    return (fees * taken / quantity).quantize(Decimal((0, (1,), quantum)), rounding=ROUND_HALF_EVEN)


@attrs.define(eq=False)
class _Open:
    """A mutable lot while pairing."""

    execution_id: str
    direction: Direction
    quantity: Decimal
    price: Decimal
    opened_at: dt.datetime
    fees: Decimal
    fee_quantum: int


def _round_trip(
    lot: _Open,
    closing: Execution,
    quantity: Decimal,
    exit_price: Decimal,
    fees: tuple[Decimal, Decimal],
    instrument: Instrument,
    method: PairingMethod,
) -> Trade:
    if lot.direction is Direction.LONG:
        pnl = (exit_price - lot.price) * quantity * instrument.multiplier
    else:
        pnl = (lot.price - exit_price) * quantity * instrument.multiplier
    raw: dict[str, object] = {
        "source": "paired",
        "pairing": method.value,
        "opening_execution_id": lot.execution_id,
        "closing_execution_id": closing.broker_execution_id,
        "closing_kind": closing.kind.value,
        "instrument_key": instrument.pairing_key,
        "multiplier": str(instrument.multiplier),
        "opening_fee": str(fees[0]),
        "closing_fee": str(fees[1]),
    }
    if closing.fee_currency is not None and closing.fee_currency != instrument.currency:
        raw["fee_currency"] = closing.fee_currency
    return Trade(
        broker_trade_id=round_trip_id(lot.execution_id, closing.broker_execution_id),
        account_id=closing.account_id,
        symbol=instrument.symbol,
        direction=lot.direction,
        opened_at=lot.opened_at,
        closed_at=max(closing.executed_at, lot.opened_at),
        entry_price=lot.price,
        exit_price=exit_price,
        quantity=quantity,
        realized_pnl=pnl,
        fees=fees[0] + fees[1],
        currency=instrument.currency,
        raw=raw,
    )


def pair_executions(
    executions: Iterable[Execution],
    *,
    open_lots: Sequence[Lot] = (),
    method: PairingMethod | str = PairingMethod.FIFO,
) -> PairingResult:
    """Pair one instrument's executions into round trips, continuing from ``open_lots``.

    Args:
        executions: Executions of one instrument of one account, in any order (they are sorted by
            :func:`execution_order`). All must come after the executions that made ``open_lots``.
        open_lots: The lots a previous call left open (oldest first), all in one direction.
        method: FIFO (default) or LIFO.

    Returns:
        The round trips closed, and the lots left open (oldest first).
    """
    method = PairingMethod(method)
    lots = collections.deque(
        _Open(lot.broker_execution_id, lot.direction, lot.quantity, lot.price, lot.opened_at, lot.fees, lot.fee_quantum)
        for lot in open_lots
    )
    fifo = method is PairingMethod.FIFO
    trips: list[Trade] = []
    for execution in sorted(executions, key=execution_order):
        direction = execution.side.direction
        remaining = execution.quantity
        fees = execution.fees
        quantum = _exponent(fees)
        # an expiry happens at 0 (the price it carries, if any, is not a trade price)
        exit_price = _ZERO if execution.kind is ExecutionKind.EXPIRY else execution.price
        # close against lots of the other direction
        while remaining > 0 and lots and lots[0].direction is not direction:
            lot = lots[0] if fifo else lots[-1]
            taken = min(remaining, lot.quantity)
            open_fee = share_fee(lot.fees, lot.quantity, taken, lot.fee_quantum)
            close_fee = share_fee(fees, remaining, taken, quantum)
            trips.append(
                _round_trip(lot, execution, taken, exit_price, (open_fee, close_fee), execution.instrument, method)
            )
            lot.quantity -= taken
            lot.fees -= open_fee
            remaining -= taken
            fees -= close_fee
            if not lot.quantity:
                if fifo:
                    lots.popleft()
                else:
                    lots.pop()
        if remaining > 0:  # scale-in, a new position, or the rest of a reversal
            lots.append(_Open(execution.broker_execution_id, direction, remaining, exit_price,
                              execution.executed_at, fees, quantum))  # fmt: skip
    return PairingResult(
        round_trips=tuple(trips),
        open_lots=tuple(
            Lot(
                broker_execution_id=lot.execution_id,
                direction=lot.direction,
                quantity=lot.quantity,
                price=lot.price,
                opened_at=lot.opened_at,
                fees=lot.fees,
                fee_quantum=lot.fee_quantum,
            )
            for lot in lots
        ),
    )
