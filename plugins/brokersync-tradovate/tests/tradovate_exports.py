"""Tradovate's CSV exports written from the fake's book, for the file tests (laid out as documented)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from zoneinfo import ZoneInfo

from tradovate_fake import FakeTradovate

POSITION_HISTORY = [
    "Position ID", "Timestamp", "Trade Date", "Account", "Contract", "Product", "Product Description",
    "Pair ID", "Buy Fill ID", "Sell Fill ID", "Paired Qty", "Buy Price", "Sell Price", "P/L", "Currency",
    "Bought Timestamp", "Sold Timestamp",
]  # fmt: skip
PERFORMANCE = [
    "symbol", "_priceFormat", "_priceFormatType", "_tickSize", "buyFillId", "sellFillId", "qty", "buyPrice",
    "sellPrice", "pnl", "boughtTimestamp", "soldTimestamp", "duration",
]  # fmt: skip


def local(text: str, zone: str) -> str:
    when = dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC).astimezone(ZoneInfo(zone))
    return when.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def position_history(fake: FakeTradovate, zone: str = "UTC", bom: bool = False) -> str:
    e = fake.entities
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(POSITION_HISTORY)
    for pair in e["fillPair"].values():
        if not pair["active"]:
            continue
        position = e["position"][pair["positionId"]]
        contract = e["contract"][position["contractId"]]
        product = e["product"][e["contractMaturity"][contract["contractMaturityId"]]["productId"]]
        buy, sell = e["fill"][pair["buyFillId"]], e["fill"][pair["sellFillId"]]
        pnl = (pair["sellPrice"] - pair["buyPrice"]) * pair["qty"] * product["valuePerPoint"]
        writer.writerow([
            position["id"], position["timestamp"], "2026-11-02", position["accountId"], contract["name"],
            product["name"], product["description"], pair["id"], buy["id"], sell["id"], pair["qty"],
            pair["buyPrice"], pair["sellPrice"], f"{pnl:.2f}", "USD",
            local(buy["timestamp"], zone), local(sell["timestamp"], zone),
        ])  # fmt: skip
    return ("\ufeff" if bom else "") + out.getvalue()
