"""The histories the tests trade on the fake: two accounts covering what v20 can do to a trade."""

from __future__ import annotations

from decimal import Decimal

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
