"""Fakes of five exchanges' HTTP APIs, written from their public API documentation.

Each fake checks the request's signature the way the exchange documents it, serves a fixed,
seeded fill history with several fills sharing one timestamp at a page boundary, pages the way
the exchange pages, and can answer with the exchange's failure modes (``fail_next``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.parse
from decimal import Decimal
from typing import Any

import httpx

DAY_MS = 86_400_000
NOW_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z, the tests' clock


def reply(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status, content=json.dumps(body).encode(), headers={"Content-Type": "application/json", **(headers or {})}
    )


class FakeExchange:
    """Shared plumbing: request log, scripted failures, the fills served."""

    host = ""

    def __init__(self, *, api_key: str = "key-1", secret: str = "c2VjcmV0LXNlY3JldA==") -> None:
        self.api_key = api_key
        self.secret = secret
        self.requests: list[httpx.Request] = []
        self.failures: list[httpx.Response] = []
        self.fills: list[dict[str, Any]] = []

    def fail_next(self, *responses: httpx.Response) -> None:
        self.failures.extend(responses)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.failures and not self.is_public(request):
            return self.failures.pop(0)
        return self.route(request)

    def is_public(self, request: httpx.Request) -> bool:
        return False

    def route(self, request: httpx.Request) -> httpx.Response:  # pragma: no cover - overridden
        raise NotImplementedError

    def paths(self, part: str) -> list[httpx.Request]:
        return [r for r in self.requests if part in r.url.path]


def spot_history(
    symbols: list[tuple[str, str, str]], *, start_ms: int, count: int, step_ms: int, same_time_at: int, same_time_n: int
) -> list[dict[str, Any]]:
    """A deterministic fill history: (market id, base, quote) round-robin, every fill 0.001 more."""
    fills = []
    t = start_ms
    for i in range(count):
        market_id, base, quote = symbols[i % len(symbols)]
        if not (same_time_at <= i < same_time_at + same_time_n - 1):
            t += step_ms
        fills.append(
            {
                "n": i + 1,
                "market": market_id,
                "base": base,
                "quote": quote,
                "time": t,
                "side": "buy" if i % 3 else "sell",
                "qty": str(Decimal("0.01") + Decimal(i) / 1000),
                "price": str(Decimal("30000.10") + i),
                "fee": str(Decimal("0.00001") * (i + 1)),
            }
        )
    return fills


# --- Binance spot (GET /api/v3/myTrades by symbol, fromId, HMAC-SHA256 query signature) -------------


class FakeBinance(FakeExchange):
    host = "api.binance.com"
    markets = [
        ("BTCUSDT", "BTC", "USDT"),
        ("ETHUSDT", "ETH", "USDT"),
        ("ETHBTC", "ETH", "BTC"),
        ("XRPUSDT", "XRP", "USDT"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fills = spot_history(
            self.markets[:3],
            start_ms=NOW_MS - 400 * DAY_MS,
            count=3100,
            step_ms=3_600_000,
            same_time_at=2995,
            same_time_n=10,
        )
        self.balances = {"BTC": "0.5", "USDT": "1000.25", "XRP": "0"}

    def is_public(self, request: httpx.Request) -> bool:
        return request.url.path == "/api/v3/exchangeInfo"

    def route(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/api/v3/exchangeInfo":
            return reply(
                200,
                {
                    "timezone": "UTC",
                    "serverTime": NOW_MS,
                    "rateLimits": [],
                    "symbols": [
                        {
                            "symbol": m,
                            "status": "TRADING",
                            "baseAsset": b,
                            "quoteAsset": q,
                            "baseAssetPrecision": 8,
                            "quotePrecision": 8,
                            "quoteAssetPrecision": 8,
                            "isSpotTradingAllowed": True,
                            "isMarginTradingAllowed": False,
                            "permissions": ["SPOT"],
                            "permissionSets": [["SPOT"]],
                            "orderTypes": ["LIMIT", "MARKET"],
                            "filters": [
                                {
                                    "filterType": "PRICE_FILTER",
                                    "minPrice": "0.01",
                                    "maxPrice": "1000000.00",
                                    "tickSize": "0.01",
                                },
                                {
                                    "filterType": "LOT_SIZE",
                                    "minQty": "0.00001",
                                    "maxQty": "9000.0",
                                    "stepSize": "0.00001",
                                },
                            ],
                        }
                        for m, b, q in self.markets
                    ],
                },
            )
        query = request.url.query.decode()
        params = dict(urllib.parse.parse_qsl(query))
        if request.headers.get("X-MBX-APIKEY") != self.api_key:
            return reply(401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."})
        unsigned = query.rsplit("&signature=", 1)[0]
        expected = hmac.new(self.secret.encode(), unsigned.encode(), hashlib.sha256).hexdigest()
        if params.get("signature") != expected:
            return reply(400, {"code": -1022, "msg": "Signature for this request is not valid."})
        if path == "/api/v3/account":
            return reply(
                200,
                {
                    "accountType": "SPOT",
                    "canTrade": True,
                    "updateTime": NOW_MS,
                    "balances": [{"asset": a, "free": v, "locked": "0.00000000"} for a, v in self.balances.items()],
                },
            )
        if path in ("/sapi/v1/capital/deposit/hisrec", "/sapi/v1/capital/withdraw/history"):
            return reply(200, [])
        if path == "/api/v3/myTrades":
            return self.my_trades(params)
        return reply(404, {"code": -1, "msg": f"unknown path {path}"})

    def my_trades(self, params: dict[str, str]) -> httpx.Response:
        if "startTime" in params and "endTime" in params and int(params["endTime"]) - int(params["startTime"]) > DAY_MS:
            return reply(400, {"code": -1127, "msg": "More than 24 hours between startTime and endTime."})
        limit = min(int(params.get("limit", 500)), 1000)
        rows = [f for f in self.fills if f["market"] == params["symbol"]]
        # Binance numbers trades per symbol: the id is the fill's position in its market.
        for index, f in enumerate(rows):
            f["id"] = index + 1
        from_id = int(params.get("fromId", 0))
        rows = [f for f in rows if f["id"] >= from_id][:limit]
        return reply(
            200,
            [
                {
                    "symbol": f["market"],
                    "id": f["id"],
                    "orderId": 1000 + f["n"],
                    "orderListId": -1,
                    "price": f["price"],
                    "qty": f["qty"],
                    "quoteQty": str(Decimal(f["qty"]) * Decimal(f["price"])),
                    "commission": f["fee"],
                    "commissionAsset": "BNB",
                    "time": f["time"],
                    "isBuyer": f["side"] == "buy",
                    "isMaker": False,
                    "isBestMatch": True,
                }
                for f in rows
            ],
        )


# --- Kraken (POST /0/private/TradesHistory, ofs paging of 50, API-Sign, increasing nonce) ------------


class FakeKraken(FakeExchange):
    host = "api.kraken.com"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fills = spot_history(
            [("XXBTZUSD", "XXBT", "ZUSD"), ("XETHZEUR", "XETH", "ZEUR")],
            start_ms=NOW_MS - 100 * DAY_MS,
            count=137,
            step_ms=7_200_000,
            same_time_at=48,
            same_time_n=5,
        )
        self.last_nonce = 0

    def is_public(self, request: httpx.Request) -> bool:
        return request.url.path.startswith("/0/public/")

    def route(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/0/public/AssetPairs":
            pairs = {}
            for pid, base, quote, alt in (
                ("XXBTZUSD", "XXBT", "ZUSD", "XBTUSD"),
                ("XETHZEUR", "XETH", "ZEUR", "ETHEUR"),
            ):
                pairs[pid] = {
                    "altname": alt,
                    "wsname": f"{base[1:]}/{quote[1:]}",
                    "aclass_base": "currency",
                    "base": base,
                    "aclass_quote": "currency",
                    "quote": quote,
                    "pair_decimals": 1,
                    "cost_decimals": 5,
                    "lot_decimals": 8,
                    "lot_multiplier": 1,
                    "fees": [[0, 0.26]],
                    "fees_maker": [[0, 0.16]],
                    "fee_volume_currency": "ZUSD",
                    "margin_call": 80,
                    "margin_stop": 40,
                    "ordermin": "0.0001",
                    "costmin": "0.5",
                    "tick_size": "0.1",
                    "status": "online",
                }
            return reply(200, {"error": [], "result": pairs})
        body = request.content.decode()
        form = dict(urllib.parse.parse_qsl(body))
        if request.headers.get("API-Key") != self.api_key:
            return reply(200, {"error": ["EAPI:Invalid key"]})
        secret = base64.b64decode(self.secret)
        digest = hashlib.sha256((form["nonce"] + body).encode()).digest()
        expected = base64.b64encode(hmac.new(secret, path.encode() + digest, hashlib.sha512).digest()).decode()
        if request.headers.get("API-Sign") != expected:
            return reply(200, {"error": ["EAPI:Invalid signature"]})
        if int(form["nonce"]) <= self.last_nonce:
            return reply(200, {"error": ["EAPI:Invalid nonce"]})
        self.last_nonce = int(form["nonce"])
        if path in ("/0/private/Balance", "/0/private/BalanceEx"):
            return reply(200, {"error": [], "result": {"XXBT": {"balance": "0.1000000000", "hold_trade": "0"}}})
        if path == "/0/private/TradesHistory":
            start = float(form["start"]) * 1000 if "start" in form else None
            rows = [f for f in self.fills if start is None or f["time"] > start]
            rows = sorted(rows, key=lambda f: (-f["time"], -f["n"]))  # the most recent first
            ofs = int(form.get("ofs", 0))
            page = rows[ofs : ofs + 50]
            trades = {
                f"T{f['n']:05d}-ABCDE-FGHIJ": {
                    "ordertxid": f"O{f['n']:05d}-ABCDE-FGHIJ",
                    "postxid": f"P{f['n']:05d}",
                    "pair": f["market"],
                    "time": f["time"] / 1000,
                    "type": f["side"],
                    "ordertype": "limit",
                    "price": f["price"],
                    "cost": str(Decimal(f["qty"]) * Decimal(f["price"])),
                    "fee": f["fee"],
                    "vol": f["qty"],
                    "margin": "0.00000",
                    "misc": "",
                    "trade_id": f["n"],
                    "maker": False,
                }
                for f in page
            }
            return reply(200, {"error": [], "result": {"trades": trades, "count": len(rows)}})
        return reply(200, {"error": ["EGeneral:Unknown method"]})
