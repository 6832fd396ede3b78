"""One fee currency per execution from ccxt's unified trade (string-number mode)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from brokersync_ccxt._parse import to_execution

MARKET = {"id": "BTCUSDT", "symbol": "BTC/USDT", "base": "BTC", "quote": "USDT", "contract": False}


def trade(*fees: tuple[str, str]) -> dict[str, Any]:
    return {
        "id": "42",
        "order": "7",
        "timestamp": 1_767_225_600_000,
        "side": "buy",
        "amount": "0.015",
        "price": "30000.10",
        "fees": [{"cost": cost, "currency": cur} for cost, cur in fees],
        "info": {"id": 42},
    }


@pytest.mark.parametrize(
    ("fees", "want"),
    [
        ([("0.00012", "BNB")], (Decimal("0.00012"), "BNB", False)),  # a BNB fee stays BNB
        ([("0", "USDT"), ("0.00012", "BNB")], (Decimal("0.00012"), "BNB", False)),  # zero entries are no charge
        ([("0.5", "USDT"), ("0.00012", "BNB"), ("0.25", "USDT")], (Decimal("0.75"), "USDT", True)),
        ([("0.00012", "BNB"), ("0.0000001", "BTC")], (Decimal("0.00012"), "BNB", True)),  # no quote part
        ([("0", "USDT")], (Decimal(0), "USDT", False)),
        ([], (Decimal(0), None, False)),
    ],
)
def test_one_fee_currency_per_execution(fees: list[tuple[str, str]], want: tuple[Decimal, str | None, bool]) -> None:
    execution = to_execution(trade(*fees), MARKET, account_id="binance", exchange_id="binance")
    assert (execution.fees, execution.fee_currency, "brokersync_fees" in execution.raw) == want
    if want[2]:  # every part the exchange charged is kept beside the chosen one
        assert [(Decimal(p["cost"]), p["currency"]) for p in execution.raw["brokersync_fees"]] == [
            (Decimal(c), cur) for c, cur in fees
        ]
