"""The fills account: a scripted execution feed that exercises the core's pairing.

Each user has one account (``type == "fills"``, id ending in ``-FILLS``) that reports executions
instead of round trips, served by ``GET /accounts/{id}/fills``. Its history is a fixed script (the
seed only shifts every price of an instrument by the same amount, so the pairing is the same for
every seed) with partial fills of one order, a scale-out, a reversal, a scale-in and open
positions. After the first complete listing the broker publishes one round of changes: a late fill
(listed after the others but executed before some of them) and a bust of an earlier fill (listed
again with ``"status": "CANCELLED"``). Nothing changes after that round.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import attrs

from brokersync_sim._market import stable_int

__all__ = ["BUSTED_FILL", "LATE_FILL", "FillFeed", "fills_account_id", "script"]

#: The fill the broker busts after the first complete listing (its script key).
BUSTED_FILL = "A5"
#: The fill that arrives late (its script key).
LATE_FILL = "M3"

_INSTRUMENTS = {
    # symbol: (instrument id, asset class, multiplier, commission per unit)
    "AAPL": ("sim:265598", "stock", "1", "0.005"),
    "ESZ5": ("sim:ESZ5", "future", "50", "2.09"),
    "MSFT": ("sim:272093", "stock", "1", "0.005"),
}

# key, order, symbol, side, quantity, price, minutes after the start
_SCRIPT: tuple[tuple[str, str, str, str, int, str, int], ...] = (
    ("A1", "O1", "AAPL", "BUY", 100, "190.00", 0),  # one order filled in two parts
    ("A2", "O1", "AAPL", "BUY", 50, "190.10", 1),
    ("A3", "O2", "AAPL", "SELL", 120, "191.00", 60),  # scale-out: closes A1 and part of A2
    ("A4", "O3", "AAPL", "SELL", 60, "192.00", 120),  # reversal: closes the rest of A2, opens short 30
    ("A5", "O4", "AAPL", "BUY", 30, "191.50", 180),  # closes the short (busted later)
    ("E1", "O5", "ESZ5", "SELL", 2, "5000.00", 1440),  # short futures
    ("E2", "O6", "ESZ5", "SELL", 1, "5001.00", 1445),  # scale-in
    ("E3", "O7", "ESZ5", "BUY", 1, "4995.00", 1500),  # partial cover: short 2 stays open
    ("M1", "O8", "MSFT", "BUY", 10, "410.00", 2880),
    ("M2", "O9", "MSFT", "BUY", 15, "411.00", 2890),
    ("M4", "O10", "MSFT", "SELL", 15, "413.00", 3000),  # closes M1 and 5 of M2 (until M3 arrives)
)
# Published after the first complete listing, executed before M4.
_LATE = ("M3", "O11", "MSFT", "SELL", 10, "412.00", 2940)
_START_BEFORE_END = dt.timedelta(days=10)


def fills_account_id(tag: str) -> str:
    """The id of a user's fills account, from the user's account tag."""
    return f"SIMX-{tag}-FILLS"


def _wire(
    account_id: str, seed: int, start: dt.datetime, row: tuple[str, str, str, str, int, str, int]
) -> dict[str, Any]:
    key, order, symbol, side, quantity, price, minutes = row
    instrument_id, asset_class, multiplier, fee = _INSTRUMENTS[symbol]
    shift = Decimal(stable_int(seed, account_id, symbol) % 100) / 100  # the same for every fill of the symbol
    executed = start + dt.timedelta(minutes=minutes)
    return {
        "id": f"{account_id}-{key}",
        "account": account_id,
        "orderId": f"{account_id}-{order}",
        "symbol": symbol,
        "instrumentId": instrument_id,
        "assetClass": asset_class,
        "currency": "USD",
        "multiplier": multiplier,
        "side": side,
        "quantity": str(quantity),
        "price": str(Decimal(price) + shift),
        "commission": str((Decimal(fee) * quantity).quantize(Decimal("0.01"))),
        "executedAt": _text(executed),
        "updatedAt": _text(executed),
        "status": "FILLED",
    }


def _text(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def script(account_id: str, seed: int, history_end: dt.datetime) -> dict[str, dict[str, Any]]:
    """Every fill of the script (the late one included) in its first version, keyed by script key."""
    start = history_end - _START_BEFORE_END
    return {row[0]: _wire(account_id, seed, start, row) for row in (*_SCRIPT, _LATE)}


@attrs.define
class FillFeed:
    """One fills account's change feed: ``order`` lists the versions in the order they were published."""

    account_id: str
    fills: dict[str, dict[str, Any]]
    order: list[dict[str, Any] | None]  # None: a version superseded by a later one
    rounds: int = 0

    @classmethod
    def new(cls, account_id: str, seed: int, history_end: dt.datetime) -> FillFeed:
        fills = script(account_id, seed, history_end)
        order: list[dict[str, Any] | None] = [fills[row[0]] for row in _SCRIPT]
        return cls(account_id=account_id, fills=fills, order=order)

    def publish_round(self, now: dt.datetime) -> None:
        """After a complete listing: the first time, publish the late fill and the bust; then nothing."""
        if self.rounds:
            return
        self.rounds += 1
        late = dict(self.fills[LATE_FILL], updatedAt=_text(now))
        busted = dict(self.fills[BUSTED_FILL], updatedAt=_text(now), status="CANCELLED")
        busted.update(cancelledAt=_text(now), cancelReason="busted by the exchange")
        self.order = [None if f is self.fills[BUSTED_FILL] else f for f in self.order]
        self.fills[LATE_FILL], self.fills[BUSTED_FILL] = late, busted
        self.order.extend((late, busted))
