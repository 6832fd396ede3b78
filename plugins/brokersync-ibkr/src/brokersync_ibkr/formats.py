"""The IBKR exports ``brokersync import`` reads: a downloaded Flex XML and the Activity Statement CSV.

Both use the same parsers as the API sync (:mod:`brokersync_ibkr.parse`, :mod:`brokersync_ibkr.files`),
so a Flex XML downloaded from Client Portal and the Flex Web Service give the same execution ids
and converge.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from brokersync import Account, Execution, ExecutionCancellation, TradePage
from brokersync.files import FileFormat, FileFormatError, FileSource

__all__ = ["ACTIVITY_CSV", "FLEX_XML"]

_PAGE = 1000


def _zone(source: FileSource) -> str:
    from brokersync_ibkr.parse import DEFAULT_TIME_ZONE

    return source.timezone or str(source.options.get("time_zone") or DEFAULT_TIME_ZONE)


def _pages(source: FileSource, items: Iterable[Any]) -> Iterator[TradePage]:
    executions: list[Execution] = []
    cancellations: list[ExecutionCancellation] = []
    for item in items:
        if isinstance(item, Execution):
            executions.append(item)
        elif isinstance(item, ExecutionCancellation):
            cancellations.append(item)
        elif not isinstance(item, Account) and hasattr(item, "reason"):
            source.problem(getattr(item, "row", 0), str(item))
        if len(executions) + len(cancellations) >= _PAGE:
            yield TradePage(executions=executions, cancellations=cancellations)
            executions, cancellations = [], []
    if executions or cancellations:
        yield TradePage(executions=executions, cancellations=cancellations)


def _sniff_flex(head: str) -> bool:
    return "<FlexQueryResponse" in head[:4096] or "<FlexStatements" in head[:4096]


def _parse_flex(source: FileSource) -> Iterator[TradePage]:
    from brokersync_ibkr.parse import FlexFormatError, iter_statement

    try:
        yield from _pages(source, iter_statement(source.binary, tz=_zone(source), account_id=source.account_id))
    except FlexFormatError as exc:
        raise FileFormatError(f"{source.name}: {exc}") from None


def _sniff_activity(head: str) -> bool:
    from brokersync_ibkr.files import looks_like_activity_csv

    return looks_like_activity_csv(head.encode("utf-8", errors="replace")[:4096])


def _parse_activity(source: FileSource) -> Iterator[TradePage]:
    from brokersync_ibkr.files import iter_activity_csv

    try:
        yield from _pages(source, iter_activity_csv(source.binary, tz=_zone(source), account_id=source.account_id))
    except ValueError as exc:
        raise FileFormatError(f"{source.name}: {exc}") from None


FLEX_XML = FileFormat(
    name="ibkr-flex-xml",
    description="IBKR Flex query XML (Activity or Trade Confirmation), as downloaded or from the Flex Web Service",
    extensions=(".xml",),
    sniff=_sniff_flex,
    parse=_parse_flex,
    binary=True,
)

ACTIVITY_CSV = FileFormat(
    name="ibkr-activity-csv",
    description="IBKR Activity Statement CSV: the Trades section's Order rows",
    extensions=(".csv",),
    sniff=_sniff_activity,
    parse=_parse_activity,
    binary=True,
)
