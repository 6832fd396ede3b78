"""Deterministic market data for the simulated broker: the same seed always gives the same trades.

Nothing here is stored: trade ``i`` of an account is computed from ``(seed, account, i, version)``
on demand (SplitMix64 bits, integer tick arithmetic), so an account with a million trades costs a
few bytes until it is read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal
from typing import Any

import attrs

__all__ = ["Instrument", "SimAccount", "stable_int", "wire_trade"]

_CENT = Decimal("0.01")
_MIN_FEE = Decimal("1.00")
_M64 = (1 << 64) - 1


def _mix(x: int) -> int:
    """SplitMix64's finalizer: 64 well-mixed bits from an integer (fast, same in every process)."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


@attrs.frozen(kw_only=True)
class Instrument:
    """A tradable symbol: price level, tick size, contract multiplier and commission per unit."""

    symbol: str
    price: Decimal
    tick: Decimal
    multiplier: Decimal
    fee: Decimal
    quantities: tuple[int, ...]

    @property
    def price_ticks(self) -> int:
        """The reference price in ticks."""
        return int(self.price / self.tick)


def _instruments(*rows: tuple[str, str, str, str, str, tuple[int, ...]]) -> tuple[Instrument, ...]:
    return tuple(
        Instrument(
            symbol=symbol,
            price=Decimal(price),
            tick=Decimal(tick),
            multiplier=Decimal(multiplier),
            fee=Decimal(fee),
            quantities=quantities,
        )
        for symbol, price, tick, multiplier, fee, quantities in rows
    )


# Decimal texts, so every price, tick and fee is exact.
# fmt: off
_FUTURES = _instruments(
    # symbol  price    tick    multiplier  fee     quantities
    ("ESZ5",  "5000",  "0.25", "50",       "2.09",  (1, 1, 2, 3, 5)),
    ("NQZ5",  "18000", "0.25", "20",       "2.09",  (1, 1, 2)),
    ("CLF6",  "75",    "0.01", "1000",     "2.32",  (1, 2)),
    ("GCG6",  "2000",  "0.1",  "100",      "2.32",  (1, 2, 4)),
)
_EQUITIES = _instruments(
    ("AAPL",  "190",   "0.01", "1",        "0.005", (10, 50, 100, 250)),
    ("MSFT",  "410",   "0.01", "1",        "0.005", (10, 25, 100)),
    ("NVDA",  "120",   "0.01", "1",        "0.005", (20, 100, 300)),
)
_EUROPE = _instruments(
    ("FDAX",  "18000", "0.5",  "25",       "1.90",  (1, 1, 2)),
    ("SAP",   "180",   "0.02", "1",        "0.01",  (10, 40, 100)),
)
# fmt: on
#: (account name, currency, type, instruments); account n of a user uses entry n % 3.
ACCOUNT_KINDS: tuple[tuple[str, str, str, tuple[Instrument, ...]], ...] = (
    ("Futures", "USD", "futures", _FUTURES),
    ("Equities", "USD", "margin", _EQUITIES),
    ("Europe", "EUR", "futures", _EUROPE),
)


def stable_int(*parts: object) -> int:
    """A 64-bit integer from ``parts`` that is the same in every process (unlike ``hash``)."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


@attrs.frozen(kw_only=True)
class SimAccount:
    """One simulated account: its identity and how its ``n_trades`` trades are spread in time."""

    id: str
    name: str
    currency: str
    type: str
    instruments: tuple[Instrument, ...]
    base: int  # per-account random base: trade i uses random.Random(base + i)
    n_trades: int
    history_end: dt.datetime
    history_days: int
    open_trades: int

    @property
    def history_start(self) -> dt.datetime:
        """When the account's history begins."""
        return self.history_end - dt.timedelta(days=self.history_days)

    def wire(self) -> dict[str, Any]:
        """The account as the sim API lists it."""
        return {"id": self.id, "name": self.name, "currency": self.currency, "type": self.type}


def wire_trade(
    account: SimAccount,
    index: int,
    *,
    version: int = 1,
    updated_at: dt.datetime | None = None,
    malformed: bool = False,
) -> dict[str, Any]:
    """Trade ``index`` (0-based) of ``account`` in the sim API's wire format, at ``version``.

    Version 1 is the trade as first booked; each later version is a correction by the broker: a
    trade still open at version 1 gets closed, a closed one gets its commission re-billed.
    ``malformed`` garbles one field the way broken broker records do (the record keeps its id).
    """
    h = _mix(account.base + index)
    g = _mix(h)
    instrument = account.instruments[h % len(account.instruments)]
    long = (h >> 8) % 100 < 55
    quantity = instrument.quantities[(h >> 16) % len(instrument.quantities)]
    span = account.history_days * 86400 / max(account.n_trades, 1)
    offset = int(span * index) + (h >> 24) % max(int(span / 2), 1)
    opened_at = account.history_start + dt.timedelta(seconds=offset)
    closed_at = opened_at + dt.timedelta(seconds=30 + g % (4 * 3600 - 30))
    base_ticks = instrument.price_ticks
    entry_ticks = base_ticks + base_ticks * ((g >> 16) % 2000 - 1000) // 10000
    exit_ticks = entry_ticks + (g >> 32) % 121 - 60
    entry, exit_ = instrument.tick * entry_ticks, instrument.tick * exit_ticks
    commission = max((instrument.fee * quantity).quantize(_CENT), _MIN_FEE)
    sign = 1 if long else -1
    pnl: Decimal | None = (
        instrument.tick * ((exit_ticks - entry_ticks) * quantity * sign) * instrument.multiplier
    ).quantize(_CENT)
    is_open = version == 1 and index >= account.n_trades - account.open_trades
    if version > 1:
        commission += Decimal("0.25") * (version - 1)  # the broker re-billed exchange fees
    record: dict[str, Any] = {
        "id": f"{account.id}-{index + 1:08d}",
        "account": account.id,
        "instrument": instrument.symbol,
        "side": "BUY" if long else "SELL",
        "quantity": str(quantity),
        "openedAt": _iso(opened_at),
        "closedAt": None if is_open else _iso(closed_at),
        "entryPrice": str(entry),
        "exitPrice": None if is_open else str(exit_),
        "commission": str(commission),
        "realizedPnl": None if is_open or pnl is None else str(pnl),
        "currency": account.currency,
        "version": version,
        "updatedAt": _iso(updated_at or (opened_at if is_open else closed_at)),
    }
    if malformed:
        field, value = [
            ("entryPrice", "N/A"),
            ("openedAt", opened_at.replace(tzinfo=None).isoformat()),  # a time without its zone
            ("quantity", "0"),
        ][index % 3]
        record[field] = value
    return record
