"""A small, well-behaved example export format ("acme-fills", CSV) and an XML one, plus broken variants.

``acme-fills``: ``Time,Symbol,Side,Qty,Price,Fee,Account`` with ISO times carrying their offset and
no fill id (ids come from the row's content and its occurrence). ``acme-xml``: ``<AcmeFills>`` with
one ``<Fill .../>`` per line. Each broken variant changes one thing and breaks one rule.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import attrs
from brokersync import Execution, TradePage
from brokersync.files import FileFormat, FileFormatError, FileSource
from brokersync.parsing import parse_decimal, parse_side, parse_time

HEADER = "Time,Symbol,Side,Qty,Price,Fee,Account"
FILLS = [
    ("2024-11-05T09:30:12-05:00", "AAPL", "Buy", "100", "225.50", "1.00", "U1"),
    ("2024-11-05T09:30:12-05:00", "AAPL", "Buy", "100", "225.50", "1.00", "U1"),  # an identical second fill
    ("2024-11-05T10:00:00-05:00", "AAPL", "Sell", "200", "226.25", "2.00", "U1"),
    ("2024-11-05T10:05:00-05:00", "MSFT", "Sell", "5", "410.10", "0.50", "U2"),
    ("2024-11-05T10:06:00-05:00", "MSFT", "Buy", "5", "409.90", "0.50", "U2"),
]


def fills_csv(rows: list[tuple[str, ...]] = FILLS, header: str = HEADER) -> bytes:
    return ("\r\n".join([header, *(",".join(r) for r in rows)]) + "\r\n").encode("utf-8-sig")


def fills_xml() -> bytes:
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', "<AcmeFills>"]
    for time, symbol, side, qty, price, fee, account in FILLS:
        lines.append(
            f'  <Fill time="{time}" symbol="{symbol}" side="{side}" qty="{qty}" price="{price}" fee="{fee}" '
            f'account="{account}"/>'
        )
    lines.append("</AcmeFills>")
    return ("\n".join(lines) + "\n").encode("utf-8")


@attrs.frozen
class Fills:
    """The well-behaved acme-fills format; each broken variant overrides one method."""

    name: str = "acme-fills"
    extensions: tuple[str, ...] = (".csv",)
    page_size: int = 100

    def format(self) -> FileFormat:
        return FileFormat(
            name=self.name,
            description="Acme fills CSV",
            extensions=self.extensions,
            sniff=self.sniff,
            parse=self.parse,
        )

    def sniff(self, head: str) -> bool:
        first = next((line for line in head.splitlines() if line.strip()), "")
        return first.strip() == HEADER

    def rows(self, source: FileSource) -> Iterator[tuple[int, dict[str, str]]]:
        return source.csv_rows(required=tuple(HEADER.split(",")))

    def execution_id(self, source: FileSource, row: dict[str, str], executed_at: dt.datetime) -> str:
        return source.content_id(
            "acme", row["Account"], row["Symbol"], row["Side"], row["Qty"], row["Price"], executed_at
        )

    def execution(self, source: FileSource, line: int, row: dict[str, str]) -> Any:
        executed_at = parse_time(row["Time"])
        return Execution(
            broker_execution_id=self.execution_id(source, row, executed_at),
            account_id=row["Account"],
            instrument={"symbol": row["Symbol"], "currency": "USD"},
            side=parse_side(row["Side"]),
            quantity=parse_decimal(row["Qty"], field="Qty"),
            price=parse_decimal(row["Price"], field="Price"),
            executed_at=executed_at,
            fees=parse_decimal(row["Fee"], field="Fee"),
            raw={**row, "_line": line},
        )

    def bad_row(self, source: FileSource, line: int, exc: Exception) -> None:
        source.problem(line, str(exc))

    def parse(self, source: FileSource) -> Iterator[TradePage]:
        batch: list[Any] = []
        for line, row in self.rows(source):
            try:
                batch.append(self.execution(source, line, row))
            except (ValueError, TypeError) as exc:
                self.bad_row(source, line, exc)
                continue
            if len(batch) >= self.page_size:
                yield TradePage(executions=batch)
                batch = []
        if batch:
            yield TradePage(executions=batch)


# --- broken variants: each breaks one rule ---------------------------------------------------------


class BadName(Fills):
    def format(self) -> FileFormat:
        return attrs.evolve(super().format(), name="Acme Fills")


class NoExtensions(Fills):
    def format(self) -> FileFormat:
        return attrs.evolve(super().format(), extensions=())


class StrictSniff(Fills):
    def sniff(self, head: str) -> bool:
        return head.startswith("Time,Symbol,Side,Qty,Price,Fee,Account,Commission")  # a column the export lacks


class LooseSniff(Fills):
    def sniff(self, head: str) -> bool:
        return "time" in head.lower() or "symbol" in head.lower()


class SniffRaises(Fills):
    def sniff(self, head: str) -> bool:
        return head.splitlines()[0].strip() == HEADER  # IndexError on an empty file


class ReadsWholeFile(Fills):
    def rows(self, source: FileSource) -> Iterator[tuple[int, dict[str, str]]]:
        text = source.binary.read().decode("utf-8-sig")
        inner = FileSource(io.BytesIO(text.encode()), name=source.name)
        return inner.csv_rows(required=tuple(HEADER.split(",")))


class OnePage(Fills):
    def parse(self, source: FileSource) -> Iterator[TradePage]:
        pages = list(super().parse(source))
        yield TradePage(executions=[e for p in pages for e in p.executions])


class FloatPrices(Fills):
    def execution(self, source: FileSource, line: int, row: dict[str, str]) -> Any:
        good = super().execution(source, line, row)
        return {**attrs.asdict(good, recurse=False), "instrument": good.instrument, "price": float(row["Price"])}


class NaiveTimes(Fills):
    def execution(self, source: FileSource, line: int, row: dict[str, str]) -> Any:
        good = super().execution(source, line, row)
        return {**attrs.asdict(good, recurse=False), "instrument": good.instrument, "executed_at": row["Time"][:19]}


class RandomIds(Fills):
    def execution_id(self, source: FileSource, row: dict[str, str], executed_at: dt.datetime) -> str:
        return uuid.uuid4().hex


class ContentOnlyIds(Fills):
    def execution_id(self, source: FileSource, row: dict[str, str], executed_at: dt.datetime) -> str:
        return hashlib.sha256(repr(sorted(row.items())).encode()).hexdigest()[:24]  # identical rows: one id


class DropsRepeatedRows(Fills):
    def rows(self, source: FileSource) -> Iterator[tuple[int, dict[str, str]]]:
        previous: dict[str, str] | None = None
        for line, row in super().rows(source):
            if row != previous:
                yield line, row
            previous = row


class StopsAtBadRow(Fills):
    def bad_row(self, source: FileSource, line: int, exc: Exception) -> None:
        raise FileFormatError(f"{source.name}: cannot read line {line}: {exc}")


class SkipsBadRowSilently(Fills):
    def bad_row(self, source: FileSource, line: int, exc: Exception) -> None:
        pass


class NoHeaderCheck(Fills):
    def rows(self, source: FileSource) -> Iterator[tuple[int, dict[str, str]]]:
        return source.csv_rows()  # any header: a letter's first line becomes one, then KeyError


class OwnLineReader(Fills):
    def rows(self, source: FileSource) -> Iterator[tuple[int, dict[str, str]]]:
        lines = io.TextIOWrapper(source.binary, encoding="utf-8-sig", newline="")  # no cap on a line's length
        if next(lines, "").strip() != HEADER:
            raise FileFormatError(f"{source.name}: not an acme fills file")
        for number, text in enumerate(lines, start=2):
            cells = text.rstrip("\r\n").split(",")
            if len(cells) != len(HEADER.split(",")):
                source.problem(number, f"{len(cells)} cells")
                continue
            yield number, dict(zip(HEADER.split(","), cells, strict=True))


@attrs.frozen
class XmlFills:
    """The acme-xml format, well-behaved: a DOCTYPE is refused before the parser sees it."""

    refuse_doctype: bool = True

    def format(self) -> FileFormat:
        return FileFormat(
            name="acme-xml",
            description="Acme fills XML",
            extensions=(".xml",),
            sniff=lambda head: "<AcmeFills" in head[:2048],
            parse=self.parse,
            binary=True,
        )

    def parse(self, source: FileSource) -> Iterator[TradePage]:
        if self.refuse_doctype and "<!DOCTYPE" in source.head:
            raise FileFormatError(f"{source.name}: a DOCTYPE is not allowed in an Acme XML file")
        if "<AcmeFills" not in source.head:
            raise FileFormatError(f"{source.name}: expected <AcmeFills>, found {source.head[:40]!r}")
        lines = source.lines()  # one element per line: the line length cap holds
        batch: list[Any] = []
        for text in lines:
            if "<Fill " not in text:
                continue
            try:
                fill = ET.fromstring(text.strip()).attrib
                executed_at = parse_time(fill["time"])
                batch.append(
                    Execution(
                        broker_execution_id=source.content_id("acme-xml", *sorted(fill.items())),
                        account_id=fill["account"],
                        instrument={"symbol": fill["symbol"], "currency": "USD"},
                        side=parse_side(fill["side"]),
                        quantity=parse_decimal(fill["qty"], field="qty"),
                        price=parse_decimal(fill["price"], field="price"),
                        executed_at=executed_at,
                        fees=Decimal(fill["fee"]),
                        raw={**fill, "_line": source.line},
                    )
                )
            except (ValueError, TypeError, KeyError, ET.ParseError) as exc:
                source.problem(source.line, str(exc))
            if len(batch) >= 100:
                yield TradePage(executions=batch)
                batch = []
        if batch:
            yield TradePage(executions=batch)


class XmlAcceptsDoctype(XmlFills):
    def parse(self, source: FileSource) -> Iterator[TradePage]:
        ET.fromstring(source.head)  # expat reads the DTD; the entities are declared, never refused
        return super().parse(source)


#: variant -> (the format it builds, the rule it breaks).
FILE_VARIANTS: dict[str, tuple[Callable[[], FileFormat], str]] = {
    "BadName": (BadName().format, "file-format-declared"),
    "NoExtensions": (NoExtensions().format, "file-format-declared"),
    "StrictSniff": (StrictSniff().format, "file-sniff-accepts"),
    "LooseSniff": (LooseSniff().format, "file-sniff-rejects"),
    "SniffRaises": (SniffRaises().format, "file-sniff-rejects"),
    "ReadsWholeFile": (ReadsWholeFile().format, "file-parse-streams"),
    "OnePage": (OnePage().format, "file-parse-streams"),
    "FloatPrices": (FloatPrices().format, "file-records-valid"),
    "NaiveTimes": (NaiveTimes().format, "file-records-valid"),
    "RandomIds": (RandomIds().format, "file-ids-stable"),
    "ContentOnlyIds": (ContentOnlyIds().format, "file-identical-rows-kept"),
    "DropsRepeatedRows": (DropsRepeatedRows().format, "file-identical-rows-kept"),
    "StopsAtBadRow": (StopsAtBadRow().format, "file-bad-row-reported"),
    "SkipsBadRowSilently": (SkipsBadRowSilently().format, "file-bad-row-reported"),
    "NoHeaderCheck": (NoHeaderCheck().format, "file-junk-refused"),
    "OwnLineReader": (OwnLineReader().format, "file-long-line-refused"),
    "XmlAcceptsDoctype": (XmlAcceptsDoctype(refuse_doctype=False).format, "file-entities-refused"),
}
