"""The Tradovate exports ``brokersync import`` reads (see :mod:`brokersync_tradovate.files`).

Position History carries the API's own pair and fill ids, so a file and an API sync of the same
account converge. Orders/Fills are executions Tradovate pairs by itself: they are stored, not paired
again by the core (``pair_executions=False``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs
from brokersync import TradePage
from brokersync.files import FileFormat, FileFormatError, FileSource

__all__ = ["ORDERS_CSV", "PERFORMANCE_CSV", "POSITION_HISTORY_CSV"]


def _header(head: str) -> str:
    return next((line for line in head.lstrip("\ufeff").splitlines() if line.strip()), "")


def _readable(source: FileSource, record: Any) -> bool:
    """Tell whether ``record`` was read; a row the parser could not read is reported as a problem instead.

    (As a record, the core would report only that it lacks a symbol, not which row or why.)
    """
    raw = record.get("raw") if isinstance(record, dict) else None
    problem = raw.get("problem") if isinstance(raw, dict) else None
    if problem is None:
        return True
    line = int(raw.get("line") or 0)  # type: ignore[union-attr]
    source.problem(line, str(problem).removeprefix(f"line {line}: "))
    return False


def _parse(source: FileSource, kind: str) -> Iterator[TradePage]:
    for page in _pages(source, kind):
        yield attrs.evolve(
            page,
            records=[r for r in page.records if _readable(source, r)],
            executions=[e for e in page.executions if _readable(source, e)],
        )


def _pages(source: FileSource, kind: str) -> Iterator[TradePage]:
    from brokersync_tradovate import files

    tz = source.require_timezone(f"Tradovate {kind}")
    try:
        if kind == "Position History":
            yield from files.parse_position_history(source.lines(), account_id=source.account_id, tz=tz)
        elif kind == "Performance":
            if not source.account_id:
                raise FileFormatError(
                    f"{source.name}: Tradovate Performance exports do not name the account: --account"
                )
            yield from files.parse_performance(source.lines(), account_id=source.account_id, tz=tz)
        else:
            multipliers = source.options.get("multipliers")
            yield from files.parse_orders(source.lines(), account_id=source.account_id, tz=tz, multipliers=multipliers)
    except ValueError as exc:
        raise FileFormatError(f"{source.name}: {exc}") from None


def _position_history(source: FileSource) -> Iterator[TradePage]:
    return _parse(source, "Position History")


def _performance(source: FileSource) -> Iterator[TradePage]:
    return _parse(source, "Performance")


def _orders(source: FileSource) -> Iterator[TradePage]:
    return _parse(source, "Orders")


POSITION_HISTORY_CSV = FileFormat(
    name="tradovate-position-history",
    description="Tradovate Position History CSV: paired trades with the API's pair and fill ids",
    extensions=(".csv",),
    sniff=lambda head: all(c in _header(head) for c in ("Pair ID", "Buy Fill ID", "Sell Fill ID")),
    parse=_position_history,
    needs_timezone=True,
)

PERFORMANCE_CSV = FileFormat(
    name="tradovate-performance",
    description="Tradovate (or TradingView) Performance CSV: round trips by buy and sell fill id",
    extensions=(".csv",),
    sniff=lambda head: all(c in _header(head) for c in ("buyFillId", "sellFillId", "boughtTimestamp")),
    parse=_performance,
    needs_timezone=True,
)

ORDERS_CSV = FileFormat(
    name="tradovate-orders",
    description="Tradovate Orders/Fills CSV: each filled order at its average price (stored, not paired again)",
    extensions=(".csv",),
    sniff=lambda head: all(c in _header(head) for c in ("B/S", "Contract", "Fill Time", "avgPrice")),
    parse=_orders,
    needs_timezone=True,
    pair_executions=False,
)
