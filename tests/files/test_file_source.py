"""brokersync.files: real-world export files read exactly, hostile ones refused quickly with bounded memory."""

from __future__ import annotations

import codecs
import datetime as dt
import io
import tracemalloc
from decimal import Decimal

import pytest
from brokersync._generic_csv import GENERIC_CSV, parse_mapping
from brokersync.files import FileFormat, FileFormatError, FileSource, detect_format

ROWS = [
    # date, time, symbol, qty, price, side, commission
    ("2024-11-05", "09:30:12", "AAPL", "100", "225.50", "Buy", "1.00"),
    ("2024-11-05", "09:30:12", "AAPL", "100", "225.50", "Buy", "1.00"),  # an identical second fill
    ("2024-11-05", "10:00:00", "AAPL", "200", "226.25", "Sell", "2.00"),
]


def _csv(rows=ROWS, *, delimiter=",", decimal_comma=False, header=None) -> str:
    header = header or ["Date", "Time", "Symbol", "Quantity", "Price", "Side", "Commission"]
    lines = [delimiter.join(header)]
    for row in rows:
        cells = [c.replace(".", ",") if decimal_comma and c[:1].isdigit() and "-" not in c else c for c in row]
        lines.append(delimiter.join(cells))
    return "\r\n".join(lines) + "\r\n"


def _executions(data: bytes, **kwargs):
    source = FileSource(
        io.BytesIO(data),
        name="fills.csv",
        timezone=kwargs.pop("timezone", "America/New_York"),
        account_id="U1",
        **kwargs,
    )
    return [e for page in GENERIC_CSV.parse(source) for e in page.executions], source


def _expected():
    return [
        ("buy", Decimal(100), Decimal("225.50"), dt.datetime(2024, 11, 5, 14, 30, 12, tzinfo=dt.UTC), Decimal("1.00")),
        ("buy", Decimal(100), Decimal("225.50"), dt.datetime(2024, 11, 5, 14, 30, 12, tzinfo=dt.UTC), Decimal("1.00")),
        ("sell", Decimal(200), Decimal("226.25"), dt.datetime(2024, 11, 5, 15, 0, tzinfo=dt.UTC), Decimal("2.00")),
    ]


@pytest.mark.parametrize(
    "encode",
    [
        lambda text: text.encode("utf-8"),
        lambda text: codecs.BOM_UTF8 + text.encode("utf-8"),
        lambda text: text.encode("utf-16"),  # with a BOM, as MetaTrader saves
        lambda text: text.encode("utf-16-le"),  # without one
    ],
    ids=["utf8", "utf8-bom", "utf16-bom", "utf16le"],
)
def test_encodings_read_the_same_fills(encode):
    executions, source = _executions(encode(_csv()))
    assert [(e.side, e.quantity, e.price, e.executed_at, e.fees) for e in executions] == _expected()
    assert source.problems == []


def test_semicolons_with_decimal_commas():
    text = _csv(delimiter=";", decimal_comma=True)
    assert "225,50" in text
    executions, source = _executions(text.encode())
    assert [(e.side, e.quantity, e.price, e.executed_at, e.fees) for e in executions] == _expected()
    assert source.delimiter == ";" and source.problems == []


def test_identical_rows_stay_two_fills_and_ids_are_stable_across_imports():
    first, _ = _executions(_csv().encode())
    second, _ = _executions(_csv().encode())
    ids = [e.broker_execution_id for e in first]
    assert len(set(ids)) == 3
    assert ids == [e.broker_execution_id for e in second]


def test_a_malformed_row_is_reported_by_line_and_the_rest_imported():
    rows = [
        *ROWS[:1],
        ("2024-11-05", "25:99:00", "AAPL", "1", "1", "Buy", "0"),
        ("2024-11-05", "11:00:00", "AAPL", "x", "1", "Buy", "0"),
        *ROWS[2:],
    ]
    executions, source = _executions(_csv(rows).encode())
    assert len(executions) == 2
    assert [p.line for p in source.problems] == [3, 4]
    assert "not a time" in source.problems[0].reason and "Quantity" in source.problems[1].reason


def test_a_missing_column_names_what_was_expected_and_found():
    text = "When,Ticker,Qty\n2024-11-05,AAPL,1\n"
    with pytest.raises(
        FileFormatError, match="expected the column\\(s\\) Date, Symbol, Quantity, Price.*found When, Ticker, Qty"
    ):
        _executions(text.encode())


def test_a_column_mapping_reads_any_csv():
    text = "Trade Date,Ticker,Qty,Fill Price,B/S\n2024-11-05 09:30:12,AAPL,100,225.50,B\n"
    source = FileSource(
        io.BytesIO(text.encode()),
        name="x.csv",
        timezone="UTC",
        account_id="U1",
        options={"map": "Date=Trade Date,Symbol=Ticker,Quantity=Qty,Price=Fill Price,Side=B/S"},
    )
    (execution,) = [e for page in GENERIC_CSV.parse(source) for e in page.executions]
    assert execution.price == Decimal("225.50") and execution.side == "buy"
    with pytest.raises(FileFormatError, match="OURS one of"):
        parse_mapping("Colour=Paint")


def test_the_time_zone_is_never_assumed():
    with pytest.raises(FileFormatError, match="carry no time zone; say which one with --timezone"):
        _executions(_csv().encode(), timezone=None)


def test_binary_junk_is_refused():
    with pytest.raises(FileFormatError, match="binary"):
        FileSource(io.BytesIO(bytes(range(256)) * 100), name="junk.bin")


def test_a_pathological_line_is_refused_with_bounded_memory():
    class Endless(io.RawIOBase):
        """50 MB of one line, produced on demand (never held in memory by the test)."""

        def __init__(self):
            self.left = 50 * 1024 * 1024

        def readable(self):
            return True

        def readinto(self, buffer):
            n = min(len(buffer), self.left)
            buffer[:n] = b"a" * n
            self.left -= n
            return n

    tracemalloc.start()
    source = FileSource(io.BufferedReader(Endless()), name="huge.csv", timezone="UTC")
    with pytest.raises(FileFormatError, match="line 1 is longer than"):
        list(source.lines())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 8 * 1024 * 1024


def test_detect_format_skips_a_faulty_sniff():
    def broken(head):
        raise RuntimeError("bug")

    other = FileFormat(name="x", description="x", sniff=broken, parse=lambda s: iter(()))
    assert detect_format("Date,Time,Symbol,Quantity,Price,Side", [other, GENERIC_CSV]) == [GENERIC_CSV]


def test_sha256_covers_the_whole_file():
    import hashlib

    data = _csv().encode()
    _, source = _executions(data)
    assert source.sha256 == hashlib.sha256(data).hexdigest()
    assert source.bytes_read == len(data)


def test_binary_data_past_the_sniffed_start_is_a_problem_row_not_text():
    # The binary check at detection sees the first 64 KiB; a NUL byte further down must not be
    # imported as part of a symbol or a price.
    filler = [("2024-11-05", "09:30:12", "AAPL", "1", "225.50", "Buy", "0")] * 3000
    text = _csv([*filler, ("2024-11-05", "10:00:00", "AA\x00PL", "1", "226", "Sell", "0"), ROWS[2]])
    assert len(text.split("\x00")[0].encode()) > 64 * 1024
    executions, source = _executions(text.encode())
    assert len(executions) == 3001
    assert all("\x00" not in e.instrument.symbol for e in executions)
    assert [(p.line, p.reason) for p in source.problems] == [
        (3002, "holds binary data (a NUL byte); the row was not read")
    ]


def test_a_fee_paid_in_another_currency_survives_export_and_import():
    # A round trip whose closing fee was paid in BNB (kept out of its USDT fees by the pairing)
    # is written with a Fee Currency column, and reading that file gives the BNB fee back.
    from brokersync import Direction, Trade
    from brokersync._generic_csv import EXPORT_COLUMNS, export_rows

    opened = dt.datetime(2024, 11, 5, 14, 30, tzinfo=dt.UTC)
    trade = Trade(
        broker_trade_id="f1>f2",
        account_id="U1",
        symbol="BTC/USDT",
        direction=Direction.LONG,
        opened_at=opened,
        closed_at=opened + dt.timedelta(minutes=5),
        entry_price=Decimal("60000"),
        exit_price=Decimal("60100"),
        quantity=Decimal("0.5"),
        realized_pnl=Decimal("50"),
        fees=Decimal("0.06"),
        currency="USDT",
        raw={"opening_fee": "0.06", "closing_fee": "0.0004", "closing_fee_currency": "BNB"},
    )
    rows = export_rows(trade)
    assert [dict(zip(EXPORT_COLUMNS, r, strict=True))["Fee Currency"] for r in rows] == ["USDT", "BNB"]
    text = "\r\n".join(",".join(r) for r in [EXPORT_COLUMNS, *rows]) + "\r\n"
    executions, source = _executions(text.encode(), timezone="UTC")
    assert not source.problems
    assert [(e.fees, e.fee_currency) for e in executions] == [(Decimal("0.06"), "USDT"), (Decimal("0.0004"), "BNB")]
