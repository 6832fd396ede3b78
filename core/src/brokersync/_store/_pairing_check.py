"""Checking the broker's own realized P&L of closing executions against the core's round trips.

A plugin may set ``Execution.broker_realized_pnl``: what the broker says the execution realized,
net of fees, in the instrument's currency (IB's ``fifoPnlRealized``). Once the core has paired a
page (incrementally, or by re-pairing an instrument from a point), each execution of the page that
carries the figure and whose round trips were derived in this page is compared with the sum of
``realized_pnl - fees`` over the round trips it closed. Both sides then see the same lots: the
core's, kept across syncs, not only what one statement holds (ADR 0013, amendment).

A difference above :data:`TOLERANCE` becomes a :class:`~brokersync.results.SyncWarning` with code
:data:`CODE`, returned with the page's counts (``BatchCounts.warnings``) after the page's
transaction, and delivered by the engine through the same path as ``ctx.warn``.

Not checked (each leaves the figure unused, never a warning):

- an execution whose round trips were not derived in this page: sent again unchanged while its
  instrument pairs incrementally (it was checked when it arrived), or not in the page at all (the
  figure is not stored: a re-pair re-checks the executions the broker sends again, which is what an
  overlapping statement does);
- an execution that closed nothing in the core's view (an opening fill, for which IB reports 0; or
  a close of lots opened before the history the core holds: the core has nothing to compare);
- an execution the broker marks as closing only (``OpenClose.CLOSE``) that closed less than its
  quantity in the core's view: the rest closed lots opened before the core's history, which the
  broker's figure includes and the core's cannot;
- an execution whose round trips carry a fee share in another currency (``raw["other_fees"]``):
  the core keeps it out of ``fees`` and converts nothing, while the broker's figure converted it.
- an execution of an account whose broker pairs by itself (nothing is paired, nothing compared).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

import attrs

from brokersync.models import OpenClose, Trade
from brokersync.results import SyncWarning

__all__ = ["CODE", "TOLERANCE", "PnlCheck"]

#: Broker P&L figures are rounded to cents; anything further apart (in the instrument's currency) is a mismatch.
TOLERANCE = Decimal("0.01")
#: The code of the warning (``SyncWarning.code``).
CODE = "brokersync.pnl_mismatch"

_ZERO = Decimal(0)
_CENT = Decimal("0.01")


@attrs.define
class PnlCheck:
    """The broker's figures of a page's executions, and the round trips pairing derived for them."""

    # execution id -> (broker's figure, the execution's quantity, its open/close intent)
    figures: dict[str, tuple[Decimal, Decimal, OpenClose | None]] = attrs.Factory(dict)
    trips: dict[str, list[Trade]] = attrs.Factory(dict)

    def take(self, trips: Iterable[Trade]) -> None:
        """Keep the round trips closed by an execution that carries a figure (nothing to do without one)."""
        if not self.figures:
            return
        figures, kept = self.figures, self.trips
        for trip in trips:
            closing = trip.raw["closing_execution_id"]
            if closing in figures:
                assert isinstance(closing, str)
                kept.setdefault(closing, []).append(trip)

    def warnings(self, account_id: str) -> tuple[SyncWarning, ...]:
        """A warning per checked execution whose figure differs from the core's (see the module doc)."""
        found: list[SyncWarning] = []
        for execution_id, trips in self.trips.items():
            figure, quantity, open_close = self.figures[execution_id]
            if any("other_fees" in trip.raw for trip in trips):
                continue
            closed = sum((trip.quantity for trip in trips), _ZERO)
            if open_close is OpenClose.CLOSE and closed < quantity:
                continue
            ours = sum(((trip.realized_pnl or _ZERO) - trip.fees for trip in trips), _ZERO)
            if abs(ours - figure) <= TOLERANCE:
                continue
            unit = f" {trips[0].currency}"
            found.append(
                SyncWarning(
                    message=(  # the warning's account and record name the account and the execution
                        f"{trips[0].symbol}, closing execution: the round trips brokersync paired realized "
                        f"{ours.quantize(_CENT)}{unit} net of fees, the broker reports {figure}{unit} "
                        f"(difference {(figure - ours).quantize(_CENT)}{unit})"
                    ),
                    account_id=account_id,
                    record_id=execution_id,
                    code=CODE,
                )
            )
        return tuple(found)
