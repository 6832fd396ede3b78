"""The Tradovate exports pass brokersync's file-format conformance suite.

The samples are written from the fake Tradovate's standard book, as this plugin's own tests write
them (``tradovate_exports.py``'s Position History writer and column lists): each export holds
the same fills and pairs the API sync stores.
"""

from __future__ import annotations

import csv
import datetime as dt
import io

from brokersync.testing import FileFormatConformance, FileSample
from tradovate_exports import PERFORMANCE, position_history
from tradovate_fake import FakeTradovate, standard_book


def _book() -> FakeTradovate:
    return standard_book(FakeTradovate())


def position_history_csv() -> bytes:
    return position_history(_book(), bom=True).encode("utf-8")


def _live_pairs(fake: FakeTradovate, account: int) -> list[dict]:
    e = fake.entities
    return [p for p in e["fillPair"].values() if p["active"] and e["position"][p["positionId"]]["accountId"] == account]


def performance_csv() -> bytes:
    fake = _book()
    e = fake.entities
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(PERFORMANCE)
    for pair in _live_pairs(fake, 70001):
        contract = e["contract"][e["position"][pair["positionId"]]["contractId"]]
        buy, sell = e["fill"][pair["buyFillId"]], e["fill"][pair["sellFillId"]]
        writer.writerow([
            contract["name"], "-2", "0", "0.25", buy["id"], sell["id"], pair["qty"], pair["buyPrice"],
            pair["sellPrice"], "$12.50", buy["timestamp"], sell["timestamp"], "5min",
        ])  # fmt: skip
    return out.getvalue().encode("utf-8")


def orders_csv() -> bytes:
    """Each order of the book with its fills, as one row at its average price (Tradovate's Orders tab)."""
    e = _book().entities
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["orderId", "Account", "B/S", "Contract", "Product", "Product Description", "avgPrice",
                     "filledQty", "Fill Time", "Status"])  # fmt: skip
    for order in e["order"].values():
        fills = [f for f in e["fill"].values() if f["orderId"] == order["id"] and f["active"]]
        if not fills:
            continue
        contract = e["contract"][order["contractId"]]
        product = e["product"][e["contractMaturity"][contract["contractMaturityId"]]["productId"]]
        qty = sum(f["qty"] for f in fills)
        average = sum(f["price"] * f["qty"] for f in fills) / qty
        last = max(dt.datetime.strptime(f["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ") for f in fills)
        when = last.strftime("%Y-%m-%d %H:%M:%S")
        writer.writerow([order["id"], order["accountId"], order["action"], contract["name"], product["name"],
                         product["description"], average, qty, when, "Filled"])  # fmt: skip
    return out.getvalue().encode("utf-8")


class TestPositionHistory(FileFormatConformance):
    broker_key = "tradovate"
    format_name = "tradovate-position-history"

    def samples(self) -> list[FileSample]:
        pairs = sum(1 for p in _book().entities["fillPair"].values() if p["active"])
        return [FileSample(data=position_history_csv(), name="Position History.csv", timezone="UTC", trades=pairs)]

    def foreign_samples(self) -> list[bytes]:
        return [performance_csv(), orders_csv()]


class TestPerformance(FileFormatConformance):
    broker_key = "tradovate"
    format_name = "tradovate-performance"

    def samples(self) -> list[FileSample]:
        pairs = len(_live_pairs(_book(), 70001))
        return [
            FileSample(data=performance_csv(), name="Performance.csv", timezone="UTC", account_id="70001", trades=pairs)
        ]

    def foreign_samples(self) -> list[bytes]:
        return [position_history_csv(), orders_csv()]


class TestOrders(FileFormatConformance):
    broker_key = "tradovate"
    format_name = "tradovate-orders"

    def samples(self) -> list[FileSample]:
        return [FileSample(data=orders_csv(), name="Orders.csv", timezone="UTC")]

    def foreign_samples(self) -> list[bytes]:
        return [position_history_csv(), performance_csv()]
