"""Ground truth for the end-to-end tests: the fakes' fills, paired by an independent FIFO written here.

The core pairs per instrument, FIFO, in (time, execution id) order, P&L gross in the instrument's
currency times its multiplier, each fill's fee prorated by quantity (half-even to the fee's exponent,
the last piece taking the rest), a round trip's ``fees`` holding only the shares in its own currency
and the others kept per currency (docs/adr/0010-pairing.md); this is a second, plain implementation
of those rules over the fakes' own records, never over what the plugin parsed.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import urllib.parse
from collections import defaultdict
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

from fakes import NOW_MS, FakeBinance, FakeBybit, FakeCoinbase, FakeExchange, FakeKraken, FakeOkx

KEY = {"api_key": "key-1", "secret": "c2VjcmV0LXNlY3JldA=="}
NOW = dt.datetime.fromtimestamp(NOW_MS / 1000, dt.UTC)
EXCHANGES = ("binance", "kraken", "coinbase", "bybit", "okx")


def make_fake(key: str) -> FakeExchange:
    return {"binance": FakeBinance, "kraken": FakeKraken, "coinbase": FakeCoinbase, "bybit": FakeBybit, "okx": FakeOkx}[
        key
    ]()


def credentials(key: str, fake: FakeExchange) -> dict[str, str]:
    """What a user connects with; Binance asks for its other markets and its perpetuals by the optional fields."""
    if key == "coinbase":
        assert isinstance(fake, FakeCoinbase)
        return fake.credentials
    if key == "okx":
        return {**KEY, "password": "pass-phrase-1"}
    if key == "binance":
        return {**KEY, "symbols": "ETH/USDT,ETH/BTC,BTC/USDT:USDT", "market_types": "spot,linear"}
    return dict(KEY)


def _share(fee: Decimal, left: Decimal, taken: Decimal) -> Decimal:
    """The fee share of a piece taking ``taken`` of the ``left`` units still unassigned (``fee`` unassigned)."""
    if taken == left:
        return fee
    step = Decimal(1).scaleb(fee.as_tuple().exponent)  # type: ignore[arg-type]
    return (fee * taken / left).quantize(step, rounding=ROUND_HALF_EVEN)


def fifo(
    truth: list[dict[str, Any]], stored_fees: dict[str, Decimal] | None = None
) -> tuple[dict[str, dict[str, Any]], dict[str, Decimal]]:
    """Round trips by id (``"<opening>><closing>"``) and the signed open quantity per symbol.

    A fee's shares are rounded to the exponent of the fee as the execution carries it: ccxt writes
    numbers its own way (the exchange's ``0.00090`` arrives as ``0.0009``), so ``stored_fees`` (the
    executions' fees as stored, equal in value to the records' ones) gives that exponent.
    """
    by_symbol: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for fill in truth:
        by_symbol[fill["symbol"]].append(fill)
    trips: dict[str, dict[str, Any]] = {}
    open_qty: dict[str, Decimal] = {}
    for symbol, fills in by_symbol.items():
        lots: list[list[Any]] = []  # [id, +1/-1, quantity left, price, fee left, fee currency]
        for fill in sorted(fills, key=lambda f: (f["time"], f["id"])):
            sign = 1 if fill["side"] == "buy" else -1
            left, fee = fill["quantity"], (stored_fees or {}).get(fill["id"], fill["fee"])
            assert fee == fill["fee"]
            while left and lots and lots[0][1] != sign:
                lot = lots[0]
                taken = min(left, lot[2])
                pnl = (fill["price"] - lot[3]) * taken * fill["multiplier"] * lot[1]
                opening, closing = _share(lot[4], lot[2], taken), _share(fee, left, taken)
                fees, other = Decimal(0), defaultdict(Decimal)
                for share, currency in ((opening, lot[5]), (closing, fill["fee_currency"])):
                    if currency == fill["currency"]:
                        fees += share
                    else:
                        other[currency] += share
                trips[f"{lot[0]}>{fill['id']}"] = {
                    "symbol": symbol,
                    "direction": "long" if lot[1] == 1 else "short",
                    "quantity": taken,
                    "entry_price": lot[3],
                    "exit_price": fill["price"],
                    "realized_pnl": pnl,
                    "currency": fill["currency"],
                    "fees": fees,
                    "other_fees": dict(other),
                }
                lot[2] -= taken
                lot[4] -= opening
                left -= taken
                fee -= closing
                if not lot[2]:
                    lots.pop(0)
            if left:
                lots.append([fill["id"], sign, left, fill["price"], fee, fill["fee_currency"]])
        net = sum((lot[2] * lot[1] for lot in lots), Decimal(0))
        if net:
            open_qty[symbol] = net
    return trips, open_qty


def trip_rows(trades: list[Any]) -> dict[str, dict[str, Any]]:
    """Stored round trips in the shape :func:`fifo` gives."""
    return {
        t.broker_trade_id: {
            "symbol": t.symbol,
            "direction": t.direction.value,
            "quantity": t.quantity,
            "entry_price": t.entry_price,
            "exit_price": t.exit_price,
            "realized_pnl": t.realized_pnl,
            "currency": t.currency,
            "fees": t.fees,
            "other_fees": {currency: Decimal(amount) for currency, amount in t.raw.get("other_fees", {}).items()},
        }
        for t in trades
    }


def stored_executions(database: Path, connection_id: str) -> dict[str, tuple[str, Decimal, str | None]]:
    """The executions table of the SQLite file, read as a user's SQL would: id -> (pairing key, fees, fee currency)."""
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT broker_execution_id, instrument_key, fees, fee_currency FROM executions WHERE connection_id = ?",
            (connection_id,),
        ).fetchall()
    return {row[0]: (row[1], Decimal(row[2]), row[3]) for row in rows}


_MARKET = {"binance": "BTCUSDT", "kraken": "XXBTZUSD", "coinbase": "BTC-USD", "bybit": "BTCUSDT", "okx": "BTC-USDT"}


def add_fills(key: str, fake: FakeExchange, times: list[int], first: int) -> list[str]:
    """New spot fills on the fake's BTC market at ``times`` (trades ``first``, ``first + 1``... of :func:`_trade`).

    Returns their execution ids, as the plugin must name them.
    """
    market = _MARKET[key]
    spot = [f for f in fake.fills if f["market"] == market and f.get("category", "spot") == "spot"]
    spot = [f for f in spot if f.get("inst_type", "SPOT") == "SPOT"]
    template = max(spot, key=lambda f: (f["time"], f["n"]))
    ids = []
    for offset, when in enumerate(times):
        i = first + offset
        n = 80_000 + i
        fill = {**template, "n": n, "time": when, **_trade(i)}
        if key == "binance":
            ids.append(f"{market}:{len(spot) + 1 + offset}")  # Binance numbers a symbol's trades from 1
        elif key == "kraken":
            ids.append(f"{market}:T{n:05d}-ABCDE-FGHIJ")
        elif key == "coinbase":
            ids.append(f"{market}:t-{n:06d}")
        elif key == "bybit":
            fill["exec_id"] = f"s-new-{i}"
            ids.append(f"{market}:s-new-{i}")
        else:
            fill.update(bill=9_000_000 + i, fee_ccy=fill["base"] if fill["side"] == "buy" else fill["quote"])
            ids.append(f"{market}:{900_000 + n}")
        fake.fills.append(fill)
    return ids


def _trade(i: int) -> dict[str, str]:
    """Buy 0.5, buy 0.25, sell 2: the sell closes whatever the history left open and more."""
    return [
        {"side": "buy", "qty": "0.5", "price": "42000.5", "fee": "0.0004"},
        {"side": "buy", "qty": "0.25", "price": "42100.25", "fee": "0.0002"},
        {"side": "sell", "qty": "2", "price": "43000.75", "fee": "0.0016"},
    ][i]


def history_starts(key: str, fake: FakeExchange) -> list[int]:
    """Where each fill-history request the fake received begins: ms (Binance: the ``fromId``)."""
    if key == "binance":
        return [int(r.url.params["fromId"]) for r in fake.paths("/myTrades")]
    if key == "kraken":
        forms = [dict(urllib.parse.parse_qsl(r.content.decode())) for r in fake.paths("/TradesHistory")]
        return [int(Decimal(f.get("start", "0")) * 1000) for f in forms]
    if key == "coinbase":
        asks = [r.url.params.get("start_sequence_timestamp") for r in fake.paths("/historical/fills")]
        return [int(dt.datetime.fromisoformat(a.replace("Z", "+00:00")).timestamp() * 1000) if a else 0 for a in asks]
    if key == "bybit":
        return [int(r.url.params.get("startTime", 0)) for r in fake.paths("/v5/execution/list")]
    return [int(r.url.params.get("begin", 0)) for r in fake.paths("/trade/fills-history")]
