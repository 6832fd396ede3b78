"""MetaTrader statements, written here from the documented report layouts, read into round trips."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import brokersync
import pytest
from brokersync.files import FileFormatError, FileSource, detect_format
from brokersync_metatrader import STATEMENT_HTML

# ticket, symbol, type, volume, open time, open price, close time, close price, commission, swap, profit
POSITIONS = [
    (
        "50012",
        "EURUSD",
        "buy",
        "1.00",
        "2024.11.05 10:30:12",
        "1.08512",
        "2024.11.05 12:00:00",
        "1.08712",
        "-7.00",
        "0.00",
        "200.00",
    ),
    (
        "50013",
        "XAUUSD",
        "sell",
        "0.10",
        "2024.11.05 11:00:00",
        "2740.55",
        "2024.11.06 09:15:30",
        "2731.05",
        "-0.70",
        "-1.25",
        "95.00",
    ),
    (
        "50014",
        "USDJPY",
        "buy",
        "0.50",
        "2024.11.06 03:00:00",
        "152.310",
        "2024.11.06 04:00:00",
        "152.110",
        "-3.50",
        "0.00",
        "-65.71",
    ),
]


def _cell(text, **attrs):
    extra = "".join(f' {k}="{v}"' for k, v in attrs.items())
    return f"<td{extra}>{text}</td>"


def _mt5(labels=None, positions=POSITIONS) -> str:
    labels = labels or [
        "Time",
        "Position",
        "Symbol",
        "Type",
        "Volume",
        "Price",
        "S / L",
        "T / P",
        "Time",
        "Price",
        "Commission",
        "Swap",
        "Profit",
    ]
    rows = [
        "<html><head><title>12345678: Trade History Report</title></head><body>",
        '<table cellspacing="1" cellpadding="3" border="0">',
        '<tr><th colspan="13"><div><b>Trade History Report</b></div></th></tr>',
        f"<tr>{_cell('Name:', colspan=3)}{_cell('<b>Ann Example</b>', colspan=10)}</tr>",
        f"<tr>{_cell('Account:', colspan=3)}{_cell('<b>12345678&nbsp;(USD, Example-Server, real, Hedge)</b>', colspan=10)}</tr>",  # noqa: E501
        f'<tr><th colspan="13"><div><b>{"Positions" if labels[2] == "Symbol" else "Posizioni"}</b></div></th></tr>',
        "<tr>" + "".join(_cell(f"<b>{label}</b>") for label in labels) + "</tr>",
    ]
    for ticket, symbol, kind, volume, t0, p0, t1, p1, commission, swap, profit in positions:
        cells = [t0, ticket, symbol, kind, volume, p0, "", "", t1, p1, commission, swap, profit]
        rows.append("<tr>\n" + "\n".join(_cell(c) for c in cells) + "\n</tr>")
    rows += [
        '<tr><th colspan="13"><div><b>Orders</b></div></th></tr>',
        "<tr>" + "".join(_cell(x) for x in ["Open Time", "Order", "Symbol", "Type", "Volume"]) + "</tr>",
        "<tr>" + "".join(_cell(x) for x in ["2024.11.05 10:30:12", "7001", "EURUSD", "buy", "1.00"]) + "</tr>",
        "</table></body></html>",
    ]
    return "\n".join(rows)


def _read(text: str, *, encoding="utf-16", **kwargs):
    source = FileSource(
        io.BytesIO(text.encode(encoding)),
        name="ReportHistory.html",
        timezone=kwargs.pop("timezone", "Europe/Athens"),
        **kwargs,
    )
    pages = list(STATEMENT_HTML.parse(source))
    return [t for p in pages for t in p.records], source


def _expected():
    athens = dt.timedelta(hours=2)  # EET in November (the usual MetaTrader server zone)
    out = []
    for ticket, symbol, kind, volume, t0, p0, t1, p1, commission, _swap, profit in POSITIONS:
        opened = dt.datetime.strptime(t0, "%Y.%m.%d %H:%M:%S").replace(tzinfo=dt.UTC) - athens
        closed = dt.datetime.strptime(t1, "%Y.%m.%d %H:%M:%S").replace(tzinfo=dt.UTC) - athens
        out.append(
            (
                ticket,
                symbol,
                "long" if kind == "buy" else "short",
                Decimal(volume),
                opened,
                closed,
                Decimal(p0),
                Decimal(p1),
                Decimal(profit),
                -Decimal(commission),
                "USD",
                "12345678",
            )
        )
    return out


def _tuples(trades):
    return [
        (
            t.broker_trade_id,
            t.symbol,
            t.direction,
            t.quantity,
            t.opened_at,
            t.closed_at,
            t.entry_price,
            t.exit_price,
            t.realized_pnl,
            t.fees,
            t.currency,
            t.account_id,
        )
        for t in trades
    ]


def test_mt5_report_history_utf16():
    trades, source = _read(_mt5())
    assert detect_format(source.head, [STATEMENT_HTML]) == [STATEMENT_HTML]
    assert source.problems == []
    assert _tuples(trades) == _expected()
    assert trades[1].raw["swap"] == "-1.25"


def test_localized_italian_headers():
    labels = [
        "Ora",
        "Posizione",
        "Simbolo",
        "Tipo",
        "Volume",
        "Prezzo",
        "S / L",
        "T / P",
        "Ora",
        "Prezzo",
        "Commissione",
        "Swap",
        "Profitto",
    ]
    trades, _ = _read(_mt5(labels), encoding="utf-8")
    assert _tuples(trades) == _expected()


MT4 = """<html><head><title>Statement: 7654321 - Ann Example</title></head><body>
<table><tr align=left><td colspan=2><b>Account: 7654321</b></td><td colspan=5><b>Name: Ann Example</b></td>
<td colspan=2><b>Currency: EUR</b></td></tr>
<tr><td colspan=13><b>Closed Transactions:</b></td></tr>
<tr><td>Ticket</td><td nowrap>Open Time</td><td>Type</td><td>Size</td><td>Item</td><td>Price</td><td>S / L</td>
<td>T / P</td><td nowrap>Close Time</td><td>Price</td><td>Commission</td><td>Taxes</td><td>Swap</td><td>Profit</td></tr>
<tr><td>9001</td><td>2024.11.05 10:30</td><td>sell</td><td>2.00</td><td>gbpusd</td><td>1.29500</td><td>0.00000</td>
<td>0.00000</td><td>2024.11.05 11:45</td><td>1.29300</td><td>-10.00</td><td>0.00</td><td>0.00</td><td>370.37</td></tr>
<tr><td>9002</td><td>2024.11.05 11:50</td><td>balance</td><td colspan=10>Deposit</td><td>1 000.00</td></tr>
<tr><td colspan=10>&nbsp;</td><td>-10.00</td><td>0.00</td><td>0.00</td><td>370.37</td></tr>
</table></body></html>"""


def test_mt4_statement_closed_transactions():
    trades, source = _read(MT4, encoding="utf-8", timezone="Europe/London")
    assert source.problems == []
    assert _tuples(trades) == [
        (
            "9001",
            "GBPUSD",
            "short",
            Decimal(2),
            dt.datetime(2024, 11, 5, 10, 30, tzinfo=dt.UTC),
            dt.datetime(2024, 11, 5, 11, 45, tzinfo=dt.UTC),
            Decimal("1.29500"),
            Decimal("1.29300"),
            Decimal("370.37"),
            Decimal("10.00"),
            "EUR",
            "7654321",
        )
    ]


def test_the_server_time_zone_is_required_and_can_come_from_the_connection():
    with pytest.raises(FileFormatError, match="--timezone"):
        _read(_mt5(), timezone=None)
    trades, _ = _read(_mt5(), timezone=None, options={"server_timezone": "Europe/Athens"})
    assert _tuples(trades) == _expected()


def test_a_bad_row_is_reported_and_a_foreign_html_refused():
    bad = list(POSITIONS)
    bad[1] = (*bad[1][:4], "2024.13.45 99:00:00", *bad[1][5:])
    trades, source = _read(_mt5(positions=bad))
    assert len(trades) == 2 and len(source.problems) == 1 and "not a time" in source.problems[0].reason
    with pytest.raises(FileFormatError, match="no Positions \\(MT5\\) or Closed Transactions \\(MT4\\) section"):
        _read("<html><body><table><tr><td>hello</td></tr></table></body></html>")


def test_discovered_as_file_only():
    assert brokersync.get_broker_metadata("metatrader").auth_type is brokersync.AuthType.FILE
