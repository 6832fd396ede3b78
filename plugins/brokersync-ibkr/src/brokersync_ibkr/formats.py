"""The IBKR exports ``brokersync import`` reads: a downloaded Flex XML and the Activity Statement CSV.

Both use the same parsers as the API sync (:mod:`brokersync_ibkr.parse`, :mod:`brokersync_ibkr.files`),
so a Flex XML downloaded from Client Portal and the Flex Web Service give the same execution ids
and converge.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator
from typing import IO, Any, cast

from brokersync import Account, Execution, ExecutionCancellation, TradePage
from brokersync.files import DEFAULT_MAX_LINE_BYTES, FileFormat, FileFormatError, FileSource

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
            line: int = getattr(item, "line", 0) or getattr(item, "row", 0)
            source.problem(line, str(item))
        if len(executions) + len(cancellations) >= _PAGE:
            yield TradePage(executions=executions, cancellations=cancellations)
            executions, cancellations = [], []
    if executions or cancellations:
        yield TradePage(executions=executions, cancellations=cancellations)


def _sniff_flex(head: str) -> bool:
    return "<FlexQueryResponse" in head[:4096] or "<FlexStatements" in head[:4096]


class _Bounded(io.RawIOBase):
    """The file, refused once a run of bytes without a newline or a tag end (``>``) exceeds the line cap.

    A Flex statement's rows are elements; a 50 MB text or attribute is not a statement, and expat
    would hold it in memory whole.
    """

    def __init__(self, stream: IO[bytes], name: str, limit: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self._stream = stream
        self._name = name
        self._limit = limit
        self._run = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        data = self._stream.read(-1 if size is None else size)
        ends = [i for i in (data.find(b"\n"), data.find(b">")) if i >= 0]
        run = self._run + (min(ends) if ends else len(data))
        if ends:
            last = max(data.rfind(b"\n"), data.rfind(b">"))
            self._run = len(data) - last - 1
            if len(data) > self._limit:  # a big read: runs inside it count too
                run = max(run, *(len(part) for part in re.split(rb"[\n>]", data)))
        else:
            self._run = run
        if max(run, self._run) > self._limit:
            raise FileFormatError(
                f"{self._name}: more than {self._limit:,} bytes without a line or tag end; this is not a Flex statement"
            )
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _parse_flex(source: FileSource) -> Iterator[TradePage]:
    from brokersync_ibkr.parse import FlexFormatError, iter_statement

    try:
        stream = cast(IO[bytes], _Bounded(source.binary, source.name))
        yield from _pages(source, iter_statement(stream, tz=_zone(source), account_id=source.account_id, lines=True))
    except FlexFormatError as exc:
        raise FileFormatError(f"{source.name}: {exc}") from None


def _sniff_activity(head: str) -> bool:
    from brokersync_ibkr.files import looks_like_activity_csv

    return looks_like_activity_csv(head.encode("utf-8", errors="replace")[:4096])


def _parse_activity(source: FileSource) -> Iterator[TradePage]:
    from brokersync_ibkr.files import iter_activity_csv

    # The instruments' terms (multipliers, expiries) follow the trades: the statement is read whole,
    # line by line within the core's line cap (a 50 MB line is refused, not read).
    data = "".join(source.lines()).encode("utf-8")
    try:
        yield from _pages(source, iter_activity_csv(data, tz=_zone(source), account_id=source.account_id))
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
