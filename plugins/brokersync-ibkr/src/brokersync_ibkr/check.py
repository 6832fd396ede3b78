"""Check IB's realized P&L (``fifoPnlRealized``) against the round trips the core pairs.

IB does not pair trades; it reports on each closing row the FIFO P&L it realized, **net of
commissions** (the closing row's commission, and the share of the opening rows' commissions in the
cost basis). brokersync stores P&L gross with commissions in fees, so the comparison takes the
fees off: for each closing execution, the sum of ``realized_pnl - fees`` over the round trips it
closes must equal ``fifoPnlRealized`` (within :data:`TOLERANCE`).

:func:`check_fifo_pnl` pairs with the core's own public pairing
(:func:`brokersync.pairing.pair_executions`: the same order, FIFO, reversals, expiries and fee
proration the engine stores), over the statement's executions. A closing execution whose opening
lots are not in the same statement (opened before the period) cannot be checked and is left out;
so are forex rows (IB reports their P&L elsewhere) and closes whose round trips carry a commission
in another currency than the instrument's, opening or closing (the core keeps it out of ``fees``,
in ``raw["other_fees"]``, while IB converts it into its figure). ``docs/adr/0013-sync-warnings.md``
says why the check runs here.

:func:`fifo_realized` is an independent FIFO of the same figures, kept for tests that check the
core's pairing against it.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable
from decimal import Decimal

import attrs
from brokersync import AssetClass, Execution, ExecutionCancellation, OpenClose
from brokersync.pairing import pair_executions

from brokersync_ibkr.parse import _decimal

__all__ = ["TOLERANCE", "PnlMismatch", "check_fifo_pnl", "fifo_realized", "paired_realized"]

#: IB rounds its P&L to cents; anything further apart is a mismatch.
TOLERANCE = Decimal("0.01")


@attrs.frozen(kw_only=True)
class PnlMismatch:
    """A closing execution whose FIFO P&L differs from IB's ``fifoPnlRealized``."""

    account_id: str
    broker_execution_id: str
    symbol: str
    ours: Decimal
    """The core's FIFO P&L of the round trips this execution closes, net of commissions (comparable with IB's)."""
    ib: Decimal
    currency: str = ""

    def __str__(self) -> str:
        return f"account {self.account_id}, execution {self.broker_execution_id} ({self.symbol}): {self.message()}"

    def message(self) -> str:
        """Return the mismatch in words, without the account and execution (a warning names them apart)."""
        unit = f" {self.currency}" if self.currency else ""
        return (
            f"brokersync's FIFO P&L net of commissions is {self.ours}{unit}, IB reports fifoPnlRealized "
            f"{self.ib}{unit} (difference {self.ib - self.ours}{unit})"
        )


@attrs.define
class _Lot:
    quantity: Decimal  # signed: + long, - short
    price: Decimal
    fee_per_unit: Decimal


def fifo_realized(executions: Iterable[Execution]) -> dict[str, tuple[Decimal, Decimal] | None]:
    """FIFO per (account, instrument) in time order: for each closing execution, (gross P&L, net P&L).

    The value is ``None`` for a close whose opening lots were not among ``executions``.
    """
    ordered = sorted(enumerate(executions), key=lambda pair: (pair[1].executed_at, pair[0]))
    books: dict[tuple[str, str], deque[_Lot]] = defaultdict(deque)
    result: dict[str, tuple[Decimal, Decimal] | None] = {}
    for _, execution in ordered:
        book = books[(execution.account_id, execution.instrument.pairing_key)]
        signed = execution.signed_quantity
        remaining = abs(signed)
        fee_per_unit = execution.fees / execution.quantity
        gross = Decimal(0)
        opening_fees = Decimal(0)
        closed = Decimal(0)
        while remaining > 0 and book and (book[0].quantity > 0) != (signed > 0):
            lot = book[0]
            take = min(remaining, abs(lot.quantity))
            direction = 1 if lot.quantity > 0 else -1
            gross += (execution.price - lot.price) * take * direction * execution.instrument.multiplier
            opening_fees += lot.fee_per_unit * take
            closed += take
            remaining -= take
            lot.quantity -= take * direction
            if lot.quantity == 0:
                book.popleft()
        if remaining > 0 and execution.open_close is OpenClose.CLOSE:
            # IB says this closes, but the lots it closes are not here (opened before the period).
            result[execution.broker_execution_id] = None
            continue
        if remaining > 0:
            lot_quantity = remaining if signed > 0 else -remaining
            book.append(_Lot(quantity=lot_quantity, price=execution.price, fee_per_unit=fee_per_unit))
        if closed > 0:
            net = gross - opening_fees - fee_per_unit * closed
            result[execution.broker_execution_id] = (gross, net)
    return result


def paired_realized(executions: Iterable[Execution]) -> dict[str, tuple[Decimal, Decimal]]:
    """Pair ``executions`` as the core does (FIFO per account and instrument, in time order).

    Returns:
        For each closing execution: the quantity it closed, and the net P&L (``realized_pnl - fees``)
        of the round trips it closed.
    """
    return _paired(executions)[0]


def _paired(executions: Iterable[Execution]) -> tuple[dict[str, tuple[Decimal, Decimal]], set[str]]:
    """:func:`paired_realized`, and the closing executions whose round trips have fees in another currency."""
    groups: dict[tuple[str, str], list[Execution]] = defaultdict(list)
    for execution in executions:
        groups[(execution.account_id, execution.instrument.pairing_key)].append(execution)
    closed: dict[str, tuple[Decimal, Decimal]] = {}
    foreign: set[str] = set()
    for group in groups.values():
        for trip in pair_executions(group).round_trips:
            closing = str(trip.raw["closing_execution_id"])
            quantity, net = closed.get(closing, (Decimal(0), Decimal(0)))
            closed[closing] = (quantity + trip.quantity, net + (trip.realized_pnl or Decimal(0)) - trip.fees)
            if "other_fees" in trip.raw:
                foreign.add(closing)
    return closed, foreign


def check_fifo_pnl(
    executions: Iterable[Execution], cancellations: Iterable[ExecutionCancellation] = ()
) -> list[PnlMismatch]:
    """Compare the core's FIFO P&L of every closing execution with IB's ``fifoPnlRealized`` (in ``raw``).

    Cancelled executions are left out; of several executions with one id (a correction) the last
    wins. An execution IB marks as closing (``C``) that closes less than its quantity here closed
    lots opened before the statement: it is not checked.

    Returns:
        The mismatches, in the order of the executions.
    """
    cancelled = {(c.account_id, c.broker_execution_id) for c in cancellations}
    latest: dict[tuple[str, str], Execution] = {}
    for execution in executions:
        latest[(execution.account_id, execution.broker_execution_id)] = execution
    kept = [e for key, e in latest.items() if key not in cancelled]
    realized, foreign = _paired(kept)
    mismatches: list[PnlMismatch] = []
    for execution in kept:
        pair = realized.get(execution.broker_execution_id)
        if pair is None or execution.instrument.asset_class is AssetClass.FOREX:
            continue
        quantity, net = pair
        if execution.open_close is OpenClose.CLOSE and quantity < execution.quantity:
            continue  # part of what it closed was opened before the statement's period
        if execution.broker_execution_id in foreign:
            continue  # a commission in another currency: not in fees, converted in IB's figure
        try:
            ib = _decimal(dict(execution.raw), "fifoPnlRealized")
        except ValueError:
            continue
        if ib is None:
            continue
        if abs(net - ib) > TOLERANCE:
            mismatches.append(
                PnlMismatch(
                    account_id=execution.account_id,
                    broker_execution_id=execution.broker_execution_id,
                    symbol=execution.instrument.symbol,
                    ours=net.quantize(Decimal("0.01")),
                    ib=ib,
                    currency=execution.instrument.currency,
                )
            )
    return mismatches
