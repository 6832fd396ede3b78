"""Charles Schwab's transactions CSV and the thinkorswim account statement's filled orders.

**Transactions CSV** (Accounts → History → Export): ``Date, Action, Symbol, Description,
Quantity, Price, Fees & Comm, Amount``, newest first, dates only (``11/05/2024``, or ``11/05/2024
as of 11/04/2024``), money with ``$``. Trade actions: ``Buy``, ``Sell``, ``Sell Short``, ``Buy to
Cover``, ``Buy to Open``, ``Sell to Open``, ``Buy to Close``, ``Sell to Close``, ``Reinvest
Shares``, and the option events ``Assigned``, ``Expired`` and ``Exchange or Exercise``; every other
action (dividends, transfers, interest) is not a trade and is skipped. Options are written
``AAPL 11/15/2024 225.00 C``.

**thinkorswim account statement** (Monitor → Account Statement → export): a multi-section CSV whose
``Account Trade History`` (or ``Filled Orders``) section has ``Exec Time, Spread, Side, Qty, Pos
Effect, Symbol, Exp, Strike, Type, Price, Net Price, Order Type``; times in the platform's zone
(``--timezone``), signed quantities, option expiries like ``15 NOV 24``.

Schwab gives no time of day: an execution's time is the trade date at 09:30 New York, plus one
microsecond per earlier row of that date, so the file's own order decides pairing within a day.
An expiry or assignment closes whatever the file shows open: its side is the opposite of the
position the file has built up for that option (a file that starts after the option was opened
reports the row as a problem instead of guessing).
"""

from __future__ import annotations

import csv
import datetime as dt
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal

from brokersync import AssetClass, Execution, ExecutionKind, Instrument, Side, TradePage
from brokersync.files import FileFormat, FileFormatError, FileSource
from brokersync.parsing import is_missing, parse_decimal, parse_side, parse_time

__all__ = ["THINKORSWIM_STATEMENT", "TRANSACTIONS_CSV", "option_instrument"]

_PAGE = 1000
_NEW_YORK = "America/New_York"
_TRADE_ACTIONS = {
    "buy": (Side.BUY, ExecutionKind.FILL),
    "sell": (Side.SELL, ExecutionKind.FILL),
    "sell short": (Side.SELL, ExecutionKind.FILL),
    "buy to cover": (Side.BUY, ExecutionKind.FILL),
    "buy to open": (Side.BUY, ExecutionKind.FILL),
    "sell to open": (Side.SELL, ExecutionKind.FILL),
    "buy to close": (Side.BUY, ExecutionKind.FILL),
    "sell to close": (Side.SELL, ExecutionKind.FILL),
    "reinvest shares": (Side.BUY, ExecutionKind.FILL),
    "assigned": (None, ExecutionKind.ASSIGNMENT),
    "expired": (None, ExecutionKind.EXPIRY),
    "exchange or exercise": (None, ExecutionKind.EXERCISE),
}


def option_instrument(symbol: str) -> Instrument:
    """Read a Schwab symbol: ``AAPL 11/15/2024 225.00 C`` is an option (multiplier 100), ``AAPL`` a stock."""
    parts = symbol.split()
    if len(parts) == 4 and parts[3].upper() in ("C", "P"):
        expiry = dt.datetime.strptime(parts[1], "%m/%d/%Y").date()
        return Instrument(
            symbol=" ".join(parts).upper(),
            asset_class=AssetClass.OPTION,
            currency="USD",
            multiplier=Decimal(100),
            underlying=parts[0].upper(),
            expiry=expiry,
            strike=parse_decimal(parts[2], field="strike"),
            right="call" if parts[3].upper() == "C" else "put",
        )
    if len(parts) != 1:
        raise ValueError(f"symbol {symbol!r} is neither a stock nor an option in Schwab's layout")
    return Instrument(symbol=symbol.upper(), asset_class=AssetClass.STOCK, currency="USD")


def _sniff_transactions(head: str) -> bool:
    first = next((line for line in head.splitlines() if line.strip()), "").lower().replace('"', "")
    return all(col in first for col in ("date", "action", "symbol", "quantity", "price", "fees & comm"))


def _account(source: FileSource) -> str:
    if not source.account_id:
        raise FileFormatError(f"{source.name}: Schwab exports do not name the account: give it with --account")
    return source.account_id


def _parse_transactions(source: FileSource) -> Iterator[TradePage]:
    account = _account(source)
    rows = []
    required = ("Date", "Action", "Symbol", "Quantity", "Price", "Fees & Comm")
    for line, row in source.csv_rows(required=required):
        action = row["Action"].strip().lower()
        if action not in _TRADE_ACTIONS:
            continue  # dividends, transfers, interest, totals: not trades
        rows.append((line, row, action))
    rows.reverse()  # Schwab lists newest first; pair in the order things happened
    yield from _executions(source, account, rows)


def _executions(source: FileSource, account: str, rows: list[tuple[int, dict[str, str], str]]) -> Iterator[TradePage]:
    open_position: dict[str, Decimal] = defaultdict(Decimal)
    per_day: dict[dt.date, int] = defaultdict(int)
    batch: list[Execution] = []
    for line, row, action in rows:
        try:
            side, kind = _TRADE_ACTIONS[action]
            instrument = option_instrument(row["Symbol"].strip())
            quantity = abs(parse_decimal(row["Quantity"], field="Quantity"))
            date = dt.datetime.strptime(row["Date"].split(" as of ")[0].strip(), "%m/%d/%Y").date()
            if side is None:  # an option event closes what is open
                held = open_position[instrument.pairing_key]
                if held == 0:
                    raise ValueError(f"{action} of {instrument.symbol}: the file shows no open position to close")  # noqa: TRY301
                side = Side.SELL if held > 0 else Side.BUY
            price = (
                Decimal(0)
                if kind is ExecutionKind.EXPIRY or is_missing(row["Price"])
                else parse_decimal(row["Price"], field="Price")
            )
            fees = (
                abs(parse_decimal(row["Fees & Comm"] or "0", field="Fees & Comm"))
                if not is_missing(row["Fees & Comm"])
                else Decimal(0)
            )
            executed_at = parse_time(f"{date.isoformat()} 09:30:00", tz=_NEW_YORK) + dt.timedelta(
                microseconds=per_day[date]
            )
            per_day[date] += 1
            execution = Execution(
                broker_execution_id=source.content_id("schwab", account, date, action, row["Symbol"], quantity, price),
                account_id=account,
                instrument=instrument,
                side=side,
                quantity=quantity,
                price=price,
                executed_at=executed_at,
                fees=fees,
                kind=kind,
                raw={**row, "_line": line},
            )
        except (ValueError, TypeError) as exc:
            source.problem(line, str(exc))
            continue
        open_position[instrument.pairing_key] += execution.signed_quantity
        batch.append(execution)
        if len(batch) >= _PAGE:
            yield TradePage(executions=batch)
            batch = []
    if batch:
        yield TradePage(executions=batch)


_TOS_SECTIONS = ("account trade history", "filled orders")


def _sniff_statement(head: str) -> bool:
    lower = head.lower()
    return "account statement" in lower[:2000] and any(s in lower for s in _TOS_SECTIONS)


def _parse_statement(source: FileSource) -> Iterator[TradePage]:
    account = _account(source)
    tz = source.require_timezone("thinkorswim statement")
    lines = source.lines()
    header: list[str] | None = None
    in_section = False
    batch: list[Execution] = []
    found = False
    last_time = ""
    for text in lines:
        cells = [c.strip() for c in next(csv.reader([text]), [])]
        line = source.line
        title = " ".join(cells).strip().lower()
        if title in _TOS_SECTIONS:
            in_section, header, found = True, None, True
            continue
        if not in_section:
            continue
        if not any(cells):
            in_section = False
            continue
        if header is None:
            header = cells
            missing = [c for c in ("Exec Time", "Side", "Qty", "Symbol", "Type", "Price") if c not in header]
            if missing:
                raise FileFormatError(f"{source.name}: line {line}: the trade history lacks {', '.join(missing)}")
            continue
        row = dict(zip(header, cells, strict=False))
        if not row.get("Exec Time"):
            row["Exec Time"] = last_time  # a spread's later legs leave the time blank
        try:
            batch.append(_tos_execution(source, account, tz, row, line))
        except (ValueError, TypeError) as exc:
            source.problem(line, str(exc))
            continue
        last_time = row["Exec Time"]
        if len(batch) >= _PAGE:
            yield TradePage(executions=batch)
            batch = []
    if not found:
        raise FileFormatError(f"{source.name}: no 'Account Trade History' section: is this a thinkorswim statement?")
    if batch:
        yield TradePage(executions=batch)


def _tos_execution(source: FileSource, account: str, tz: str, row: dict[str, str], line: int) -> Execution:
    executed_at = parse_time(row["Exec Time"], tz=tz)
    side = parse_side(row["Side"])
    quantity = abs(parse_decimal(row["Qty"], field="Qty"))
    kind = row["Type"].strip().upper()
    if kind in ("CALL", "PUT"):
        expiry = dt.datetime.strptime(row["Exp"].strip().title(), "%d %b %y").date()
        strike = parse_decimal(row["Strike"], field="Strike")
        instrument = Instrument(
            symbol=f"{row['Symbol'].upper()} {expiry:%m/%d/%Y} {strike} {kind[0]}",
            asset_class=AssetClass.OPTION,
            currency="USD",
            multiplier=Decimal(100),
            underlying=row["Symbol"].upper(),
            expiry=expiry,
            strike=strike,
            right=kind.lower(),
        )
    else:
        instrument = Instrument(symbol=row["Symbol"].upper(), currency="USD")
    price = parse_decimal(row["Price"], field="Price")
    return Execution(
        broker_execution_id=source.content_id("tos", account, executed_at, side, instrument.symbol, quantity, price),
        account_id=account,
        instrument=instrument,
        side=side,
        quantity=quantity,
        price=price,
        executed_at=executed_at,
        raw={**row, "_line": line},
    )


TRANSACTIONS_CSV = FileFormat(
    name="schwab-transactions",
    description="Charles Schwab transactions CSV (History export): stock and option trades, assignments, expiries",
    extensions=(".csv",),
    sniff=_sniff_transactions,
    parse=_parse_transactions,
)

THINKORSWIM_STATEMENT = FileFormat(
    name="thinkorswim-statement",
    description="thinkorswim Account Statement (CSV): the filled orders of its trade history",
    extensions=(".csv",),
    sniff=_sniff_statement,
    parse=_parse_statement,
    needs_timezone=True,
)
