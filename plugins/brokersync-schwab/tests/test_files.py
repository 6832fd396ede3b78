"""Schwab and thinkorswim exports, written here from the documented layouts."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import brokersync
import pytest
from brokersync import ExecutionKind
from brokersync.files import FileFormatError, FileSource, detect_format
from brokersync_schwab import THINKORSWIM_STATEMENT, TRANSACTIONS_CSV, option_instrument

HEADER = '"Date","Action","Symbol","Description","Quantity","Price","Fees & Comm","Amount"'
# oldest first here; the file lists them newest first, as Schwab does
EVENTS = [
    ("10/01/2024", "Buy", "AAPL", "APPLE INC", "100", "$225.50", "", "-$22,550.00"),
    ("10/01/2024", "Sell", "AAPL", "APPLE INC", "40", "$226.00", "$0.02", "$9,039.98"),
    ("10/02/2024", "Sell to Open", "AAPL 11/15/2024 225.00 C", "CALL APPLE INC", "2", "$3.20", "$1.32", "$638.68"),
    ("10/03/2024", "Qualified Dividend", "AAPL", "APPLE INC", "", "", "", "$15.00"),
    ("10/04/2024", "Buy to Open", "MSFT 10/18/2024 400.00 P", "PUT MICROSOFT", "1", "$1.10", "$0.66", "-$110.66"),
    ("10/18/2024", "Expired", "MSFT 10/18/2024 400.00 P", "PUT MICROSOFT", "1", "", "", ""),
    ("11/15/2024 as of 11/15/2024", "Assigned", "AAPL 11/15/2024 225.00 C", "CALL APPLE INC", "2", "", "", ""),
    ("11/18/2024", "Sell", "AAPL", "APPLE INC", "60", "$225.00", "", "$13,500.00"),
]


def _transactions(events=EVENTS) -> bytes:
    lines = [HEADER] + [",".join(f'"{c}"' for c in row) for row in reversed(events)]
    lines.append('"Transactions Total","","","","","","","$1,234.00"')
    return ("\n".join(lines) + "\n").encode("utf-8-sig")


def _read(fmt, data, **kwargs):
    source = FileSource(io.BytesIO(data), name="Individual_XXX123_Transactions.csv", account_id="XXX123", **kwargs)
    return [e for page in fmt.parse(source) for e in page.executions], source


def test_transactions_in_the_order_they_happened_with_option_events():
    data = _transactions()
    source = FileSource(io.BytesIO(data), name="t.csv")
    assert detect_format(source.head, [TRANSACTIONS_CSV, THINKORSWIM_STATEMENT]) == [TRANSACTIONS_CSV]
    executions, source = _read(TRANSACTIONS_CSV, data)
    assert source.problems == []
    assert [(e.instrument.symbol, e.side, e.quantity, e.price, e.fees, e.kind) for e in executions] == [
        ("AAPL", "buy", Decimal(100), Decimal("225.50"), Decimal(0), ExecutionKind.FILL),
        ("AAPL", "sell", Decimal(40), Decimal("226.00"), Decimal("0.02"), ExecutionKind.FILL),
        ("AAPL 11/15/2024 225.00 C", "sell", Decimal(2), Decimal("3.20"), Decimal("1.32"), ExecutionKind.FILL),
        ("MSFT 10/18/2024 400.00 P", "buy", Decimal(1), Decimal("1.10"), Decimal("0.66"), ExecutionKind.FILL),
        # the long put expired: a sell at 0; the short call was assigned: a buy that closes it
        ("MSFT 10/18/2024 400.00 P", "sell", Decimal(1), Decimal(0), Decimal(0), ExecutionKind.EXPIRY),
        ("AAPL 11/15/2024 225.00 C", "buy", Decimal(2), Decimal(0), Decimal(0), ExecutionKind.ASSIGNMENT),
        ("AAPL", "sell", Decimal(60), Decimal("225.00"), Decimal(0), ExecutionKind.FILL),
    ]
    # same-day rows keep the file's order; times are the trade date in New York
    assert executions[0].executed_at < executions[1].executed_at
    assert executions[0].executed_at == dt.datetime(2024, 10, 1, 13, 30, tzinfo=dt.UTC)
    assert executions[2].instrument.multiplier == Decimal(100) and executions[2].instrument.right == "call"
    again, _ = _read(TRANSACTIONS_CSV, data)
    assert [e.broker_execution_id for e in again] == [e.broker_execution_id for e in executions]


def test_an_expiry_the_file_never_opened_is_a_problem_not_a_guess():
    executions, source = _read(TRANSACTIONS_CSV, _transactions(EVENTS[5:6]))
    assert executions == []
    assert [p.line for p in source.problems] == [2]
    assert "shows no open position" in source.problems[0].reason


def test_the_account_must_be_given():
    with pytest.raises(FileFormatError, match="--account"):
        list(TRANSACTIONS_CSV.parse(FileSource(io.BytesIO(_transactions()), name="t.csv")))


def test_option_symbols():
    put = option_instrument("SPY 12/20/2024 590.00 P")
    assert (put.underlying, put.expiry, put.strike, put.right) == ("SPY", dt.date(2024, 12, 20), Decimal(590), "put")
    with pytest.raises(ValueError, match="neither a stock nor an option"):
        option_instrument("SPY 12/20/2024")


STATEMENT = """This document was exported from the thinkorswim platform.

Account Statement for XXX123 (ira) since 11/1/24 through 11/30/24

Cash Balance
DATE,TIME,TYPE,REF #,DESCRIPTION,Misc Fees,Commissions & Fees,AMOUNT,BALANCE
11/5/24,09:30:12,TRD,="123",BOT +100 AAPL @225.50,,,"-22,550.00","77,450.00"

Account Trade History
,Exec Time,Spread,Side,Qty,Pos Effect,Symbol,Exp,Strike,Type,Price,Net Price,Order Type
,11/5/24 09:30:12,STOCK,BUY,+100,TO OPEN,AAPL,,,STOCK,225.50,225.50,LMT
,11/5/24 10:31:00,VERTICAL,SELL,-1,TO OPEN,SPY,20 DEC 24,590,CALL,3.20,1.05,LMT
,,,BUY,+1,TO OPEN,SPY,20 DEC 24,600,CALL,2.15,CREDIT,
,11/6/24 15:59:59,STOCK,SELL,-100,TO CLOSE,AAPL,,,STOCK,"1,226.00",226.00,MKT

Profits and Losses
Symbol,Description,P/L Open,P/L %,P/L Day,P/L YTD,P/L Diff,Margin Req,Mark Value
"""


def test_thinkorswim_statement_filled_orders_with_a_spread():
    data = STATEMENT.encode()
    source = FileSource(io.BytesIO(data), name="s.csv")
    assert detect_format(source.head, [TRANSACTIONS_CSV, THINKORSWIM_STATEMENT]) == [THINKORSWIM_STATEMENT]
    executions, source = _read(THINKORSWIM_STATEMENT, data, timezone="America/New_York")
    assert source.problems == []
    assert [(e.instrument.symbol, e.side, e.quantity, e.price, e.executed_at) for e in executions] == [
        ("AAPL", "buy", Decimal(100), Decimal("225.50"), dt.datetime(2024, 11, 5, 14, 30, 12, tzinfo=dt.UTC)),
        ("SPY 12/20/2024 590 C", "sell", Decimal(1), Decimal("3.20"), dt.datetime(2024, 11, 5, 15, 31, tzinfo=dt.UTC)),
        ("SPY 12/20/2024 600 C", "buy", Decimal(1), Decimal("2.15"), dt.datetime(2024, 11, 5, 15, 31, tzinfo=dt.UTC)),
        ("AAPL", "sell", Decimal(100), Decimal("1226.00"), dt.datetime(2024, 11, 6, 20, 59, 59, tzinfo=dt.UTC)),
    ]


def test_the_statement_needs_its_time_zone():
    with pytest.raises(FileFormatError, match="--timezone"):
        _read(THINKORSWIM_STATEMENT, STATEMENT.encode())


def test_discovered_as_file_only():
    assert [f.name for f in brokersync.get_broker("schwab").file_formats()] == [
        "schwab-transactions",
        "thinkorswim-statement",
    ]


@pytest.mark.anyio
async def test_a_transactions_file_imports_without_naming_its_format(tmp_path):
    # Its header also has the date, symbol, quantity and price brokersync's generic CSV sniffs for;
    # the broker's own format wins, so the user need not say --format.
    path = tmp_path / "Individual_XXX123_Transactions.csv"
    path.write_bytes(_transactions())
    keys = brokersync.Vault.generate_key("k1")
    async with brokersync.BrokerSync(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}", encryption_keys=keys) as engine:
        await engine.upgrade_database()
        result = await engine.import_file(
            path, user_id="u", broker="schwab", account="XXX123", timezone="America/New_York"
        )
        assert result.format == "schwab-transactions"
        assert result.problem_count == 0 and result.rows == 7
        again = await engine.import_file(
            path, user_id="u", broker="schwab", account="XXX123", timezone="America/New_York"
        )
        assert (again.format, again.imported, again.updated) == ("schwab-transactions", 0, 0)
