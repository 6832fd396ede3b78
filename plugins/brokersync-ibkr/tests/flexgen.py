"""Flex statements written for the tests from data tables, with their ground truth computed here.

Each :class:`Fill` is one execution as the test means it (UTC time, signed quantity, commission);
:func:`statement_xml` renders fills the way IB lays out an Activity statement (rows grouped by asset
class and symbol, not by time; each row's time in a chosen layout; ``--`` for what does not apply)
and :func:`ib_fifo_pnl` computes the ``fifoPnlRealized`` IB would print (net of commissions), from
the table alone.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from decimal import Decimal
from xml.sax.saxutils import quoteattr
from zoneinfo import ZoneInfo

import attrs

NEW_YORK = ZoneInfo("America/New_York")
CHICAGO = ZoneInfo("America/Chicago")
ORDER = {"STK": 0, "OPT": 1, "FUT": 2, "FOP": 3, "CASH": 4}
LAYOUTS = ("semicolon", "comma", "split", "abbr_ny", "abbr_chicago", "iso_space")


@attrs.frozen(kw_only=True)
class Fill:
    account: str
    txid: str
    conid: str
    symbol: str
    asset: str
    currency: str
    quantity: Decimal  # signed
    price: Decimal
    commission: Decimal  # negative = cost, as IB prints it
    when: dt.datetime  # aware UTC
    multiplier: Decimal = Decimal(1)
    commission_currency: str | None = None
    open_close: str = "O"
    notes: str = ""
    expiry: str | None = None
    strike: Decimal | None = None
    put_call: str | None = None
    underlying: str | None = None
    transaction_type: str = "ExchTrade"
    orig_txid: str | None = None
    layout: str = "semicolon"
    fifo_pnl: Decimal | None = None  # set by with_ib_pnl


def d(text: str) -> Decimal:
    return Decimal(text)


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def _abbr(local: dt.datetime) -> str:
    return local.tzname() or ""


def render_time(when: dt.datetime, layout: str) -> dict[str, str]:
    local = when.astimezone(NEW_YORK)
    if layout == "semicolon":
        return {"dateTime": local.strftime("%Y%m%d;%H%M%S"), "tradeDate": local.strftime("%Y%m%d")}
    if layout == "comma":
        return {"dateTime": local.strftime("%Y-%m-%d, %H:%M:%S"), "tradeDate": local.strftime("%Y-%m-%d")}
    if layout == "split":
        return {"tradeDate": local.strftime("%Y%m%d"), "tradeTime": local.strftime("%H%M%S")}
    if layout == "abbr_ny":
        return {"dateTime": f"{local:%Y%m%d;%H%M%S} {_abbr(local)}", "tradeDate": local.strftime("%Y%m%d")}
    if layout == "abbr_chicago":
        there = when.astimezone(CHICAGO)
        return {"dateTime": f"{there:%Y-%m-%d %H:%M:%S} {_abbr(there)}", "tradeDate": there.strftime("%Y-%m-%d")}
    if layout == "iso_space":
        return {"dateTime": local.strftime("%Y-%m-%d %H:%M:%S"), "tradeDate": local.strftime("%Y-%m-%d")}
    raise ValueError(layout)


def _value(value: object) -> str:
    return "--" if value is None or value == "" else str(value)


def trade_row(fill: Fill) -> str:
    cancel = fill.transaction_type == "TradeCancel"
    side = "BUY" if fill.quantity > 0 else "SELL"
    attributes: dict[str, str] = {
        "accountId": fill.account,
        "acctAlias": "",
        "currency": fill.currency,
        "fxRateToBase": "1",
        "assetCategory": fill.asset,
        "symbol": fill.symbol,
        "description": f"{fill.symbol} test instrument",
        "conid": fill.conid,
        "securityID": "",
        "listingExchange": "SMART" if fill.asset == "STK" else "CME" if fill.asset == "FUT" else "--",
        "underlyingSymbol": _value(fill.underlying),
        "multiplier": str(fill.multiplier),
        "strike": _value(fill.strike),
        "expiry": _value(fill.expiry),
        "putCall": _value(fill.put_call),
        "transactionType": fill.transaction_type,
        "tradeID": f"9{fill.txid}",
        "transactionID": fill.txid,
        "ibExecID": f"0000e0d5.{fill.txid}.01.01" if not cancel else "--",
        "ibOrderID": f"7{fill.txid}",
        "buySell": f"{side} (Ca.)" if cancel else side,
        "quantity": str(fill.quantity),
        "tradePrice": str(fill.price),
        "tradeMoney": str(fill.quantity * fill.price * fill.multiplier),
        "proceeds": str(-fill.quantity * fill.price * fill.multiplier),
        "ibCommission": str(fill.commission),
        "ibCommissionCurrency": fill.commission_currency or fill.currency,
        "netCash": "0",
        "closePrice": str(fill.price),
        "openCloseIndicator": fill.open_close,
        "notes": fill.notes,
        "cost": "0",
        "fifoPnlRealized": _value(fill.fifo_pnl if fill.fifo_pnl is not None else Decimal(0)),
        "mtmPnl": "0",
        "origTradeID": "--",
        "origTransactionID": fill.orig_txid or "--",
        "levelOfDetail": "EXECUTION",
        "exchange": "IEX" if fill.asset == "STK" else "--",
    }
    attributes.update(render_time(fill.when, fill.layout))
    return "<Trade " + " ".join(f"{k}={quoteattr(v)}" for k, v in attributes.items()) + " />"


def file_order(fills: Iterable[Fill]) -> list[Fill]:
    """IB's order: by account, asset class, symbol, then time (so not time order overall)."""
    return sorted(fills, key=lambda f: (f.account, ORDER.get(f.asset, 9), f.symbol, f.when))


def statement_xml(
    fills: Sequence[Fill],
    accounts: dict[str, str],
    *,
    from_date: str = "20240102",
    to_date: str = "20240329",
    extra_rows: dict[str, list[str]] | None = None,
) -> bytes:
    """A FlexQueryResponse with one FlexStatement per account (``accounts``: id -> base currency)."""
    parts = ['<?xml version="1.0" encoding="UTF-8"?>', '<FlexQueryResponse queryName="brokersync test" type="AF">']
    parts.append(f'<FlexStatements count="{len(accounts)}">')
    for account, currency in accounts.items():
        parts.append(
            f'<FlexStatement accountId="{account}" fromDate="{from_date}" toDate="{to_date}" period="Custom" '
            f'whenGenerated="20240330;101500">'
        )
        parts.append(
            f'<AccountInformation accountId="{account}" acctAlias="alias {account}" currency="{currency}" '
            f'name="Test Holder" accountType="Individual" />'
        )
        parts.append("<Trades>")
        for fill in file_order(f for f in fills if f.account == account):
            parts.append(trade_row(fill))
            if fill.notes.startswith("P"):
                parts.append(f'<Lot accountId="{account}" levelOfDetail="CLOSED_LOT" symbol="{fill.symbol}" />')
        parts.extend((extra_rows or {}).get(account, []))
        parts.append("</Trades>")
        parts.append('<OpenPositions /><CashReport><CashReportCurrency currency="USD" /></CashReport>')
        parts.append("</FlexStatement>")
    parts.append("</FlexStatements></FlexQueryResponse>")
    return "\n".join(parts).encode()


def live_fills(fills: Iterable[Fill]) -> list[Fill]:
    """The fills that count: cancelled ones and their cancel rows out, corrections replacing originals."""
    fills = list(fills)
    cancelled = {(f.account, f.orig_txid) for f in fills if f.transaction_type == "TradeCancel"}
    corrected = {(f.account, f.orig_txid): f for f in fills if f.transaction_type == "TradeCorrect"}
    result = []
    for f in fills:
        if f.transaction_type == "TradeCancel":
            continue
        if f.transaction_type == "TradeCorrect":
            result.append(attrs.evolve(f, txid=f.orig_txid or f.txid))
            continue
        if (f.account, f.txid) in corrected:
            continue
        if (f.account, f.txid) in cancelled:
            continue
        result.append(f)
    return result


@attrs.frozen
class RoundTrip:
    account: str
    conid: str
    quantity: Decimal
    entry: Decimal
    exit: Decimal
    direction: int
    gross: Decimal


def fifo(fills: Iterable[Fill]) -> tuple[list[RoundTrip], dict[str, tuple[Decimal, Decimal]]]:
    """Round trips FIFO per (account, conid) in time order, and per closing txid (gross, net of commissions)."""
    books: dict[tuple[str, str], deque[list[Decimal]]] = defaultdict(deque)
    trips: list[RoundTrip] = []
    per_close: dict[str, tuple[Decimal, Decimal]] = {}
    for f in sorted(fills, key=lambda f: f.when):
        book = books[(f.account, f.conid)]
        remaining = abs(f.quantity)
        unit_fee = -f.commission / abs(f.quantity)
        gross_total = Decimal(0)
        fees = Decimal(0)
        closed = Decimal(0)
        while remaining and book and (book[0][0] > 0) != (f.quantity > 0):
            lot = book[0]
            take = min(remaining, abs(lot[0]))
            sign = 1 if lot[0] > 0 else -1
            gross = (f.price - lot[1]) * take * sign * f.multiplier
            trips.append(RoundTrip(f.account, f.conid, take, lot[1], f.price, sign, gross))
            gross_total += gross
            fees += lot[2] * take
            closed += take
            remaining -= take
            lot[0] -= take * sign
            if lot[0] == 0:
                book.popleft()
        if remaining:
            book.append([remaining if f.quantity > 0 else -remaining, f.price, unit_fee])
        if closed:
            per_close[f.txid] = (gross_total, gross_total - fees - unit_fee * closed)
    return trips, per_close


def with_ib_pnl(fills: Sequence[Fill]) -> list[Fill]:
    """The fills with IB's fifoPnlRealized (net of commissions, cents) on their closing rows."""
    _, per_close = fifo(live_fills(fills))
    out = []
    for f in fills:
        key = f.orig_txid if f.transaction_type == "TradeCorrect" and f.orig_txid else f.txid
        net = per_close.get(key)
        if net is not None and f.transaction_type != "TradeCancel" and f.asset != "CASH":
            f = attrs.evolve(f, fifo_pnl=net[1].quantize(Decimal("0.01")))
        out.append(f)
    return out


INSTRUMENTS: dict[str, dict[str, object]] = {
    "AAPL": {"conid": "265598", "symbol": "AAPL", "asset": "STK", "currency": "USD"},
    "MSFT": {"conid": "272093", "symbol": "MSFT", "asset": "STK", "currency": "USD"},
    "SAP": {"conid": "14204", "symbol": "SAP", "asset": "STK", "currency": "EUR"},
    "EURUSD": {"conid": "12087792", "symbol": "EUR.USD", "asset": "CASH", "currency": "USD"},
    "ES": {
        "conid": "495512563", "symbol": "ESH4", "asset": "FUT", "currency": "USD",
        "multiplier": Decimal(50), "underlying": "ES", "expiry": "20240315",
    },
    "FDAX": {
        "conid": "553444806", "symbol": "FDAX MAR 24", "asset": "FUT", "currency": "EUR",
        "multiplier": Decimal(25), "underlying": "DAX", "expiry": "20240315",
    },
    "CALL": {
        "conid": "600000001", "symbol": "AAPL  240119C00190000", "asset": "OPT", "currency": "USD",
        "multiplier": Decimal(100), "underlying": "AAPL", "expiry": "20240119", "strike": Decimal(190), "put_call": "C",
    },
    "PUT": {
        "conid": "600000002", "symbol": "AAPL  240216P00140000", "asset": "OPT", "currency": "USD",
        "multiplier": Decimal(100), "underlying": "AAPL", "expiry": "2024-02-16", "strike": Decimal(140),
        "put_call": "P",
    },
}  # fmt: skip

U1, U2 = "U1111111", "U2222222"
CANCEL_5001 = {"transaction_type": "TradeCancel", "orig_txid": "5001"}
CANCEL_5003 = {"transaction_type": "TradeCancel", "orig_txid": "5003"}
CORRECT_5003 = {"transaction_type": "TradeCorrect", "orig_txid": "5003"}
# account, txid, instrument, signed quantity, price, commission, UTC time, extra fields
TABLE: list[tuple[str, str, str, str, str, str, str, dict[str, str]]] = [
    # stocks: two buys, a partial close, the rest closed
    (U1, "1001", "AAPL", "100", "150.00", "-1.00", "2024-01-03T15:00:00", {}),
    (U1, "1002", "AAPL", "50", "152.50", "-0.50", "2024-01-04T16:30:05", {}),
    (U1, "1003", "AAPL", "-120", "155.25", "-1.20", "2024-01-10T14:45:00", {"open_close": "C", "notes": "P"}),
    (U1, "1004", "AAPL", "-30", "149.10", "-0.30", "2024-03-12T13:31:00", {"open_close": "C"}),
    # futures with a multiplier and a C;O reversal: long 2, sell 3 (closes 2, opens 1 short), buy 1
    (U1, "2001", "ES", "2", "4800.25", "-4.24", "2024-01-05T15:10:00", {}),
    (U1, "2002", "ES", "-3", "4812.50", "-6.36", "2024-01-05T18:20:00", {"open_close": "C;O"}),
    (U1, "2003", "ES", "1", "4790.00", "-2.12", "2024-01-08T20:59:59", {"open_close": "C"}),
    # options: a long call that expires worthless, a short put assigned
    (U1, "3001", "CALL", "2", "1.25", "-1.30", "2024-01-03T15:30:00", {}),
    (U1, "3002", "CALL", "-2", "0", "0", "2024-01-19T21:15:00", {"open_close": "C", "notes": "Ep;C"}),
    (U1, "3003", "PUT", "-1", "2.10", "-0.65", "2024-01-22T15:00:00", {}),
    (U1, "3004", "PUT", "1", "0", "0", "2024-02-16T21:20:00", {"open_close": "C", "notes": "A;C"}),
    # forex, commission in USD
    (U1, "4001", "EURUSD", "10000", "1.0850", "-2.00", "2024-02-01T10:00:00", {}),
    (U1, "4002", "EURUSD", "-10000", "1.0905", "-2.00", "2024-02-02T10:00:00", {"open_close": "C"}),
    # a cancelled execution (a TradeCancel pair), and a corrected one (cancel + correct)
    (U1, "5001", "MSFT", "10", "400.00", "-1.00", "2024-02-05T15:00:00", {"notes": "Ca"}),
    (U1, "5002", "MSFT", "-10", "400.00", "1.00", "2024-02-05T15:00:00", CANCEL_5001),
    (U1, "5003", "MSFT", "5", "401.00", "-1.00", "2024-02-06T15:00:00", {"notes": "Co"}),
    (U1, "5004", "MSFT", "-5", "401.00", "1.00", "2024-02-06T15:00:00", CANCEL_5003),
    (U1, "5005", "MSFT", "5", "401.50", "-1.00", "2024-02-06T15:00:00", CORRECT_5003),
    # account 2, EUR: FDAX short then covered, SAP bought and sold
    (U2, "6001", "FDAX", "-1", "16800.0", "-1.70", "2024-01-15T08:05:00", {}),
    (U2, "6002", "FDAX", "1", "16750.5", "-1.70", "2024-01-15T14:40:00", {"open_close": "C"}),
    (U2, "6003", "SAP", "20", "150.12", "-3.00", "2024-03-01T09:00:00", {}),
    (U2, "6004", "SAP", "-20", "171.02", "-3.00", "2024-03-28T15:59:00", {"open_close": "C"}),
]  # fmt: skip


def scenario() -> tuple[list[Fill], dict[str, str]]:
    """The statement the tests read: every case of the issue, two accounts, three currencies, mixed layouts."""
    rows = [
        Fill(
            account=account,
            txid=txid,
            quantity=Decimal(quantity),
            price=Decimal(price),
            commission=Decimal(commission),
            when=utc(when),
            layout=LAYOUTS[index % len(LAYOUTS)],
            **INSTRUMENTS[instrument],  # type: ignore[arg-type]
            **extra,  # type: ignore[arg-type]
        )
        for index, (account, txid, instrument, quantity, price, commission, when, extra) in enumerate(TABLE)
    ]
    return with_ib_pnl(rows), {U1: "USD", U2: "EUR"}
