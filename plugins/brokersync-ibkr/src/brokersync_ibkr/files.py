"""IB's Activity Statement CSV (the "Statements" download), read into the same records as the Flex parser.

The file is many sections in one CSV: every row starts with the section name and the row kind
(``Header``, ``Data``, ``SubTotal``, ``Total``, ``Notes``), and a section may repeat its ``Header``
row when its columns change (Forex trades have ``Comm in USD`` instead of ``Comm/Fee``)::

    Trades,Header,DataDiscriminator,Asset Category,Currency,Symbol,Date/Time,Quantity,T. Price,...,Comm/Fee,...,Code
    Trades,Data,Order,Stocks,USD,AAPL,"2024-01-03, 10:00:00",100,150,...,-1,...,O

Only ``Data`` rows whose ``DataDiscriminator`` is ``Order`` are executions (``Trade`` rows of some
layouts, ``SubTotal``/``Total`` and summary rows are skipped). The multiplier, conid and option
terms come from the ``Financial Instrument Information`` section, wherever it is in the file.

The CSV has no execution id: each row gets ``csv:`` + a digest of its account, instrument, time,
quantity and price, plus its occurrence among identical rows (two identical fills in one second
stay two executions, and reading the file again gives the same ids).
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from typing import IO

from brokersync import Account, AssetClass, Execution, ExecutionKind, Instrument, OpenClose, OptionRight, Side
from brokersync.parsing import is_missing, parse_decimal, zone

from brokersync_ibkr.parse import DEFAULT_TIME_ZONE, RowError, parse_flex_date, parse_flex_time

__all__ = ["ACTIVITY_CSV_SNIFF", "iter_activity_csv", "looks_like_activity_csv"]

#: What the first bytes of an Activity Statement CSV look like.
ACTIVITY_CSV_SNIFF = (b"Statement,Header,Field Name,Field Value", b"Statement,Header,")

_CATEGORIES = {
    "stocks": AssetClass.STOCK,
    "equity and index options": AssetClass.OPTION,
    "futures": AssetClass.FUTURE,
    "options on futures": AssetClass.FUTURE_OPTION,
    "forex": AssetClass.FOREX,
    "cfds": AssetClass.CFD,
    "bonds": AssetClass.BOND,
    "crypto": AssetClass.CRYPTO,
    "mutual funds": AssetClass.FUND,
}
_KINDS = (("Ep", ExecutionKind.EXPIRY), ("A", ExecutionKind.ASSIGNMENT), ("Ex", ExecutionKind.EXERCISE))


def looks_like_activity_csv(head: bytes) -> bool:
    """Whether the first bytes of a file are an Activity Statement CSV (a cheap sniff)."""
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    return any(text.startswith(prefix) for prefix in ACTIVITY_CSV_SNIFF)


def _rows(data: bytes) -> Iterator[tuple[int, list[str]]]:
    text = io.StringIO(data.decode("utf-8-sig"), newline="")
    reader = csv.reader(text)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ValueError(f"Activity Statement CSV line {reader.line_num}: {exc}") from None
        yield reader.line_num, row


def _instruments(data: bytes) -> tuple[dict[tuple[str, str], dict[str, str]], dict[str, str]]:
    """First pass: the Financial Instrument Information rows and the Account Information fields."""
    instruments: dict[tuple[str, str], dict[str, str]] = {}
    account: dict[str, str] = {}
    header: list[str] = []
    for _, row in _rows(data):
        if len(row) < 2:
            continue
        section, kind = row[0], row[1]
        if section == "Financial Instrument Information":
            if kind == "Header":
                header = row[2:]
            elif kind == "Data" and header:
                fields = dict(zip(header, row[2:], strict=False))
                instruments[(fields.get("Asset Category", ""), fields.get("Symbol", ""))] = fields
        elif section == "Account Information" and kind == "Data" and len(row) >= 4:
            account[row[2]] = row[3]
    return instruments, account


def _decimal(value: str | None, name: str) -> Decimal | None:
    if value is None or is_missing(value):
        return None
    return parse_decimal(value, field=name)


def _read(source: bytes | IO[bytes]) -> bytes:
    data = source if isinstance(source, bytes) else source.read()
    if b"\x00" in data[:4096]:
        raise ValueError("not an Activity Statement CSV: the file is binary (or UTF-16)")
    return data


def iter_activity_csv(
    source: bytes | IO[bytes], *, tz: str = DEFAULT_TIME_ZONE, account_id: str | None = None
) -> Iterator[Account | Execution | RowError]:
    """Read an Activity Statement CSV: the account, then one execution per ``Order`` row of ``Trades``.

    Args:
        source: The file's bytes, or a binary file.
        tz: The zone of the statement's times (IB writes them in US/Eastern unless set otherwise).
        account_id: The account, when the file does not say (single-account statements do).

    Yields:
        The :class:`~brokersync.Account` (once known), executions, and a :class:`RowError` for
        each ``Order`` row that cannot be read (the rest is read).

    Raises:
        ValueError: the file is not an Activity Statement CSV, or names no account.
    """
    zone(tz)  # an unknown zone is refused before any row
    data = _read(source)
    if not looks_like_activity_csv(data[:4096]):
        raise ValueError(
            "not an Activity Statement CSV: expected a first row 'Statement,Header,Field Name,Field Value'"
        )
    instruments, info = _instruments(data)
    default_account = info.get("Account") or account_id
    announced: set[str] = set()
    seen: Counter[str] = Counter()
    header: list[str] = []
    order = 0
    for line, row in _rows(data):
        if len(row) < 2 or row[0] != "Trades":
            continue
        if row[1] == "Header":
            header = row[2:]
            continue
        if row[1] != "Data" or not header:
            continue
        fields = dict(zip(header, row[2:], strict=False))
        if fields.get("DataDiscriminator") != "Order":
            continue
        order += 1
        account = (fields.get("Account") or "").strip() or default_account
        if not account:
            raise ValueError("the Activity Statement CSV names no account; give the account id")
        if account not in announced:
            announced.add(account)
            yield Account(
                id=account,
                name=info.get("Name"),
                currency=info.get("Base Currency") if account == info.get("Account") else None,
            )
        try:
            yield _execution(fields, account, instruments, tz, seen, line)
        except (ValueError, TypeError) as exc:
            yield RowError(account_id=account, row=order, key=None, reason=f"line {line}: {exc}", line=line)
    if not announced and default_account:
        yield Account(id=default_account, name=info.get("Name"), currency=info.get("Base Currency"))


def _execution(
    fields: dict[str, str],
    account: str,
    instruments: dict[tuple[str, str], dict[str, str]],
    tz: str,
    seen: Counter[str],
    line: int,
) -> Execution:
    category = fields.get("Asset Category", "")
    symbol = (fields.get("Symbol") or "").strip()
    currency = (fields.get("Currency") or "").strip()
    if not symbol or not currency:
        raise ValueError("Symbol or Currency is empty")
    quantity = _decimal(fields.get("Quantity"), "Quantity")
    price = _decimal(fields.get("T. Price"), "T. Price")
    if quantity is None or quantity == 0 or price is None:
        raise ValueError("Quantity and T. Price are required and Quantity must not be 0")
    stamp = (fields.get("Date/Time") or "").strip()
    executed_at = parse_flex_time(stamp, tz)
    commission_name = next((n for n in fields if n.startswith("Comm")), None)
    commission = _decimal(fields.get(commission_name), commission_name) if commission_name else None
    commission_currency = currency
    if commission_name and commission_name.startswith("Comm in "):
        commission_currency = commission_name.removeprefix("Comm in ").strip()
    info = instruments.get((category, symbol), {})
    asset_class = _CATEGORIES.get(category.strip().lower(), AssetClass.OTHER)
    codes = {c.strip() for c in (fields.get("Code") or "").split(";")}
    kind = ExecutionKind.FILL
    if asset_class in (AssetClass.OPTION, AssetClass.FUTURE_OPTION):
        kind = next((k for code, k in _KINDS if code in codes), ExecutionKind.FILL)
    open_close = OpenClose.CLOSE_OPEN if {"C", "O"} <= codes else OpenClose.OPEN if "O" in codes else None
    if open_close is None and "C" in codes:
        open_close = OpenClose.CLOSE
    right = {"P": OptionRight.PUT, "PUT": OptionRight.PUT, "C": OptionRight.CALL, "CALL": OptionRight.CALL}.get(
        (info.get("Type") or "").strip().upper()
    )
    expiry = (info.get("Expiry") or "").strip()
    instrument = Instrument(
        symbol=symbol,
        asset_class=asset_class,
        currency=currency,
        multiplier=_decimal(info.get("Multiplier"), "Multiplier") or Decimal(1),
        instrument_id=(info.get("Conid") or "").strip() or None,
        underlying=(info.get("Underlying") or "").strip() or None,
        expiry=parse_flex_date(expiry) if expiry and not is_missing(expiry) else None,
        strike=_decimal(info.get("Strike"), "Strike"),
        right=right,
        exchange=(info.get("Listing Exch") or "").strip() or None,
    )
    content = "|".join((account, category, symbol, executed_at.isoformat(), str(quantity), str(price)))
    seen[content] += 1
    digest = hashlib.sha256(f"{content}|{seen[content]}".encode()).hexdigest()[:24]
    return Execution(
        broker_execution_id=f"csv:{digest}",
        account_id=account,
        instrument=instrument,
        side=Side.BUY if quantity > 0 else Side.SELL,
        quantity=abs(quantity),
        price=price,
        executed_at=executed_at,
        fees=-commission if commission else Decimal(0),
        fee_currency=commission_currency,
        open_close=open_close,
        kind=kind,
        raw={**fields, "time_zone": tz, "occurrence": seen[content], "_line": line},
    )
