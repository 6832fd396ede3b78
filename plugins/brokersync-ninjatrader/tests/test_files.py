"""NinjaTrader 8 exports, written here from the documented grid layouts, read exactly."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import brokersync
import pytest
from brokersync.files import FileFormatError, FileSource, detect_format
from brokersync_ninjatrader import EXECUTIONS_GRID, TRADE_PERFORMANCE, futures_multiplier

GRID_HEADER = "Instrument,Action,Quantity,Price,Time,ID,E/X,Position,Order ID,Name,Commission,Rate,Account,Connection"
# instrument, action, qty, price, local time (America/Chicago), id, e/x, commission, account
FILLS = [
    ("ES 12-24", "Buy", "2", "5850.25", "11/5/2024 8:30:12 AM", "e1", "Entry", "$4.08", "Sim101"),
    ("ES 12-24", "Buy", "1", "5851.5", "11/5/2024 8:31:00 AM", "e2", "Entry", "$2.04", "Sim101"),
    ("ES 12-24", "Sell", "3", "5855.75", "11/5/2024 9:02:44 AM", "e3", "Exit", "$6.12", "Sim101"),
    ("NQ 12-24", "Sell", "1", "20500", "11/5/2024 9:10:00 AM", "e4", "Entry", "$2.04", "Apex-2"),
]


def _grid(*, european: bool = False) -> bytes:
    lines = [GRID_HEADER.replace(",", ";") if european else GRID_HEADER]
    for inst, action, qty, price, time, id_, ex, commission, account in FILLS:
        cells = [inst, action, qty, price, time, id_, ex, "", f"o-{id_}", ex, commission, "1", account, "Rithmic"]
        if european:
            cells = [c.replace(".", ",") if c[:1].isdigit() and "/" not in c else c for c in cells]
            cells = [c.replace("$", "") + " $" if c.startswith("$") else c for c in cells]
            month, day, rest = time.split("/", 2)
            year, clock, half = rest.split()
            hour, minute, second = (int(x) for x in clock.split(":"))
            hour = hour % 12 + (12 if half == "PM" else 0)
            cells[4] = f"{int(day):02}.{int(month):02}.{year} {hour:02}:{minute:02}:{second:02}"
        lines.append((";" if european else ",").join(cells))
    return ("\r\n".join(lines) + "\r\n").encode("utf-8-sig")


def _read(fmt, data: bytes, **kwargs):
    source = FileSource(
        io.BytesIO(data), name="export.csv", timezone=kwargs.pop("timezone", "America/Chicago"), **kwargs
    )
    return [page for page in fmt.parse(source)], source


@pytest.mark.parametrize("european", [False, True], ids=["us", "eu-semicolon-decimal-comma"])
def test_executions_grid(european):
    data = _grid(european=european)
    source = FileSource(io.BytesIO(data), name="x.csv", timezone="America/Chicago")
    assert detect_format(source.head, [EXECUTIONS_GRID, TRADE_PERFORMANCE]) == [EXECUTIONS_GRID]
    pages, source = _read(EXECUTIONS_GRID, data)
    executions = [e for p in pages for e in p.executions]
    assert source.problems == []
    assert [(e.broker_execution_id, e.side, e.quantity, e.price, e.fees, e.account_id) for e in executions] == [
        ("e1", "buy", Decimal(2), Decimal("5850.25"), Decimal("4.08"), "Sim101"),
        ("e2", "buy", Decimal(1), Decimal("5851.5"), Decimal("2.04"), "Sim101"),
        ("e3", "sell", Decimal(3), Decimal("5855.75"), Decimal("6.12"), "Sim101"),
        ("e4", "sell", Decimal(1), Decimal(20500), Decimal("2.04"), "Apex-2"),
    ]
    assert executions[0].executed_at == dt.datetime(2024, 11, 5, 14, 30, 12, tzinfo=dt.UTC)  # CST = UTC-6
    assert executions[0].instrument.multiplier == Decimal(50) and executions[3].instrument.multiplier == Decimal(20)
    assert executions[0].instrument.asset_class is brokersync.AssetClass.FUTURE


def test_grid_bad_rows_are_reported_by_line_and_unknown_roots_named():
    data = _grid().decode("utf-8-sig").splitlines()
    data.insert(2, "ZZ 12-24,Buy,1,10,11/5/2024 8:30:30 AM,e9,Entry,,o,x,$0,1,Sim101,R")
    data.insert(3, "ES 12-24,Hold,1,10,11/5/2024 8:30:31 AM,e10,Entry,,o,x,$0,1,Sim101,R")
    pages, source = _read(EXECUTIONS_GRID, "\n".join(data).encode())
    assert len([e for p in pages for e in p.executions]) == 4
    assert [(p.line, p.reason.split(":")[0]) for p in source.problems] == [
        (3, "unknown futures root 'ZZ'"),
        (4, "'Hold' is not a side (expected buy or sell)"),
    ]


def test_the_grid_needs_a_time_zone():
    with pytest.raises(FileFormatError, match="--timezone"):
        _read(EXECUTIONS_GRID, _grid(), timezone=None)


PERFORMANCE_HEADER = (
    "Trade number,Instrument,Account,Strategy,Market pos.,Qty,Entry price,Exit price,Entry time,Exit time,"
    "Entry name,Exit name,Profit,Cum. net profit,Commission,MAE,MFE,ETD,Bars"
)


def test_trade_performance_round_trips_are_gross_with_fees_apart():
    rows = [
        "1,ES 12-24,Sim101,,Long,3,5850.666,5855.75,11/5/2024 8:30:12 AM,11/5/2024 9:02:44 AM,Entry,Exit,$750.38,$750.38,$12.24,$0,$0,$0,3",  # noqa: E501
        "2,NQ 12-24,Apex-2,,Short,1,20500,20480.25,11/5/2024 9:10:00 AM,11/5/2024 9:20:00 AM,Entry,Exit,$390.92,$1141.30,$4.08,$0,$0,$0,1",  # noqa: E501
        "3,NQ 12-24,Apex-2,,Short,1,20500,20480.25,11/5/2024 9:10:00 AM,11/5/2024 9:20:00 AM,Entry,Exit,$390.92,$1532.22,$4.08,$0,$0,$0,1",  # noqa: E501
    ]
    pages, source = _read(TRADE_PERFORMANCE, "\n".join([PERFORMANCE_HEADER, *rows]).encode())
    trades = [t for p in pages for t in p.records]
    assert source.problems == []
    assert [(t.direction, t.quantity, t.realized_pnl, t.fees) for t in trades] == [
        ("long", Decimal(3), (Decimal("5855.75") - Decimal("5850.666")) * 3 * 50, Decimal("12.24")),
        ("short", Decimal(1), (Decimal(20500) - Decimal("20480.25")) * 20, Decimal("4.08")),
        ("short", Decimal(1), (Decimal(20500) - Decimal("20480.25")) * 20, Decimal("4.08")),
    ]
    # two identical trades stay two, with ids that are the same on every import of the file
    assert len({t.broker_trade_id for t in trades}) == 3
    again, _ = _read(TRADE_PERFORMANCE, "\n".join([PERFORMANCE_HEADER, *rows]).encode())
    assert [t.broker_trade_id for p in again for t in p.records] == [t.broker_trade_id for t in trades]


def test_a_grid_file_read_as_performance_names_the_missing_columns():
    with pytest.raises(FileFormatError, match="expected the column\\(s\\) Market pos., Qty"):
        _read(TRADE_PERFORMANCE, _grid())


def test_futures_roots():
    assert futures_multiplier("MES 03-25") == ("MES", brokersync.AssetClass.FUTURE, Decimal(5))
    assert futures_multiplier("AAPL") == ("AAPL", brokersync.AssetClass.STOCK, Decimal(1))
    assert futures_multiplier("ZZ 12-24", {"ZZ": "7"})[2] == Decimal(7)


def test_the_plugin_is_discovered_as_file_only():
    meta = brokersync.get_broker_metadata("ninjatrader")
    assert meta.auth_type is brokersync.AuthType.FILE
    broker = brokersync.get_broker("ninjatrader")
    assert [f.name for f in broker.file_formats()] == ["ninjatrader-executions", "ninjatrader-trades"]
