"""The Activity Statement CSV parser, on statements written here from flexgen's data table."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from brokersync import Account, AssetClass, Execution, ExecutionKind, OpenClose, OptionRight
from brokersync_ibkr.files import iter_activity_csv, looks_like_activity_csv
from brokersync_ibkr.parse import RowError
from flexgen import NEW_YORK, Fill, scenario

CATEGORY = {"STK": "Stocks", "OPT": "Equity and Index Options", "FUT": "Futures", "CASH": "Forex"}
TRADE_HEADER = ["DataDiscriminator", "Asset Category", "Currency", "Symbol", "Date/Time", "Quantity", "T. Price",
                "C. Price", "Proceeds", "Comm/Fee", "Basis", "Realized P/L", "MTM P/L", "Code"]  # fmt: skip


def _code(fill: Fill) -> str:
    codes = [c for c in fill.notes.split(";") if c and c not in ("C", "P", "Ca", "Co")]
    codes += {"O": ["O"], "C": ["C"], "C;O": ["C", "O"]}[fill.open_close]
    return ";".join(codes)


def _quantity(value: Decimal) -> str:
    return f"{value:,}"  # IB groups thousands: "10,000"


def activity_csv(fills: list[Fill], account: str, base: str, *, with_account_column: bool = False) -> bytes:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["Statement", "Header", "Field Name", "Field Value"])
    w.writerow(["Statement", "Data", "Title", "Activity Statement"])
    w.writerow(["Statement", "Data", "Period", "January 2, 2024 - March 29, 2024"])
    w.writerow(["Account Information", "Header", "Field Name", "Field Value"])
    w.writerow(["Account Information", "Data", "Name", "Test Holder"])
    w.writerow(["Account Information", "Data", "Account", account])
    w.writerow(["Account Information", "Data", "Base Currency", base])
    for category in ("STK", "OPT", "FUT", "CASH"):
        rows = [f for f in fills if f.asset == category]
        if not rows:
            continue
        header = list(TRADE_HEADER)
        if category == "CASH":
            header[header.index("Comm/Fee")] = "Comm in USD"
        if with_account_column:
            header.insert(1, "Account")
        w.writerow(["Trades", "Header", *header])
        for f in rows:
            local = f.when.astimezone(NEW_YORK).strftime("%Y-%m-%d, %H:%M:%S")
            values = ["Order", CATEGORY[category], f.currency, f.symbol, local, _quantity(f.quantity), str(f.price),
                      str(f.price), "0", str(f.commission), "0", "0", "0", _code(f)]  # fmt: skip
            if with_account_column:
                values.insert(1, f.account)
            w.writerow(["Trades", "Data", *values])
        w.writerow(["Trades", "SubTotal", "", CATEGORY[category], "USD", "", "", "", "", "", "0", "0"])
    w.writerow(["Trades", "Total", "", "", "", "", "", "", "", "", "0", "0"])
    w.writerow(["Financial Instrument Information", "Header", "Asset Category", "Symbol", "Description", "Conid",
                "Underlying", "Listing Exch", "Multiplier", "Expiry", "Strike", "Type", "Code"])  # fmt: skip
    for f in {f.conid: f for f in fills}.values():
        w.writerow(["Financial Instrument Information", "Data", CATEGORY[f.asset], f.symbol, "desc", f.conid,
                    f.underlying or "", "CME", str(f.multiplier), f.expiry or "", str(f.strike or ""),
                    f.put_call or "", ""])  # fmt: skip
    return out.getvalue().encode("utf-8-sig")


def plain_fills() -> list[Fill]:
    fills, _ = scenario()
    return [f for f in fills if f.account == "U1111111" and f.symbol != "MSFT"]


def test_orders_become_executions_with_instrument_terms() -> None:
    fills = plain_fills()
    items = list(iter_activity_csv(activity_csv(fills, "U1111111", "USD")))
    accounts = [i for i in items if isinstance(i, Account)]
    executions = [i for i in items if isinstance(i, Execution)]
    assert [(a.id, a.currency) for a in accounts] == [("U1111111", "USD")]
    assert [i for i in items if isinstance(i, RowError)] == []
    assert len(executions) == len(fills)
    expected = sorted(fills, key=lambda f: (f.when, f.conid))
    got = sorted(executions, key=lambda e: (e.executed_at, e.instrument.instrument_id or ""))
    for fill, execution in zip(expected, got, strict=True):
        assert execution.executed_at == fill.when
        assert execution.signed_quantity == fill.quantity
        assert execution.price == fill.price and execution.fees == -fill.commission
        assert execution.instrument.multiplier == fill.multiplier
        assert execution.instrument.instrument_id == fill.conid
    by_symbol = {e.instrument.symbol: e for e in executions if e.kind is not ExecutionKind.FILL}
    assert by_symbol["AAPL  240119C00190000"].kind is ExecutionKind.EXPIRY
    assert by_symbol["AAPL  240216P00140000"].kind is ExecutionKind.ASSIGNMENT
    assert by_symbol["AAPL  240216P00140000"].instrument.right is OptionRight.PUT
    fx = [e for e in executions if e.instrument.asset_class is AssetClass.FOREX]
    assert [e.quantity for e in fx] == [Decimal(10000)] * 2 and fx[0].fee_currency == "USD"
    assert any(e.open_close is OpenClose.CLOSE_OPEN for e in executions)


def test_ids_are_stable_and_identical_fills_stay_two() -> None:
    fills = plain_fills()
    twin = fills[0]
    data = activity_csv([twin, *fills], "U1111111", "USD")
    first = [e.broker_execution_id for e in iter_activity_csv(data) if isinstance(e, Execution)]
    again = [e.broker_execution_id for e in iter_activity_csv(data) if isinstance(e, Execution)]
    assert first == again and len(set(first)) == len(fills) + 1


def test_account_column_for_multi_account_statements() -> None:
    fills, _ = scenario()
    two = [f for f in fills if f.symbol in ("AAPL", "SAP")]
    items = list(iter_activity_csv(activity_csv(two, "U1111111", "USD", with_account_column=True)))
    assert {e.account_id for e in items if isinstance(e, Execution)} == {"U1111111", "U2222222"}


def test_a_bad_row_is_reported_with_its_line_and_the_rest_read() -> None:
    data = activity_csv(plain_fills(), "U1111111", "USD").replace(b",150.00,150.00,", b",abc,abc,", 1)
    items = list(iter_activity_csv(data))
    errors = [i for i in items if isinstance(i, RowError)]
    assert len(errors) == 1 and "line 9" in errors[0].reason and "T. Price" in errors[0].reason
    assert len([i for i in items if isinstance(i, Execution)]) == len(plain_fills()) - 1


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"Date,Symbol,Qty\n2024-01-01,AAPL,1\n", "not an Activity Statement CSV"),
        ("Statement,Header,Field Name,Field Value\n".encode("utf-16"), "binary"),
    ],
)
def test_other_files_are_refused(data: bytes, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        list(iter_activity_csv(data))


def test_sniff() -> None:
    assert looks_like_activity_csv(activity_csv(plain_fills(), "U1", "USD")[:100])
    assert not looks_like_activity_csv(b"<FlexQueryResponse")
