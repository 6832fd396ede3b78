"""Pairing executions (fills) into round trips: pure functions, no I/O.

One call pairs the executions of ONE instrument of ONE account, in time order, starting from the
open lots left by earlier calls (so pairing continues across syncs), and returns the round trips
it closed and the lots still open. The store (``_store/_executions.py`` and its parts) persists the lots.

Rules (``docs/adr/0010-pairing.md``):

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
  exactly, in ``Decimal``, in the execution's own fee currency. An open lot carries the opening fee
  not yet assigned, with its currency.
- Fee currencies are never mixed or converted. A round trip's ``fees`` (in its ``currency``, the
  instrument's) is the sum of its opening and closing shares that are in that currency (an
  execution's ``fee_currency=None`` means the instrument's). A share in another currency (a spot
  buy paying in the coin bought, everything paid in BNB) is not in ``fees``: ``raw["other_fees"]``
  maps each other currency to the sum of the round trip's shares in it (text, exact, e.g.
  ``{"BNB": "0.00075"}``), and ``raw["opening_fee_currency"]`` / ``raw["closing_fee_currency"]``
  name the currency of ``raw["opening_fee"]`` / ``raw["closing_fee"]`` when it is not the round
  trip's. A round trip whose shares are all in its currency has none of these three keys.
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
from typing import Any

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
        fees: The opening execution's fees not yet assigned to a round trip, in ``fee_currency``.
        fee_quantum: The exponent of the opening execution's fees (the rounding step of its shares).
        fee_currency: The opening execution's fee currency (``None``: the instrument's currency).
    """

    broker_execution_id: str
    direction: Direction
    quantity: Decimal
    price: Decimal
    opened_at: dt.datetime
    fees: Decimal
    fee_quantum: int
    fee_currency: str | None = None

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


# --- the hot loop: plain tuples and lists, no validation of values the core derived itself ---------

# A fill as the loop reads it (the store builds these straight from its rows, without an Execution):
# (executed_at, broker_execution_id, direction, quantity, price, fees, kind value, fee_currency,
#  account_id, instrument). ``price`` is the trade price: 0 for an expiry.
Fill = tuple[dt.datetime, str, Direction, Decimal, Decimal, Decimal, str, "str | None", str, Instrument]
# An open lot while pairing:
# [opening execution id, direction, quantity, price, opened_at, fees, fee quantum, fee currency].
OpenLot = list[Any]

_EXPIRY = ExecutionKind.EXPIRY.value
_new = object.__new__
_set = object.__setattr__


def fill_of(execution: Execution) -> Fill:
    """The loop's tuple for a (validated) execution."""
    kind = execution.kind.value
    return (
        execution.executed_at,
        execution.broker_execution_id,
        execution.side.direction,
        execution.quantity,
        # an expiry happens at 0 (the price it carries, if any, is not a trade price)
        _ZERO if kind == _EXPIRY else execution.price,
        execution.fees,
        kind,
        execution.fee_currency,
        execution.account_id,
        execution.instrument,
    )


def fill_order(fill: Fill) -> tuple[dt.datetime, str]:
    """:func:`execution_order` of a fill."""
    return (fill[0], fill[1])


def _trusted_trade(
    broker_trade_id: str,
    account_id: str,
    symbol: str,
    direction: Direction,
    opened_at: dt.datetime,
    closed_at: dt.datetime,
    entry_price: Decimal,
    exit_price: Decimal,
    quantity: Decimal,
    realized_pnl: Decimal,
    fees: Decimal,
    currency: str,
    raw: dict[str, object],
) -> Trade:
    """A ``Trade`` built without its converters and validators.

    Only for values the loop derived from validated executions and lots: ids and symbols are
    non-empty text, times are UTC, prices non-negative, quantities positive, ``closed_at`` is not
    before ``opened_at`` and the currency is the instrument's (already normalized). The result
    equals what ``Trade(...)`` would build from the same values (a test compares them).
    """
    trade = _new(Trade)
    _set(trade, "broker_trade_id", broker_trade_id)
    _set(trade, "account_id", account_id)
    _set(trade, "symbol", symbol)
    _set(trade, "direction", direction)
    _set(trade, "opened_at", opened_at)
    _set(trade, "closed_at", closed_at)
    _set(trade, "entry_price", entry_price)
    _set(trade, "exit_price", exit_price)
    _set(trade, "quantity", quantity)
    _set(trade, "realized_pnl", realized_pnl)
    _set(trade, "fees", fees)
    _set(trade, "currency", currency)
    _set(trade, "raw", raw)
    return trade


def foreign_fees(
    raw: dict[str, object],
    currency: str,
    open_fee: Decimal,
    open_currency: str | None,
    close_fee: Decimal,
    close_currency: str | None,
) -> Decimal:
    """A round trip's ``fees`` when a share is in another currency; records the others in ``raw``.

    The shares in ``currency`` add up to the result; each other currency's shares add up to its
    entry in ``raw["other_fees"]`` (text); ``raw`` names the currency of a share that is not
    ``currency`` beside it. Nothing is converted.
    """
    local = _ZERO
    other: dict[str, Decimal] = {}
    for name, fee, fee_currency in (("opening", open_fee, open_currency), ("closing", close_fee, close_currency)):
        if fee_currency is None or fee_currency == currency:
            local += fee
        else:
            raw[f"{name}_fee_currency"] = fee_currency
            other[fee_currency] = other[fee_currency] + fee if fee_currency in other else fee
    raw["other_fees"] = {name: str(amount) for name, amount in other.items()}
    return local


def pair_fills(
    fills: Sequence[Fill], lots: list[OpenLot], method: PairingMethod
) -> tuple[list[Trade], collections.deque[OpenLot]]:
    """The pairing loop: ``fills`` sorted by :func:`fill_order`, ``lots`` open before them (oldest first).

    Returns the round trips closed and the lots left open (oldest first). See :func:`pair_executions`.
    """
    queue = collections.deque(lots)
    fifo = method is PairingMethod.FIFO
    method_value = method.value
    long = Direction.LONG
    instruments: dict[int, tuple[str, str, Decimal, str, str]] = {}
    trips: list[Trade] = []
    append = trips.append
    for (
        executed_at,
        execution_id,
        direction,
        remaining,
        exit_price,
        fees,
        kind,
        fee_currency,
        account,
        instrument,
    ) in fills:
        quantum = _exponent(fees)
        # close against lots of the other direction
        if queue and queue[0][1] is not direction:
            described = instruments.get(id(instrument))
            if described is None:
                described = instruments[id(instrument)] = (
                    instrument.symbol,
                    instrument.currency,
                    instrument.multiplier,
                    instrument.pairing_key,
                    str(instrument.multiplier),
                )
            symbol, currency, multiplier, key, multiplier_text = described
            close_local = fee_currency is None or fee_currency == currency
            while remaining > 0 and queue and queue[0][1] is not direction:
                lot = queue[0] if fifo else queue[-1]
                lot_id, lot_direction, lot_quantity, lot_price, opened_at, lot_fees, lot_quantum, lot_currency = lot
                taken = remaining if remaining <= lot_quantity else lot_quantity  # min(): ties keep remaining
                open_fee = share_fee(lot_fees, lot_quantity, taken, lot_quantum)
                close_fee = share_fee(fees, remaining, taken, quantum)
                if lot_direction is long:
                    pnl = (exit_price - lot_price) * taken * multiplier
                else:
                    pnl = (lot_price - exit_price) * taken * multiplier
                raw: dict[str, object] = {
                    "source": "paired",
                    "pairing": method_value,
                    "opening_execution_id": lot_id,
                    "closing_execution_id": execution_id,
                    "closing_kind": kind,
                    "instrument_key": key,
                    "multiplier": multiplier_text,
                    "opening_fee": str(open_fee),
                    "closing_fee": str(close_fee),
                }
                if close_local and (lot_currency is None or lot_currency == currency):
                    trip_fees = open_fee + close_fee
                else:
                    trip_fees = foreign_fees(raw, currency, open_fee, lot_currency, close_fee, fee_currency)
                append(
                    _trusted_trade(
                        round_trip_id(lot_id, execution_id),
                        account,
                        symbol,
                        lot_direction,
                        opened_at,
                        executed_at if executed_at >= opened_at else opened_at,
                        lot_price,
                        exit_price,
                        taken,
                        pnl,
                        trip_fees,
                        currency,
                        raw,
                    )
                )
                lot[2] = lot_quantity - taken
                lot[5] = lot_fees - open_fee
                remaining -= taken
                fees -= close_fee
                if not lot[2]:
                    if fifo:
                        queue.popleft()
                    else:
                        queue.pop()
        if remaining > 0:  # scale-in, a new position, or the rest of a reversal
            queue.append([execution_id, direction, remaining, exit_price, executed_at, fees, quantum, fee_currency])
    return trips, queue


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
    fills = sorted(map(fill_of, executions), key=fill_order)
    lots = [
        [
            lot.broker_execution_id,
            lot.direction,
            lot.quantity,
            lot.price,
            lot.opened_at,
            lot.fees,
            lot.fee_quantum,
            lot.fee_currency,
        ]
        for lot in open_lots
    ]
    trips, left = pair_fills(fills, lots, method)
    return PairingResult(round_trips=tuple(trips), open_lots=tuple(map(lot_of, left)))


def lot_of(lot: OpenLot) -> Lot:
    """The public ``Lot`` of a loop lot."""
    execution_id, direction, quantity, price, opened_at, fees, quantum, fee_currency = lot
    return Lot(
        broker_execution_id=execution_id,
        direction=direction,
        quantity=quantity,
        price=price,
        opened_at=opened_at,
        fees=fees,
        fee_quantum=quantum,
        fee_currency=fee_currency,
    )
