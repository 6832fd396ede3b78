"""Check IB's realized P&L (``fifoPnlRealized``) against a FIFO computed from the executions alone.

IB does not pair trades; it reports on each closing row the FIFO P&L it realized, **net of
commissions** (the closing row's commission, and the share of the opening rows' commissions in the
cost basis). brokersync stores P&L gross with commissions in fees, so the comparison adds the
commissions back in: ``gross - opening fee share - closing fee share == fifoPnlRealized``.

A closing execution whose opening lots are not in the same statement (opened before the period)
cannot be checked and is left out; so are forex rows (IB reports their P&L elsewhere) and rows
whose commission is in another currency than the instrument's.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable
from decimal import Decimal

import attrs
from brokersync import AssetClass, Execution, ExecutionCancellation, OpenClose

from brokersync_ibkr.parse import _decimal

__all__ = ["PnlMismatch", "check_fifo_pnl", "fifo_realized"]

#: IB rounds its P&L to cents; anything further apart is a mismatch.
TOLERANCE = Decimal("0.01")


@attrs.frozen(kw_only=True)
class PnlMismatch:
    """A closing execution whose FIFO P&L differs from IB's ``fifoPnlRealized``."""

    account_id: str
    broker_execution_id: str
    symbol: str
    ours: Decimal
    """Our FIFO P&L, net of commissions (comparable with IB's)."""
    ib: Decimal

    def __str__(self) -> str:
        return (
            f"account {self.account_id}, execution {self.broker_execution_id} ({self.symbol}): FIFO P&L net of "
            f"commissions is {self.ours}, IB reports fifoPnlRealized {self.ib}"
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


def check_fifo_pnl(
    executions: Iterable[Execution], cancellations: Iterable[ExecutionCancellation] = ()
) -> list[PnlMismatch]:
    """Compare the FIFO P&L of every closing execution with IB's ``fifoPnlRealized`` (in ``raw``).

    Cancelled executions are left out; of several executions with one id (a correction) the last wins.

    Returns:
        The mismatches, in the order of the executions.
    """
    cancelled = {(c.account_id, c.broker_execution_id) for c in cancellations}
    latest: dict[tuple[str, str], Execution] = {}
    for execution in executions:
        latest[(execution.account_id, execution.broker_execution_id)] = execution
    kept = [e for key, e in latest.items() if key not in cancelled]
    realized = fifo_realized(kept)
    mismatches: list[PnlMismatch] = []
    for execution in kept:
        pair = realized.get(execution.broker_execution_id)
        if pair is None or execution.instrument.asset_class is AssetClass.FOREX:
            continue
        if execution.fee_currency not in (None, execution.instrument.currency):
            continue
        try:
            ib = _decimal(dict(execution.raw), "fifoPnlRealized")
        except ValueError:
            continue
        if ib is None:
            continue
        if abs(pair[1] - ib) > TOLERANCE:
            mismatches.append(
                PnlMismatch(
                    account_id=execution.account_id,
                    broker_execution_id=execution.broker_execution_id,
                    symbol=execution.instrument.symbol,
                    ours=pair[1].quantize(Decimal("0.01")),
                    ib=ib,
                )
            )
    return mismatches
