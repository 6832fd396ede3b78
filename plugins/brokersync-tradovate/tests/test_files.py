"""The three CSV exports, written for these tests from the documented layouts, read into API-shaped pages."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import brokersync
import pytest
from brokersync_tradovate.files import parse_orders, parse_performance, parse_position_history
from ground_truth import expected_trades
from tradovate_exports import PERFORMANCE, position_history


def pages_records(pages) -> list:
    return [r for page in pages for r in page.records]


def normalized(record):
    return brokersync.Trade(**{k: v for k, v in record.items()})


@pytest.mark.parametrize(("zone", "bom"), [("UTC", False), ("America/Chicago", True)], ids=["utc", "chicago-bom"])
def test_position_history_rows_are_the_api_round_trips_with_the_same_ids(fake, zone, bom):
    text = position_history(fake, zone, bom)
    trades = [normalized(r) for r in pages_records(parse_position_history(io.StringIO(text), tz=zone))]
    truth = expected_trades(fake)
    assert {(t.account_id, t.broker_trade_id) for t in trades} == set(truth)
    for trade in trades:
        expected = truth[(trade.account_id, trade.broker_trade_id)]
        assert trade.fees == 0  # the export has no fees
        assert (trade.direction, trade.opened_at, trade.closed_at) == (
            expected["direction"],
            expected["opened_at"],
            expected["closed_at"],
        )
        assert (trade.entry_price, trade.exit_price, trade.quantity) == (
            expected["entry_price"],
            expected["exit_price"],
            expected["quantity"],
        )
        assert trade.realized_pnl == expected["realized_pnl"]


def test_performance_rows_are_keyed_by_their_fills(fake):
    e = fake.entities
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(PERFORMANCE)
    live = [p for p in e["fillPair"].values() if p["active"] and e["position"][p["positionId"]]["accountId"] == 70001]
    for pair in live:
        contract = e["contract"][e["position"][pair["positionId"]]["contractId"]]
        buy, sell = e["fill"][pair["buyFillId"]], e["fill"][pair["sellFillId"]]
        writer.writerow([
            contract["name"], "-2", "0", "0.25", buy["id"], sell["id"], pair["qty"], pair["buyPrice"],
            pair["sellPrice"], "$12.50", buy["timestamp"], sell["timestamp"], "5min",
        ])  # fmt: skip
    trades = [normalized(r) for r in pages_records(parse_performance(io.StringIO(out.getvalue()), account_id="70001"))]
    truth = expected_trades(fake)
    by_fills = {f"{p['buyFillId']}-{p['sellFillId']}": truth[("70001", str(p["id"]))] for p in live}
    assert {t.broker_trade_id for t in trades} == set(by_fills)
    for trade in trades:
        assert (trade.direction, trade.opened_at, trade.entry_price) == (
            by_fills[trade.broker_trade_id]["direction"],
            by_fills[trade.broker_trade_id]["opened_at"],
            by_fills[trade.broker_trade_id]["entry_price"],
        )


def test_orders_export_gives_filled_orders_and_reports_a_bad_row():
    text = (
        "orderId,Account,B/S,Contract,Product,Product Description,avgPrice,filledQty,Fill Time,Status\n"
        "300001,DEMO70001,Buy,ESZ6,ES,E-Mini S&P 500,5850.5,2,2026-11-02 08:30:00,Filled\n"
        "300002,DEMO70001,Sell,ESZ6,ES,E-Mini S&P 500,,0,,Canceled\n"
        "300003,DEMO70001, Sell,CLF7,CL,Crude Oil,71.37,1,2026-11-02 16:17:41,Filled\n"
        "300004,DEMO70001,Sell,ESZ6,ES,E-Mini S&P 500,abc,1,2026-11-02 09:00:00,Filled\n"
    )
    [page] = list(parse_orders(io.StringIO(text), tz="America/Chicago", multipliers={"ES": "50", "CL": "1000"}))
    good = [x for x in page.executions if isinstance(x, brokersync.Execution)]
    bad = [x for x in page.executions if not isinstance(x, brokersync.Execution)]
    assert [x.broker_execution_id for x in good] == ["order-300001", "order-300003"]
    assert good[0].price == Decimal("5850.5") and good[0].instrument.multiplier == 50
    assert good[1].executed_at == dt.datetime(2026, 11, 2, 22, 17, 41, tzinfo=dt.UTC)
    assert good[1].side is brokersync.Side.SELL
    assert len(bad) == 1 and "line 5" in bad[0]["raw"]["problem"] and "avgPrice" in bad[0]["raw"]["problem"]


def test_a_bad_row_is_reported_with_its_line_and_the_rest_is_read(fake):
    text = position_history(fake)
    lines = text.splitlines()
    lines[2] = lines[2].rsplit(",", 1)[0] + ",31/31/2026 99:00"  # the second data row's Sold Timestamp
    records = pages_records(parse_position_history(io.StringIO("\n".join(lines) + "\n")))
    bad = [r for r in records if r.get("symbol") is None]
    assert len(bad) == 1 and bad[0]["raw"]["problem"].startswith("line 3:")
    assert len(records) == len(expected_trades(fake))


@pytest.mark.parametrize(
    ("parser", "kwargs"),
    [(parse_position_history, {}), (parse_performance, {"account_id": "1"}), (parse_orders, {})],
    ids=["position-history", "performance", "orders"],
)
def test_another_file_is_refused_naming_what_was_expected(parser, kwargs):
    with pytest.raises(ValueError, match="not a Tradovate .* export: the header lacks"):
        list(parser(io.StringIO("Date,Action,Symbol,Price\n2026-01-01,Buy,AAPL,1\n"), **kwargs))
    with pytest.raises(ValueError, match="empty"):
        list(parser(io.StringIO(""), **kwargs))
