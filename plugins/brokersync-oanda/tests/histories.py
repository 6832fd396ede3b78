"""The histories the tests trade on the fake: two accounts covering what v20 can do to a trade."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from fake_v20 import FakeV20

FIFO = "101-004-1435156-001"  # USD home, FIFO netting, pays commission
HEDGE = "101-004-1435156-002"  # EUR home, hedging, no commission


def fifo_history(fake: FakeV20, account: str = FIFO) -> None:
    """FIFO netting with a partial close, a reversal, three instruments, financing and a reject."""
    fake.order(account, "EUR_USD", 10000, "1.08512")
    fake.order(account, "EUR_USD", 5000, "1.08600")
    fake.daily_financing(account)
    fake.order(account, "EUR_USD", -12000, "1.08710")  # closes the first trade, reduces the second
    fake.order(account, "USD_JPY", -3000, "149.512")
    fake.reject(account, "USD_JPY", 900000000)
    fake.order(account, "USD_JPY", 3000, "149.101")  # P&L in JPY, converted to USD
    fake.order(account, "XAU_USD", 20, "2345.115")
    fake.order(account, "XAU_USD", -50, "2350.420")  # reversal: closes the long, opens a short of 30
    fake.daily_financing(account)
    fake.order(account, "EUR_USD", -3000, "1.08420")  # closes what is left of the second trade
    fake.order(account, "EUR_USD", 1000, "1.08300")  # stays open


def hedge_history(fake: FakeV20, account: str = HEDGE) -> None:
    """Hedging: long and short of one instrument at once, closed trade by trade (one partially first)."""
    long = fake.order(account, "EUR_USD", 10000, "1.10000")["tradeOpened"]["tradeID"]
    short = fake.order(account, "EUR_USD", -4000, "1.10100")["tradeOpened"]["tradeID"]
    fake.daily_financing(account)
    fake.close_trade(account, long, "1.10500", units=6000)
    fake.close_trade(account, long, "1.09900")
    fake.close_trade(account, short, "1.09800")
    jpy = fake.order(account, "USD_JPY", 1000, "150.000")["tradeOpened"]["tradeID"]
    fake.close_trade(account, jpy, "150.750")


def make_fake(**options: object) -> FakeV20:
    fake = FakeV20(**options)  # type: ignore[arg-type]
    fake.add_account(FIFO, currency="USD", alias="Main", commission_per_unit=Decimal("0.00002"))
    fake.add_account(HEDGE, currency="EUR", alias="Hedge", hedging=True)
    fifo_history(fake)
    hedge_history(fake)
    return fake


# -- ground truth the tests compare with, computed from the fake's wire trades ----------------------

RATE = Decimal("0.00002")  # the FIFO account's commission per unit (histories.make_fake)
CURRENCY = {FIFO: "USD", HEDGE: "EUR"}


def utc(text: str) -> dt.datetime:
    """An RFC 3339 nanosecond time read the long way: the first six fractional digits, UTC."""
    assert len(text) == 30 and text.endswith("Z"), text
    return dt.datetime.strptime(text[:26], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=dt.UTC)


def expected(wire: dict[str, Any], account_id: str) -> dict[str, Any]:
    units = Decimal(wire["initialUnits"])
    rate = RATE if account_id == FIFO else Decimal(0)
    return {
        "broker_trade_id": wire["id"],
        "symbol": wire["instrument"],
        "direction": "long" if units > 0 else "short",
        "quantity": abs(units),
        "entry_price": Decimal(wire["price"]),
        "exit_price": Decimal(wire["averageClosePrice"]),
        "realized_pnl": Decimal(wire["realizedPL"]),
        "currency": CURRENCY[account_id],
        # every unit is commissioned twice, once opening and once closing, whatever fills it took
        "fees": 2 * abs(units) * rate,
        "opened_at": utc(wire["openTime"]),
        "closed_at": utc(wire["closeTime"]),
    }
