"""Read a Flex statement (``FlexQueryResponse`` XML) into accounts, executions and cancellations.

The parser is a function of its own so a statement downloaded by the Flex Web Service and a Flex
XML file a user saved are read by the same code::

    from brokersync_ibkr.parse import parse_statement

    statement = parse_statement(Path("flex.xml").read_bytes(), tz="America/New_York")
    statement.accounts, statement.executions, statement.cancellations

:func:`iter_statement` is the streaming form (bounded memory on a 100 MB statement): it yields
:class:`StatementInfo`, :class:`~brokersync.Account`, :class:`~brokersync.Execution`,
:class:`~brokersync.ExecutionCancellation` and :class:`RowError` items as it reads.

Safety: the XML is read with :mod:`defusedxml`'s SAX driver over expat: a DOCTYPE (and with it every
entity declaration, the "billion laughs" and external entities) is refused when the parser meets
it, before anything is expanded. No tree is built: each row is converted from its start tag and
handed over after each 64 KiB chunk, so memory stays flat whatever the statement's size.

Rows (``Trade`` in Activity statements, ``TradeConfirm`` in Trade Confirmation statements):

* only ``levelOfDetail="EXECUTION"`` rows (or rows without a level) are executions; order, symbol
  and asset summaries and closed lots are skipped;
* the dedupe key is ``transactionID``, else ``ibExecID``, else ``tradeID`` (per account);
* ``TradeCancel`` rows and ``BUY (Ca.)``/``SELL (Ca.)`` rows cancel the execution named by
  ``origTransactionID`` (else by ``origTradeID``); ``TradeCorrect`` rows replace the execution they
  correct (same id, new values) and the cancellation IB pairs with a correction is dropped;
* ``notes`` codes ``Ep``/``A``/``Ex`` make option expiry, assignment and exercise executions;
* times in any layout a Flex query can be configured with, in the statement's zone unless the
  value carries an abbreviation such as ``EDT`` (which wins); which one was used goes in ``raw``.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import IO, Any
from xml.sax import SAXParseException
from xml.sax.handler import ContentHandler
from xml.sax.xmlreader import AttributesImpl

import attrs
import defusedxml
from brokersync import (
    Account,
    AssetClass,
    Execution,
    ExecutionCancellation,
    ExecutionKind,
    Instrument,
    OpenClose,
    OptionRight,
    Side,
)
from brokersync.parsing import MISSING_VALUES, is_missing, parse_decimal, parse_side, parse_time, zone
from defusedxml.expatreader import DefusedExpatParser

from brokersync_ibkr.plugin import DEFAULT_TIME_ZONE as _DEFAULT_TIME_ZONE

__all__ = [
    "DEFAULT_TIME_ZONE",
    "FlexFormatError",
    "ParsedStatement",
    "RowError",
    "StatementInfo",
    "execution_key",
    "iter_statement",
    "parse_flex_date",
    "parse_flex_time",
    "parse_statement",
]

#: The zone Flex times are read in when they carry no abbreviation (community reports; a user setting at IB).
DEFAULT_TIME_ZONE = _DEFAULT_TIME_ZONE

_ROW_TAGS = frozenset({"Trade", "TradeConfirm"})
_EXECUTION_LEVELS = frozenset({"", "EXECUTION"})
_ASSET_CLASSES = {
    "STK": AssetClass.STOCK,
    "FUT": AssetClass.FUTURE,
    "OPT": AssetClass.OPTION,
    "FOP": AssetClass.FUTURE_OPTION,
    "CASH": AssetClass.FOREX,
    "CRYPTO": AssetClass.CRYPTO,
    "CFD": AssetClass.CFD,
    "BOND": AssetClass.BOND,
    "BILL": AssetClass.BOND,
    "FUND": AssetClass.FUND,
}
_OPEN_CLOSE = {"O": OpenClose.OPEN, "C": OpenClose.CLOSE, "C;O": OpenClose.CLOSE_OPEN, "O;C": OpenClose.CLOSE_OPEN}
_KINDS = (("Ep", ExecutionKind.EXPIRY), ("A", ExecutionKind.ASSIGNMENT), ("Ex", ExecutionKind.EXERCISE))
_SIDES = {"BUY": Side.BUY, "SELL": Side.SELL}
_RIGHTS = {"P": OptionRight.PUT, "PUT": OptionRight.PUT, "C": OptionRight.CALL, "CALL": OptionRight.CALL}
# origTradeID -> key of rows read recently, to resolve a cancellation that names only the trade id.
_RECENT_TRADE_IDS = 20_000
_INSTRUMENT_CACHE = 4096


class FlexFormatError(ValueError):
    """The input is not a readable Flex statement: refused XML, truncated, or another document.

    The message says what was found and where; it never contains the statement's values beyond
    the element names.
    """


@attrs.frozen(kw_only=True)
class StatementInfo:
    """One ``FlexStatement`` (one account's part of the response)."""

    account_id: str
    from_date: dt.date | None = None
    to_date: dt.date | None = None
    period: str | None = None
    when_generated: dt.datetime | None = None


@attrs.frozen(kw_only=True)
class RowError:
    """A row that could not be read; the rest of the statement is."""

    account_id: str | None
    row: int
    """The row's position among the statement's ``Trade``/``TradeConfirm`` rows (1-based)."""
    key: str | None
    reason: str
    line: int | None = None
    """The row's line in the file, when known."""

    def __str__(self) -> str:
        which = f" (id {self.key})" if self.key else ""
        account = f" of account {self.account_id}" if self.account_id else ""
        return f"trade row {self.row}{which}{account}: {self.reason}"


StatementItem = StatementInfo | Account | Execution | ExecutionCancellation | RowError


@attrs.frozen(kw_only=True)
class ParsedStatement:
    """Everything :func:`parse_statement` read from one Flex response."""

    query_type: str | None
    statements: tuple[StatementInfo, ...]
    accounts: tuple[Account, ...]
    executions: tuple[Execution, ...]
    cancellations: tuple[ExecutionCancellation, ...]
    errors: tuple[RowError, ...]

    @property
    def period_end(self) -> dt.date | None:
        """The latest ``toDate`` of the statements (the end of the period covered)."""
        ends = [s.to_date for s in self.statements if s.to_date is not None]
        return max(ends) if ends else None


# --- values -----------------------------------------------------------------------------------------


def _text(value: str | None) -> str | None:
    if not value:
        return None
    value = value.strip()
    return None if value in MISSING_VALUES else value


def _decimal(attrib: dict[str, str], name: str) -> Decimal | None:
    value = attrib.get(name)
    if value is None:
        return None
    try:
        result = Decimal(value)  # the common case: plain number text, read exactly
    except InvalidOperation:
        if is_missing(value):
            return None
        return parse_decimal(value, field=name)  # thousands separators, "(12.50)", or a clear error
    if not result.is_finite():
        raise ValueError(f"{name}: {value!r} is not a finite number")
    return result


_DATE_LAYOUTS = ("%Y%m%d", "%Y-%m-%d", "%m/%d/%Y", "%m/%d/%y", "%d-%b-%y")


@lru_cache(maxsize=4096)
def parse_flex_date(value: str) -> dt.date:
    """Read a Flex date in any layout a query can be set to (``20240105``, ``2024-01-05``, ``01/05/2024``).

    Raises:
        ValueError: naming the value.
    """
    text = value.strip()
    for layout in _DATE_LAYOUTS:
        try:
            return dt.datetime.strptime(text, layout).date()
        except ValueError:
            continue
    raise ValueError(f"{value!r} is not a date in a Flex layout (yyyyMMdd, yyyy-MM-dd, MM/dd/yyyy, MM/dd/yy)")


_DATE_PART = r"\d{8}|\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{2,4}"
_TIME_PART = r"\d{6}|\d{1,2}:\d{2}:\d{2}|\d{1,2}:\d{2}"
_DATE_TIME = re.compile(
    rf"^(?P<date>{_DATE_PART})(?:(?:, |[;, T])(?P<time>{_TIME_PART}))?(?:\s+(?P<abbr>[A-Za-z]{{2,5}}))?$"
)


def _clock_time(text: str) -> dt.time:
    if ":" in text:
        parts = [int(p) for p in text.split(":")]
        return dt.time(parts[0], parts[1], parts[2] if len(parts) > 2 else 0)
    return dt.time(int(text[0:2]), int(text[2:4]), int(text[4:6]))


def parse_flex_time(
    value: str,
    tz: str | dt.tzinfo = DEFAULT_TIME_ZONE,
    *,
    time: str | None = None,
    offsets: dict[tuple[dt.date, int], dt.timedelta] | None = None,
) -> dt.datetime:
    """Read a Flex date/time as a tz-aware UTC datetime.

    ``value`` is a ``dateTime`` in any configured layout (``20240105;093012``,
    ``2024-01-05, 09:30:12``, ``2024-01-05 09:30:12 EDT``, ...) or a ``tradeDate`` with the
    ``tradeTime`` given separately as ``time``. A trailing zone abbreviation wins over ``tz``;
    otherwise the local time is read in ``tz`` (an ambiguous or skipped local time is refused by
    :func:`brokersync.parsing.parse_time`).

    ``offsets`` (a dict the caller keeps for one zone) remembers the UTC offset of each local hour
    that has one offset all through (every hour but a daylight-saving change's), so reading a
    statement's times localizes once per hour instead of once per row; the results are the same.

    Raises:
        ValueError: naming the value.
    """
    text = value.strip()
    if time is not None and time.strip():
        text = f"{text};{time.strip()}"
    if (
        offsets is not None
        and len(text) == 15
        and text[8] == ";"
        and text.isascii()
        and text.replace(";", "").isdigit()
    ):
        # yyyyMMdd;HHmmss, the layout most queries use: read by position, localized by the hour cache
        date_text, hh, mm, ss = text[:8], int(text[9:11]), int(text[11:13]), int(text[13:15])
        fast = offsets.get((parse_flex_date(date_text), hh))
        if fast is not None and mm < 60 and ss < 60:
            local = dt.datetime.combine(parse_flex_date(date_text), dt.time(hh, mm, ss))
            return (local - fast).replace(tzinfo=dt.UTC)
    match = _DATE_TIME.match(text)
    if match is None:
        return parse_time(text, tz=tz)  # ISO with an offset, or a clear error naming the value
    try:
        day = parse_flex_date(match["date"])
        clock = _clock_time(match["time"]) if match["time"] else dt.time(0)
    except ValueError:
        raise ValueError(f"{value!r} is not a Flex date/time") from None
    naive = dt.datetime.combine(day, clock)
    abbreviation = match["abbr"]
    if abbreviation:
        # brokersync.parsing knows the abbreviations and their offsets; hand it an unambiguous layout.
        try:
            return parse_time(f"{naive:%Y-%m-%d %H:%M:%S} {abbreviation.upper()}", tz=tz)
        except ValueError:
            raise ValueError(f"{value!r} ends in a time zone abbreviation brokersync does not know") from None
    if offsets is None:
        return parse_time(naive, tz=tz)
    hour = (day, clock.hour)
    offset = offsets.get(hour)
    if offset is not None:
        return (naive - offset).replace(tzinfo=dt.UTC)
    result = parse_time(naive, tz=tz)
    try:
        first = naive.replace(minute=0, second=0, microsecond=0)
        last = first.replace(minute=59, second=59, microsecond=999999)
        steady = first - parse_time(first, tz=tz).replace(tzinfo=None) == last - parse_time(last, tz=tz).replace(
            tzinfo=None
        )
    except ValueError:  # part of this hour is ambiguous or skipped: never cache it
        steady = False
    if steady:
        if len(offsets) > 100_000:
            offsets.clear()
        offsets[hour] = naive - result.replace(tzinfo=None)
    return result


def execution_key(attrib: dict[str, str]) -> str | None:
    """Return a row's dedupe key: ``transactionID``, else ``ibExecID``, else ``tradeID`` (per account)."""
    for name in ("transactionID", "ibExecID", "execID", "tradeID"):
        value = _text(attrib.get(name))
        if value is not None:
            return value
    return None


# --- rows -------------------------------------------------------------------------------------------


class _Reader:
    """Turns rows into records for one response; keeps only what cancellations need to look back."""

    def __init__(self, tz: str | dt.tzinfo) -> None:
        self.tz = zone(tz) if isinstance(tz, str) else tz
        self.zone_name = tz if isinstance(tz, str) else str(tz)
        self.instruments: dict[tuple[str | None, ...], Instrument] = {}
        self.recent: dict[tuple[str, str], str] = {}
        self.offsets: dict[tuple[dt.date, int], dt.timedelta] = {}

    def instrument(self, a: dict[str, str]) -> Instrument:
        conid = a.get("conid")
        # IB's conid fixes the contract's terms; symbol, currency and multiplier are in the key too.
        short = (conid, a.get("symbol"), a.get("currency"), a.get("multiplier"))
        if conid:
            cached = self.instruments.get(short)
            if cached is not None:
                return cached
        fields = (
            conid,
            a.get("symbol"),
            a.get("assetCategory"),
            a.get("currency"),
            a.get("multiplier"),
            a.get("underlyingSymbol"),
            a.get("expiry"),
            a.get("strike"),
            a.get("putCall"),
            a.get("listingExchange") or a.get("exchange"),
        )
        cached = self.instruments.get(fields)
        if cached is not None:
            return cached
        conid, symbol, category, currency, _, underlying, expiry, _, put_call, exchange = (_text(v) for v in fields)
        if symbol is None:
            raise ValueError("symbol is missing")
        if currency is None:
            raise ValueError("currency is missing")
        asset_class = _ASSET_CLASSES.get((category or "").upper(), AssetClass.OTHER)
        multiplier = _decimal(a, "multiplier") or Decimal(1)
        right = _RIGHTS.get((put_call or "").upper())
        instrument = Instrument(
            symbol=symbol,
            asset_class=asset_class,
            currency=currency,
            multiplier=multiplier,
            instrument_id=conid,
            underlying=underlying,
            expiry=parse_flex_date(expiry) if expiry else None,
            strike=_decimal(a, "strike"),
            right=right,
            exchange=exchange,
        )
        if len(self.instruments) >= _INSTRUMENT_CACHE:
            self.instruments.clear()
        self.instruments[fields] = instrument
        if conid:
            self.instruments[short] = instrument
        return instrument

    def when(self, a: dict[str, str], raw: dict[str, Any]) -> dt.datetime:
        stamp = _text(a.get("dateTime"))
        trade_date = _text(a.get("tradeDate"))
        trade_time = _text(a.get("tradeTime"))
        if stamp is not None and not (trade_time and _DATE_ONLY.match(stamp)):
            value = parse_flex_time(stamp, self.tz, offsets=self.offsets)
        elif trade_date is not None:
            value = parse_flex_time(trade_date, self.tz, time=trade_time, offsets=self.offsets)
        elif stamp is not None:
            value = parse_flex_time(stamp, self.tz, offsets=self.offsets)
        else:
            raise ValueError("the row has no dateTime and no tradeDate")
        source = stamp or trade_date or ""
        zone_used = self.zone_name
        if source[-1:].isalpha():  # ends in an abbreviation (EDT, AEST): that zone was used
            match = _DATE_TIME.match(source)
            if match is not None and match["abbr"]:
                zone_used = match["abbr"].upper()
        raw["time_zone"] = zone_used
        return value

    def remember(self, account_id: str, a: dict[str, str], key: str) -> None:
        trade_id = _text(a.get("tradeID"))
        if trade_id is None:
            return
        recent = self.recent
        recent[(account_id, trade_id)] = key
        if len(recent) > _RECENT_TRADE_IDS:
            del recent[next(iter(recent))]  # the oldest: dicts keep insertion order

    def target(self, account_id: str, a: dict[str, str]) -> str | None:
        """Return the key of the execution a cancel or correct row refers to."""
        original = _text(a.get("origTransactionID"))
        if original is not None and original != "0":
            return original
        trade_id = _text(a.get("origTradeID"))
        if trade_id is not None and trade_id != "0":
            return self.recent.get((account_id, trade_id))
        return None

    def execution(self, account_id: str, a: dict[str, str], key: str) -> Execution:
        raw: dict[str, Any] = a  # the row's own dict (fresh per row): kept as the raw record, no copy
        quantity = _decimal(a, "quantity")
        if quantity is None or quantity == 0:
            raise ValueError(f"quantity is {a.get('quantity')!r}; an execution needs a non-zero quantity")
        side_text = a.get("buySell")
        side = _SIDES.get(side_text) if side_text else None
        if side is None and side_text and _text(side_text):
            side = parse_side(side_text.replace("(Ca.)", "").strip())
        if side is None:
            side = Side.BUY if quantity > 0 else Side.SELL
        price = _decimal(a, "tradePrice")
        if price is None:
            price = _decimal(a, "price")
        if price is None:
            raise ValueError("tradePrice is missing")
        commission = _decimal(a, "ibCommission")
        commission_currency = _text(a.get("ibCommissionCurrency"))
        if commission is None:
            commission = _decimal(a, "commission")
            commission_currency = _text(a.get("commissionCurrency"))
        kind = ExecutionKind.FILL
        if a.get("assetCategory") in ("OPT", "FOP"):  # the stock leg of an assignment is an ordinary fill
            notes = {n.strip() for n in (a.get("notes") or "").split(";")}
            kind = next((k for code, k in _KINDS if code in notes), ExecutionKind.FILL)
        executed_at = self.when(a, raw)
        instrument = self.instrument(a)
        return Execution(
            broker_execution_id=key,
            account_id=account_id,
            instrument=instrument,
            side=side,
            quantity=abs(quantity),
            price=price,
            executed_at=executed_at,
            fees=-commission if commission else Decimal(0),
            fee_currency=commission_currency,
            order_id=_text(a.get("ibOrderID")) or _text(a.get("orderID")),
            open_close=_OPEN_CLOSE.get((a.get("openCloseIndicator") or "").strip()),
            kind=kind,
            raw=raw,
            broker_realized_pnl=_realized(a, instrument),
        )

    def cancellation(self, account_id: str, a: dict[str, str], target: str) -> ExecutionCancellation:
        raw: dict[str, Any] = dict(a)
        return ExecutionCancellation(
            account_id=account_id,
            broker_execution_id=target,
            cancelled_at=self.when(a, raw),
            reason=_text(a.get("transactionType")) or "Ca",
            raw=raw,
        )


def _realized(a: dict[str, str], instrument: Instrument) -> Decimal | None:
    """IB's ``fifoPnlRealized`` (net of commissions), for the core to check its round trips against.

    ``None`` (nothing to check) for forex, whose P&L IB reports elsewhere, and for a value that is
    missing or unreadable: the figure is a check, an unreadable one does not cost the execution.
    """
    if instrument.asset_class is AssetClass.FOREX:
        return None
    try:
        return _decimal(a, "fifoPnlRealized")
    except ValueError:
        return None


_DATE_ONLY = re.compile(rf"^(?:{_DATE_PART})$")


def _is_cancel(a: dict[str, str]) -> bool:
    kind = a.get("transactionType")
    if kind == "ExchTrade":
        return "(Ca.)" in (a.get("buySell") or "")
    return (kind or "").strip() == "TradeCancel" or "(Ca.)" in (a.get("buySell") or "")


def _is_correction(a: dict[str, str]) -> bool:
    kind = a.get("transactionType")
    return kind is not None and kind != "ExchTrade" and kind.strip() == "TradeCorrect"


# --- the document -----------------------------------------------------------------------------------


def _open(source: bytes | bytearray | memoryview | IO[bytes]) -> IO[bytes]:
    if isinstance(source, bytes | bytearray | memoryview):
        return io.BytesIO(source)
    if isinstance(source, io.TextIOBase):  # type: ignore[unreachable]  # callers without type checking
        raise TypeError("pass the statement as bytes or a binary file (open(path, 'rb')), not text")
    return source


def _refused(exc: Exception) -> FlexFormatError:
    if isinstance(exc, defusedxml.DTDForbidden):
        what = "a DOCTYPE declaration"
    elif isinstance(exc, defusedxml.EntitiesForbidden):
        what = "an entity declaration"
    else:
        what = "a reference to an external entity"
    return FlexFormatError(
        f"refused: the XML contains {what}; a Flex statement never does (entity expansion and external "
        "references are a known attack on XML readers), so nothing was read"
    )


def _date_attr(attrib: dict[str, str], name: str) -> dt.date | None:
    value = _text(attrib.get(name))
    if value is None:
        return None
    try:
        return parse_flex_date(value.split(";")[0].split(",")[0].split(" ")[0])
    except ValueError:
        return None


def iter_statement(
    source: bytes | bytearray | memoryview | IO[bytes],
    *,
    tz: str | dt.tzinfo = DEFAULT_TIME_ZONE,
    account_id: str | None = None,
    accounts_only: bool = False,
    lines: bool = False,
) -> Iterator[StatementItem]:
    """Stream a Flex statement: statement headers, accounts, executions, cancellations, row errors.

    Args:
        source: The XML as bytes, or a binary file opened for reading.
        tz: The statement's time zone (IANA name) for times without an abbreviation.
        account_id: Only this account's rows (other accounts' statements are skipped cheaply).
        accounts_only: Read the statement headers and accounts only (no row is converted).
        lines: Put each row's line in the file into its record's ``raw["_line"]`` (file imports
            keep it as the record's source row); row errors always carry it.

    Yields:
        A :class:`StatementInfo` at the start of each ``FlexStatement``, its
        :class:`~brokersync.Account`, then its executions (in file order) and row errors, then its
        cancellations at the statement's end (a cancellation IB pairs with a correction of the same
        execution is left out: the correction replaces the execution).

    Raises:
        FlexFormatError: the XML declares a DOCTYPE or entities, is not well formed (e.g.
            truncated), or is not a ``FlexQueryResponse`` (a status answer of the Flex Web
            Service, or another document).
    """
    handler = _Handler(_Reader(tz), account_id=account_id, accounts_only=accounts_only)
    parser = DefusedExpatParser(forbid_dtd=True)
    parser.setContentHandler(handler)
    stream = _open(source)
    try:
        parser.feed(b"")  # sets up the defused expat parser (DOCTYPE and entity handlers refuse)
        # Rows go straight from expat to the handler: no SAX attribute wrapper, no per-element
        # frame in between (a third of the parse time). defusedxml's refusing handlers stay.
        expat = getattr(parser, "_parser", None)
        handler.expat, handler.lines = expat, lines
        if expat is not None:
            expat.StartElementHandler = handler.start
            expat.EndElementHandler = handler.end
        while True:
            chunk = stream.read(_CHUNK)
            if not chunk:
                break
            parser.feed(chunk)
            if handler.pending:  # hand over what this chunk produced: memory stays flat
                yield from handler.pending
                handler.pending = []
        parser.close()
    except (defusedxml.DTDForbidden, defusedxml.EntitiesForbidden, defusedxml.ExternalReferenceForbidden) as exc:
        raise _refused(exc) from None
    except SAXParseException as exc:
        reason = exc.getMessage()
        if not handler.root_seen and reason == "no element found":
            raise FlexFormatError("the statement is empty (no XML element at all)") from None
        cut = ("no element found", "unclosed token", "unclosed CDATA section")
        hint = " (the statement is cut short: truncated download or file?)" if reason in cut else ""
        raise FlexFormatError(
            f"the statement is not well-formed XML: {reason} at line {exc.getLineNumber()}, "
            f"column {exc.getColumnNumber()}{hint}"
        ) from None
    if not handler.root_seen:
        raise FlexFormatError("the statement is empty (no XML element at all)")
    yield from handler.pending


_CHUNK = 1 << 16


class _Handler(ContentHandler):
    """SAX events -> statement items; rows are read from their start tag (they have no content)."""

    def __init__(self, reader: _Reader, *, account_id: str | None, accounts_only: bool) -> None:
        super().__init__()
        self.reader = reader
        self.account_id = account_id
        self.accounts_only = accounts_only
        self.pending: list[StatementItem] = []
        self.root_seen = False
        self.statement: str | None = None
        self.has_account = False
        self.skipping = False
        self.row = 0
        self.cancels: list[ExecutionCancellation] = []
        self.corrected: set[str] = set()
        self.expat: Any = None  # the expat parser, for line numbers
        self.lines = False

    def startElement(self, name: str, attrs: AttributesImpl) -> None:
        """SAX start tag (used when the expat parser is not reachable directly)."""
        self.start(name, dict(attrs.items()))

    def endElement(self, name: str) -> None:
        """SAX end tag."""
        self.end(name)

    def start(self, name: str, attrib: dict[str, str]) -> None:
        """Handle a start tag (``attrib`` is a fresh dict per element, as expat hands it over)."""
        if name in _ROW_TAGS:
            if self.statement is not None:
                self.row += 1
                if not self.skipping and not self.accounts_only:
                    if self.lines and self.expat is not None:
                        attrib["_line"] = self.expat.CurrentLineNumber
                    item = _row(self.reader, attrib, self.statement, self.row, self.cancels, self.corrected)
                    if isinstance(item, RowError) and self.expat is not None:  # expat is still on this row
                        item = attrs.evolve(item, line=self.expat.CurrentLineNumber)
                    if item is not None:
                        self.pending.append(item)
            return
        if not self.root_seen:
            self.root_seen = True
            if name == "FlexStatementResponse":
                raise FlexFormatError(
                    "this is a Flex Web Service status answer (FlexStatementResponse), not a statement"
                )
            if name != "FlexQueryResponse":
                raise FlexFormatError(
                    f"not a Flex statement: the document's root element is <{_short(name)}>, "
                    "expected <FlexQueryResponse>"
                )
        elif name == "FlexStatement":
            statement = self.statement = _text(attrib.get("accountId")) or "-"
            self.has_account = False
            self.cancels, self.corrected = [], set()
            self.skipping = self.account_id is not None and statement != self.account_id
            if not self.skipping:
                self.pending.append(
                    StatementInfo(
                        account_id=statement,
                        from_date=_date_attr(attrib, "fromDate"),
                        to_date=_date_attr(attrib, "toDate"),
                        period=_text(attrib.get("period")),
                        when_generated=_generated(attrib.get("whenGenerated"), self.reader.tz),
                    )
                )
        elif name == "AccountInformation" and self.statement is not None:
            if not self.skipping and not self.has_account:
                self.has_account = True
                self.pending.append(_account(attrib, self.statement))

    def end(self, name: str) -> None:
        """Handle an end tag: a statement's end hands over its account (if none yet) and cancellations."""
        if name != "FlexStatement" or self.statement is None:
            return
        if not self.skipping:
            if not self.has_account:
                self.pending.append(Account(id=self.statement))
            self.pending.extend(c for c in self.cancels if c.broker_execution_id not in self.corrected)
        self.statement = None


def _short(tag: str) -> str:
    return tag if len(tag) <= 60 else tag[:57] + "..."


def _generated(value: str | None, tz: dt.tzinfo) -> dt.datetime | None:
    text = _text(value)
    if text is None:
        return None
    try:
        return parse_flex_time(text, tz)
    except ValueError:
        return None


def _account(a: dict[str, str], statement: str) -> Account:
    account = _text(a.get("accountId")) or statement
    currency = _text(a.get("currency"))
    return Account(
        id=account,
        name=_text(a.get("acctAlias")) or _text(a.get("name")),
        currency=currency if currency and re.match(r"^[A-Za-z0-9]{2,12}$", currency) else None,
        type=_text(a.get("accountType")),
        raw=dict(a),
    )


def _row(
    reader: _Reader,
    a: dict[str, str],
    statement: str,
    row: int,
    cancels: list[ExecutionCancellation],
    corrected: set[str],
) -> Execution | RowError | None:
    level = a.get("levelOfDetail")
    if level != "EXECUTION" and level and level.strip().upper() not in _EXECUTION_LEVELS:
        return None
    account = _text(a.get("accountId")) or statement
    key = execution_key(a)
    try:
        return _convert(reader, a, account, key, cancels, corrected)
    except (ValueError, TypeError) as exc:
        return RowError(account_id=account, row=row, key=key, reason=str(exc))


def _convert(
    reader: _Reader,
    a: dict[str, str],
    account: str,
    key: str | None,
    cancels: list[ExecutionCancellation],
    corrected: set[str],
) -> Execution | None:
    if key is None:
        raise ValueError("the row has no transactionID, ibExecID or tradeID")
    if _is_cancel(a):
        target = reader.target(account, a)
        if target is None:
            raise ValueError(
                "a cancellation row without origTransactionID, and its origTradeID names no row read "
                "before it; the cancelled execution is unknown"
            )
        cancels.append(reader.cancellation(account, a, target))
        return None
    if _is_correction(a):
        target = reader.target(account, a)
        if target is not None:
            corrected.add(target)
            key = target
    execution = reader.execution(account, a, key)
    reader.remember(account, a, key)
    return execution


def parse_statement(
    source: bytes | bytearray | memoryview | IO[bytes], *, tz: str | dt.tzinfo = DEFAULT_TIME_ZONE
) -> ParsedStatement:
    """Read a whole Flex statement (see :func:`iter_statement` for the streaming form).

    Raises:
        FlexFormatError: see :func:`iter_statement`.
    """
    statements: list[StatementInfo] = []
    accounts: dict[str, Account] = {}
    executions: list[Execution] = []
    cancellations: list[ExecutionCancellation] = []
    errors: list[RowError] = []
    query_type = _query_type(source)
    for item in iter_statement(source, tz=tz):
        if isinstance(item, Execution):
            executions.append(item)
        elif isinstance(item, ExecutionCancellation):
            cancellations.append(item)
        elif isinstance(item, Account):
            accounts.setdefault(item.id, item)
        elif isinstance(item, StatementInfo):
            statements.append(item)
        else:
            errors.append(item)
    return ParsedStatement(
        query_type=query_type,
        statements=tuple(statements),
        accounts=tuple(accounts.values()),
        executions=tuple(executions),
        cancellations=tuple(cancellations),
        errors=tuple(errors),
    )


_TYPE = re.compile(rb"<FlexQueryResponse\b[^>]*\btype=\"([^\"]*)\"")


def _query_type(source: bytes | bytearray | memoryview | IO[bytes]) -> str | None:
    if isinstance(source, bytes | bytearray | memoryview):
        match = _TYPE.search(bytes(source[:4096]))
        return match.group(1).decode("ascii", "replace") if match else None
    return None
