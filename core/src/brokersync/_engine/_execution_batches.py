"""What the sync step hands the store beside a page's trades, by what the account reports.

The account's own declaration (``Account.reports``) wins over the broker's (``Capabilities.reports``);
an account that declares round trips only and sends executions is refused earlier, by the facade
(a plugin contract error naming the account).

- ``Reports.EXECUTIONS``: the core stores the executions and pairs them; positions are the open
  lots (a snapshot the page may carry is ignored: it would show the position twice).
- ``Reports.ROUND_TRIPS`` / ``Reports.BOTH``: the broker pairs by itself. Executions it reports are
  stored (dedupe, busts, audit) but never paired a second time; a ``TradePage.positions`` snapshot
  replaces the account's stored snapshot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from brokersync.models import Capabilities, Reports

if TYPE_CHECKING:
    from brokersync._broker import TradeBatch

__all__ = ["execution_kwargs"]


def execution_kwargs(capabilities: Capabilities, batch: TradeBatch) -> dict[str, Any]:
    """The keyword arguments of ``Store.store_batch`` for the page's executions, busts and positions."""
    pairs = (batch.reports or capabilities.reports) is Reports.EXECUTIONS
    return {
        "executions": batch.executions,
        "execution_cancellations": batch.execution_cancellations,
        "positions": None if pairs else batch.positions,
        "pair": pairs,
    }
