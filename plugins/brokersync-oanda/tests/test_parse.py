"""parse.py's pure functions on hand-written v20 records."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from brokersync_oanda import parse


def test_a_commission_split_over_several_trades_adds_up_exactly() -> None:
    fill = {
        "commission": "0.0001",
        "tradesClosed": [{"tradeID": "7", "units": "-2"}],
        "tradeOpened": {"tradeID": "12", "units": "-3"},
    }
    assert parse.commission_shares(fill) == {"7": Decimal("0.0000"), "12": Decimal("0.0001")}
    fill = {
        "commission": "1.0000",
        "tradesClosed": [{"tradeID": "3", "units": "-1000"}, {"tradeID": "5", "units": "-1000"}],
        "tradeReduced": {"tradeID": "8", "units": "-1000"},
    }
    shares = parse.commission_shares(fill)
    assert shares == {"3": Decimal("0.3333"), "5": Decimal("0.3333"), "8": Decimal("0.3334")}
    assert sum(shares.values()) == Decimal("1.0000")
    assert parse.fill_trade_ids(fill) == (["3", "5"], ["3", "5", "8"])


def test_a_closed_trade_maps_with_nanosecond_times_and_financing_apart() -> None:
    trade = {
        "id": "6",
        "instrument": "USD_JPY",
        "price": "149.512",
        "openTime": "2026-03-02T07:01:14.123456789Z",
        "initialUnits": "-3000",
        "realizedPL": "8.2200",
        "financing": "-0.4100",
        "averageClosePrice": "149.101",
        "closingTransactionIDs": ["9"],
        "closeTime": "2026-03-02T07:03:01.000000999Z",
        "state": "CLOSED",
    }
    fills = {
        "6": {"commission": "0.0600", "tradeOpened": {"tradeID": "6", "units": "-3000"}},
        "9": {"commission": "0.0600", "tradesClosed": [{"tradeID": "6", "units": "3000"}]},
    }
    record = parse.to_record(trade, account_id="A", currency="USD", fills=fills)
    assert record["opened_at"] == dt.datetime(2026, 3, 2, 7, 1, 14, 123456, tzinfo=dt.UTC)
    assert record["closed_at"] == dt.datetime(2026, 3, 2, 7, 3, 1, 0, tzinfo=dt.UTC)
    assert (record["direction"], record["quantity"], record["fees"]) == ("short", Decimal(3000), Decimal("0.1200"))
    assert record["realized_pnl"] == Decimal("8.2200") and record["raw"]["brokersync"]["financing"] == "-0.4100"
    assert record["raw"]["openTime"] == trade["openTime"]


def test_a_value_that_does_not_parse_is_handed_on_for_the_core_to_report() -> None:
    trade = {"id": "6", "instrument": "EUR_USD", "price": "1,1x", "initialUnits": "100", "openTime": "soon"}
    record = parse.to_record(trade, account_id="A", currency="USD", fills={"6": {"commission": "0"}})
    assert (record["entry_price"], record["opened_at"]) == ("1,1x", "soon")


def test_instruments_are_forex_pairs_or_cfds() -> None:
    assert parse.instrument("EUR_USD")["asset_class"].value == "forex"
    assert parse.instrument("XAU_USD") | {"asset_class": None} == {
        "symbol": "XAU_USD",
        "asset_class": None,
        "currency": "USD",
    }
    assert parse.instrument("SPX500_USD")["asset_class"].value == "cfd"
