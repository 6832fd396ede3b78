"""The round trips a Tradovate user should see, computed from the fake's entities by the documented rules.

Written apart from the plugin (fractions, not the plugin's Decimal code) so that the tests compare
two independent computations: brokers.md §1.5 (direction from the fills' times, P&L from
valuePerPoint, fees prorated by pair.qty / fill.qty) and the rounding rule in docs/brokers/tradovate.md
(cumulative shares, half up to the cent, so one fill's pieces add up to its fee).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from fractions import Fraction
from typing import Any

from tradovate_fake import FakeTradovate


def cents_half_up(value: Fraction) -> Fraction:
    scaled = value * 100
    sign = -1 if scaled < 0 else 1
    whole = (abs(scaled) * 2 + 1) // 2
    return Fraction(sign * whole, 100)


def as_decimal(value: Fraction) -> Decimal:
    return Decimal(value.numerator) / Decimal(value.denominator)


def utc(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


def expected_trades(fake: FakeTradovate) -> dict[tuple[str, str], dict[str, Any]]:
    """``{(account id, pair id): the trade's fields}`` for every pair that was not busted."""
    e = fake.entities
    fills = e["fill"]
    live = [
        p
        for p in e["fillPair"].values()
        if p["active"] and fills[p["buyFillId"]]["active"] and fills[p["sellFillId"]]["active"]
    ]
    shares: dict[tuple[int, int], Fraction] = {}
    for fill_id, fill in fills.items():
        mine = sorted((p for p in live if fill_id in (p["buyFillId"], p["sellFillId"])), key=lambda p: p["id"])
        fee = e["fillFee"][fill_id]
        total = sum(Fraction(str(fee[k])) for k in ("commission", "clearingFee", "exchangeFee", "nfaFee"))
        done, before = 0, Fraction(0)
        for pair in mine:
            done += pair["qty"]
            upto = cents_half_up(total * done / fill["qty"])
            shares[(pair["id"], fill_id)] = upto - before
            before = upto
    result = {}
    for pair in live:
        position = e["position"][pair["positionId"]]
        contract = e["contract"][position["contractId"]]
        product = e["product"][e["contractMaturity"][contract["contractMaturityId"]]["productId"]]
        buy, sell = fills[pair["buyFillId"]], fills[pair["sellFillId"]]
        bought, sold = utc(buy["timestamp"]), utc(sell["timestamp"])
        long = bought <= sold
        buy_price, sell_price = Fraction(str(pair["buyPrice"])), Fraction(str(pair["sellPrice"]))
        pnl = (sell_price - buy_price) * pair["qty"] * Fraction(str(product["valuePerPoint"]))
        result[(str(position["accountId"]), str(pair["id"]))] = {
            "symbol": contract["name"],
            "direction": "long" if long else "short",
            "opened_at": bought if long else sold,
            "closed_at": sold if long else bought,
            "entry_price": as_decimal(buy_price if long else sell_price),
            "exit_price": as_decimal(sell_price if long else buy_price),
            "quantity": Decimal(pair["qty"]),
            "realized_pnl": as_decimal(pnl),
            "fees": as_decimal(shares[(pair["id"], buy["id"])] + shares[(pair["id"], sell["id"])]),
            "currency": "USD",
        }
    return result


def stored_fields(trade: Any) -> dict[str, Any]:
    return {
        "symbol": trade.symbol,
        "direction": str(trade.direction),
        "opened_at": trade.opened_at,
        "closed_at": trade.closed_at,
        "entry_price": trade.entry_price,
        "exit_price": trade.exit_price,
        "quantity": trade.quantity,
        "realized_pnl": trade.realized_pnl,
        "fees": trade.fees,
        "currency": trade.currency,
    }
