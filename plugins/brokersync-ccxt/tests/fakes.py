"""Fakes of five exchanges' HTTP APIs, written from their public API documentation.

Each fake checks the request's signature the way the exchange documents it, serves a fixed,
seeded fill history with several fills sharing one timestamp at a page boundary, pages the way
the exchange pages, and can answer with the exchange's failure modes (``fail_next``).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import time
import urllib.parse
from decimal import Decimal
from typing import Any, ClassVar

import httpx

DAY_MS = 86_400_000
NOW_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z, the tests' clock


def reply(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status, content=json.dumps(body).encode(), headers={"Content-Type": "application/json", **(headers or {})}
    )


def fill_record(
    execution_id: str,
    symbol: str,
    f: dict[str, Any],
    *,
    fee_currency: str,
    currency: str,
    multiplier: str = "1",
) -> dict[str, Any]:
    """What the exchange's fill should become: the ground truth the end-to-end tests compare with."""
    return {
        "id": execution_id,
        "symbol": symbol,
        "side": f["side"],
        "quantity": Decimal(f["qty"]),
        "price": Decimal(f["price"]),
        "time": f["time"],
        "fee": Decimal(f["fee"]),
        "fee_currency": fee_currency,
        "currency": currency,
        "multiplier": Decimal(multiplier),
    }


class FakeExchange:
    """Shared plumbing: request log, scripted failures, the fills served."""

    host = ""

    def __init__(self, *, api_key: str = "key-1", secret: str = "c2VjcmV0LXNlY3JldA==") -> None:
        self.api_key = api_key
        self.secret = secret
        self.requests: list[httpx.Request] = []
        self.failures: list[httpx.Response] = []
        self.fills: list[dict[str, Any]] = []
        #: Pages served, in order: (what was asked without its page cursor, times of the rows served).
        self.served: list[tuple[str, list[int]]] = []

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

    def split_groups(self) -> int:
        """How many page boundaries fell inside a group of rows sharing one timestamp."""
        count = 0
        for (asked, times), (next_asked, next_times) in zip(self.served, self.served[1:], strict=False):
            if asked == next_asked and times and next_times and times[-1] == next_times[0]:
                count += 1
        return count


def spot_history(
    symbols: list[tuple[str, str, str]], *, start_ms: int, count: int, step_ms: int, same_time_at: int, same_time_n: int
) -> list[dict[str, Any]]:
    """A deterministic fill history: (market id, base, quote) round-robin, every fill 0.001 more.

    Per market, two buys then two sells: the later, larger fills close more than is open and reverse
    the position, so pairing meets partial closes, reversals and shorts.
    """
    fills = []
    t = start_ms
    per_market: dict[str, int] = {}
    for i in range(count):
        market_id, base, quote = symbols[i % len(symbols)]
        if not (same_time_at <= i < same_time_at + same_time_n - 1):
            t += step_ms
        k = per_market[market_id] = per_market.get(market_id, -1) + 1
        fills.append(
            {
                "n": i + 1,
                "market": market_id,
                "base": base,
                "quote": quote,
                "time": t,
                "side": "buy" if k % 4 < 2 else "sell",
                "qty": str(Decimal("0.01") + Decimal(i) / 1000),
                "price": str(Decimal("30000.10") + i),
                "fee": str(Decimal("0.00001") * (i + 1)),
            }
        )
    return fills


# --- Binance spot (GET /api/v3/myTrades by symbol, fromId, HMAC-SHA256 query signature) -------------


class FakeBinance(FakeExchange):
    host = "api.binance.com"
    markets: ClassVar[list[tuple[str, str, str]]] = [
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
        self.futures_fills = spot_history(
            self.futures, start_ms=NOW_MS - 60 * DAY_MS, count=1203, step_ms=4_000_000, same_time_at=997, same_time_n=6
        )
        for index, f in enumerate(self.futures_fills):
            # USDⓈ-M numbers its trades per symbol too, apart from spot: the same numbers as BTCUSDT spot fills.
            f["id"] = 900 + index

    def is_public(self, request: httpx.Request) -> bool:
        return request.url.path in ("/api/v3/exchangeInfo", "/fapi/v1/exchangeInfo")

    def route(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/fapi/v1/exchangeInfo":
            return self.futures_info()
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
        if path == "/fapi/v1/userTrades":
            return self.user_trades(params)
        return reply(404, {"code": -1, "msg": f"unknown path {path}"})

    # USDⓈ-M futures: GET /fapi/v1/userTrades (fromId alone, or a time range of at most 7 days)
    futures: ClassVar[list[tuple[str, str, str]]] = [("BTCUSDT", "BTC", "USDT")]
    futures_fills: list[dict[str, Any]]

    def futures_info(self) -> httpx.Response:
        symbols = [
            {
                "symbol": m,
                "pair": m,
                "contractType": "PERPETUAL",
                "deliveryDate": 4133404800000,
                "onboardDate": 1569398400000,
                "status": "TRADING",
                "baseAsset": b,
                "quoteAsset": q,
                "marginAsset": q,
                "pricePrecision": 2,
                "quantityPrecision": 3,
                "baseAssetPrecision": 8,
                "quotePrecision": 8,
                "underlyingType": "COIN",
                "underlyingSubType": [],
                "triggerProtect": "0.0500",
                "liquidationFee": "0.012500",
                "marketTakeBound": "0.05",
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": "556.80", "maxPrice": "4529764", "tickSize": "0.10"},
                    {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "1000", "stepSize": "0.001"},
                ],
                "orderTypes": ["LIMIT", "MARKET"],
                "timeInForce": ["GTC"],
            }
            for m, b, q in self.futures
        ]
        return reply(200, {"timezone": "UTC", "serverTime": NOW_MS, "rateLimits": [], "assets": [], "symbols": symbols})

    def user_trades(self, params: dict[str, str]) -> httpx.Response:
        documented = {"symbol", "orderId", "startTime", "endTime", "fromId", "limit", "recvWindow", "timestamp"}
        unknown = set(params) - documented - {"signature"}
        if unknown:
            return reply(400, {"code": -1104, "msg": f"Not all sent parameters were read: {sorted(unknown)}"})
        if "fromId" in params and ("startTime" in params or "endTime" in params):
            return reply(400, {"code": -4166, "msg": "fromId cannot be sent with startTime or endTime."})
        if (
            "startTime" in params
            and "endTime" in params
            and int(params["endTime"]) - int(params["startTime"]) > 7 * DAY_MS
        ):
            return reply(400, {"code": -4167, "msg": "The time between startTime and endTime cannot exceed 7 days."})
        limit = int(params.get("limit", 500))
        if limit > 1000:
            return reply(400, {"code": -1130, "msg": "Invalid data sent for a parameter: limit"})
        rows = [
            f for f in self.futures_fills if f["market"] == params["symbol"] and f["id"] >= int(params.get("fromId", 0))
        ]
        page = rows[:limit]
        self.served.append(("userTrades " + params["symbol"], [f["time"] for f in page]))
        return reply(
            200,
            [
                {
                    "buyer": f["side"] == "buy",
                    "commission": f["fee"],
                    "commissionAsset": "USDT",
                    "id": f["id"],
                    "maker": False,
                    "orderId": 5000 + f["n"],
                    "price": f["price"],
                    "qty": f["qty"],
                    "quoteQty": str(Decimal(f["qty"]) * Decimal(f["price"])),
                    "realizedPnl": "0",
                    "side": f["side"].upper(),
                    "positionSide": "BOTH",
                    "symbol": f["market"],
                    "time": f["time"],
                }
                for f in page
            ],
        )

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

    def truth(self) -> list[dict[str, Any]]:
        """Every fill the account has: spot (ids per symbol from 1) and USDⓈ-M (``swap:`` in front)."""
        out = []
        counters: dict[str, int] = {}
        for f in self.fills:
            counters[f["market"]] = n = counters.get(f["market"], 0) + 1
            symbol = f"{f['base']}/{f['quote']}"
            out.append(fill_record(f"{f['market']}:{n}", symbol, f, fee_currency="BNB", currency=f["quote"]))
        for f in self.futures_fills:
            symbol = f"{f['base']}/{f['quote']}:{f['quote']}"
            out.append(fill_record(f"swap:{f['market']}:{f['id']}", symbol, f, fee_currency="USDT", currency="USDT"))
        return out


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

    def truth(self) -> list[dict[str, Any]]:
        """Every fill: Kraken's pair names (XXBTZUSD) become ccxt's symbols; the fee is in the quote currency."""
        names = {"XXBT": "BTC", "XETH": "ETH", "ZUSD": "USD", "ZEUR": "EUR"}
        out = []
        for f in self.fills:
            base, quote = names[f["base"]], names[f["quote"]]
            fid = f"{f['market']}:T{f['n']:05d}-ABCDE-FGHIJ"
            out.append(fill_record(fid, f"{base}/{quote}", f, fee_currency=quote, currency=quote))
        return out


# --- Bybit v5 (GET /v5/execution/list by category, 7-day windows, cursor pages, X-BAPI-SIGN) ---------


def _opaque(offset: int, asked: str) -> str:
    """A page cursor the client cannot interpret: the offset with a check of what was asked."""
    check = hashlib.sha256(asked.encode()).hexdigest()[:8]
    return base64.urlsafe_b64encode(f"{offset}:{check}".encode()).decode()


def _offset(cursor: str, asked: str) -> int | None:
    try:
        offset, check = base64.urlsafe_b64decode(cursor.encode()).decode().split(":")
    except ValueError:
        return None
    return int(offset) if check == hashlib.sha256(asked.encode()).hexdigest()[:8] else None


class FakeBybit(FakeExchange):
    """Bybit v5: 7-day windows (``startTime``..``endTime``), 2 years deep, newest first, ``nextPageCursor``."""

    host = "api.bybit.com"
    recv_window = 5000
    page_max = 100

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        spot = spot_history(
            [("BTCUSDT", "BTC", "USDT"), ("ETHUSDT", "ETH", "USDT")],
            start_ms=NOW_MS - 25 * DAY_MS,
            count=330,
            step_ms=6_000_000,
            same_time_at=134,
            same_time_n=8,
        )
        linear = spot_history(
            [("BTCUSDT", "BTC", "USDT")],
            start_ms=NOW_MS - 12 * DAY_MS,
            count=40,
            step_ms=21_600_000,
            same_time_at=0,
            same_time_n=0,
        )
        for f in spot:
            f.update(category="spot", exec_type="Trade", exec_id=f"s-{f['n']:06d}")
        for f in linear:
            f.update(category="linear", exec_type="Trade", exec_id=f"l-{f['n']:06d}", n=10_000 + f["n"])
        # Funding settlements every 8 hours on the open perpetual: executions of execType Funding, not trades.
        funding = [
            {
                **linear[0],
                "n": 20_000 + i,
                "time": NOW_MS - 10 * DAY_MS + i * 28_800_000,
                "exec_type": "Funding",
                "exec_id": f"f-{i:06d}",
                "fee": "0.0123",
            }
            for i in range(20)
        ]
        self.fills = spot + linear + funding
        self.balances = {"USDT": "150.5", "BTC": "0.02"}

    def is_public(self, request: httpx.Request) -> bool:
        return request.url.path.startswith("/v5/market/")

    def ok(self, result: Any) -> httpx.Response:
        return reply(200, {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": NOW_MS})

    def error(self, code: int, msg: str) -> httpx.Response:
        return reply(200, {"retCode": code, "retMsg": msg, "result": {}, "retExtInfo": {}, "time": NOW_MS})

    def route(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        params = dict(request.url.params)
        if path == "/v5/market/instruments-info":
            return self.instruments(params)
        if request.headers.get("X-BAPI-API-KEY") != self.api_key:
            return self.error(10003, "API key is invalid.")
        stamp = request.headers.get("X-BAPI-TIMESTAMP", "")
        window = request.headers.get("X-BAPI-RECV-WINDOW", "")
        payload = stamp + self.api_key + window + request.url.query.decode()
        if (
            request.headers.get("X-BAPI-SIGN")
            != hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        ):
            return self.error(10004, "error sign! origin_string[...]")
        if abs(int(stamp) - int(time.time() * 1000)) > int(window or self.recv_window):
            return self.error(10002, "invalid request, please check your server timestamp or recv_window param")
        if path == "/v5/user/query-api":
            return self.ok({"id": "1", "readOnly": 1, "uta": 1, "unified": 0, "permissions": {}})
        if path == "/v5/account/info":
            return self.ok({"unifiedMarginStatus": 5, "marginMode": "REGULAR_MARGIN"})
        if path == "/v5/account/wallet-balance":
            coins = [
                {"coin": c, "walletBalance": v, "locked": "0", "equity": v, "usdValue": v, "borrowAmount": "0"}
                for c, v in self.balances.items()
            ]
            return self.ok({"list": [{"accountType": "UNIFIED", "totalEquity": "0", "coin": coins}]})
        if path == "/v5/execution/list":
            return self.executions(params)
        return self.error(10001, f"unknown path {path}")

    def instruments(self, params: dict[str, str]) -> httpx.Response:
        category = params.get("category")
        if params.get("status") == "PreLaunch":
            return self.ok({"category": category, "list": [], "nextPageCursor": ""})
        rows: list[dict[str, Any]] = []
        if category == "spot":
            for symbol, base, quote in (("BTCUSDT", "BTC", "USDT"), ("ETHUSDT", "ETH", "USDT")):
                rows.append(
                    {
                        "symbol": symbol,
                        "baseCoin": base,
                        "quoteCoin": quote,
                        "innovation": "0",
                        "status": "Trading",
                        "marginTrading": "both",
                        "lotSizeFilter": {
                            "basePrecision": "0.000001",
                            "quotePrecision": "0.00000001",
                            "minOrderQty": "0.000048",
                            "maxOrderQty": "71.73956243",
                            "minOrderAmt": "1",
                            "maxOrderAmt": "2000000",
                        },
                        "priceFilter": {"tickSize": "0.01"},
                    }
                )
        elif category == "linear":
            rows.append(
                {
                    "symbol": "BTCUSDT",
                    "contractType": "LinearPerpetual",
                    "status": "Trading",
                    "baseCoin": "BTC",
                    "quoteCoin": "USDT",
                    "settleCoin": "USDT",
                    "launchTime": "1585526400000",
                    "deliveryTime": "0",
                    "deliveryFeeRate": "",
                    "priceScale": "2",
                    "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
                    "priceFilter": {"minPrice": "0.10", "maxPrice": "1999999.80", "tickSize": "0.10"},
                    "lotSizeFilter": {
                        "maxOrderQty": "1190.000",
                        "minOrderQty": "0.001",
                        "qtyStep": "0.001",
                        "postOnlyMaxOrderQty": "1190.000",
                        "minNotionalValue": "5",
                    },
                    "unifiedMarginTrade": True,
                    "fundingInterval": 480,
                    "copyTrading": "both",
                }
            )
        return self.ok({"category": category, "list": rows, "nextPageCursor": ""})

    def executions(self, params: dict[str, str]) -> httpx.Response:
        category = params.get("category")
        if category not in ("spot", "linear", "inverse", "option"):
            return self.error(10001, "params error: category is required")
        end = int(params["endTime"]) if "endTime" in params else None
        start = int(params["startTime"]) if "startTime" in params else None
        if start is None and end is None:
            end = NOW_MS
        if start is None:
            start = end - 7 * DAY_MS  # type: ignore[operator]
        if end is None:
            end = start + 7 * DAY_MS
        if end - start > 7 * DAY_MS:
            return self.error(10001, "params error: The time range between startTime and endTime cannot exceed 7 days")
        if start < NOW_MS - 730 * DAY_MS:
            start = NOW_MS - 730 * DAY_MS  # two years is all the API keeps
        limit = int(params.get("limit", 50))
        if not 1 <= limit <= self.page_max:
            return self.error(10001, "params error: limit")
        rows = [
            f
            for f in self.fills
            if f["category"] == category
            and start <= f["time"] <= end
            and params.get("symbol") in (None, f["market"])
            and params.get("execType") in (None, f["exec_type"])
        ]
        rows.sort(key=lambda f: (-f["time"], -f["n"]))  # newest first
        asked = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "cursor")
        offset = 0
        if params.get("cursor"):
            found = _offset(params["cursor"], asked)
            if found is None:
                return self.error(10001, "params error: cursor")
            offset = found
        page = rows[offset : offset + limit]
        self.served.append((asked, [f["time"] for f in page]))
        more = offset + limit < len(rows)
        return self.ok(
            {
                "category": category,
                "nextPageCursor": _opaque(offset + limit, asked) if more else "",
                "list": [
                    {
                        "symbol": f["market"],
                        "orderId": f"o-{f['n']}",
                        "orderLinkId": "",
                        "side": "Buy" if f["side"] == "buy" else "Sell",
                        "orderPrice": f["price"],
                        "orderQty": f["qty"],
                        "leavesQty": "0",
                        "createType": "CreateByUser",
                        "orderType": "Limit",
                        "stopOrderType": "",
                        "execFee": f["fee"],
                        "execId": f["exec_id"],
                        "execPrice": f["price"],
                        "execQty": f["qty"],
                        "execType": f["exec_type"],
                        "execValue": str(Decimal(f["qty"]) * Decimal(f["price"])),
                        "execTime": str(f["time"]),
                        # Spot: a buy pays its fee in the coin bought, a sell in the coin received.
                        "feeCurrency": (f["base"] if f["side"] == "buy" else f["quote"])
                        if f["category"] == "spot"
                        else "",
                        "isMaker": False,
                        "feeRate": "0.001",
                        "markPrice": f["price"],
                        "closedSize": "0",
                        "seq": f["n"],
                    }
                    for f in page
                ],
            }
        )

    def truth(self) -> list[dict[str, Any]]:
        """Every trade (no funding row): spot pairs, and the linear perpetual with ``swap:`` in front of its id."""
        out = []
        for f in self.fills:
            if f["exec_type"] != "Trade":
                continue
            if f["category"] == "spot":
                paid_in = f["base"] if f["side"] == "buy" else f["quote"]
                record = fill_record(
                    f"{f['market']}:{f['exec_id']}", f"{f['base']}/{f['quote']}", f, fee_currency=paid_in,
                    currency=f["quote"],
                )  # fmt: skip
            else:
                record = fill_record(
                    f"swap:{f['market']}:{f['exec_id']}", f"{f['base']}/{f['quote']}:{f['quote']}", f,
                    fee_currency=f["quote"], currency=f["quote"],
                )  # fmt: skip
            out.append(record)
        return out


# --- OKX v5 (GET /api/v5/trade/fills-history: 3 months, ``after`` = bill id, OK-ACCESS-SIGN) ----------


class FakeOkx(FakeExchange):
    """OKX: fills of the last 3 months by ``instType``, newest first, 100 a page, older pages by ``after``."""

    host = "www.okx.com"
    depth_ms = 90 * DAY_MS
    documented = frozenset({"instType", "instId", "ordId", "subType", "after", "before", "begin", "end", "limit"})

    def __init__(self, *, passphrase: str = "pass-phrase-1", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.passphrase = passphrase
        spot = spot_history(
            [("BTC-USDT", "BTC", "USDT"), ("ETH-USDT", "ETH", "USDT")],
            start_ms=NOW_MS - 120 * DAY_MS + 1_234_567,  # no fill exactly on the 90-day edge
            count=260,
            step_ms=36_000_000,
            same_time_at=157,
            same_time_n=8,
        )
        swap = spot_history(
            [("BTC-USDT-SWAP", "BTC", "USDT")],
            start_ms=NOW_MS - 30 * DAY_MS,
            count=30,
            step_ms=DAY_MS - 3_600_000,
            same_time_at=0,
            same_time_n=0,
        )
        for f in spot:
            f.update(inst_type="SPOT", bill=5_000_000 + f["n"], fee_ccy=f["base"] if f["side"] == "buy" else f["quote"])
        for f in swap:
            f.update(inst_type="SWAP", n=1000 + f["n"], bill=6_000_000 + f["n"], fee_ccy="USDT")
        self.fills = spot + swap

    def is_public(self, request: httpx.Request) -> bool:
        return request.url.path.startswith("/api/v5/public/")

    def answer(self, data: list[Any], status: int = 200, code: str = "0", msg: str = "") -> httpx.Response:
        return reply(status, {"code": code, "msg": msg, "data": data})

    def route(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        params = dict(request.url.params)
        if path == "/api/v5/public/instruments":
            return self.instruments(params.get("instType", ""))
        if request.headers.get("OK-ACCESS-KEY") != self.api_key:
            return self.answer([], 401, "50111", "Invalid OK-ACCESS-KEY")
        if request.headers.get("OK-ACCESS-PASSPHRASE") != self.passphrase:
            return self.answer([], 401, "50105", "Invalid OK-ACCESS-PASSPHRASE")
        stamp = request.headers.get("OK-ACCESS-TIMESTAMP", "")
        target = path + (f"?{request.url.query.decode()}" if request.url.query else "")
        message = stamp + request.method + target + request.content.decode()
        signature = base64.b64encode(hmac.new(self.secret.encode(), message.encode(), hashlib.sha256).digest()).decode()
        if request.headers.get("OK-ACCESS-SIGN") != signature:
            return self.answer([], 401, "50113", "Invalid Sign")
        sent = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        if abs(sent - time.time()) > 30:
            return self.answer([], 400, "50102", "Timestamp request expired")
        if path == "/api/v5/account/balance":
            details = [{"ccy": "BTC", "eq": "0.3", "cashBal": "0.3", "availBal": "0.3", "frozenBal": "0"}]
            return self.answer([{"totalEq": "0", "uTime": str(NOW_MS), "details": details}])
        if path == "/api/v5/trade/fills-history":
            return self.fills_history(params)
        return self.answer([], 404, "50000", f"unknown path {path}")

    def instruments(self, inst_type: str) -> httpx.Response:
        base = {"uly": "", "instFamily": "", "ctVal": "", "ctMult": "", "ctValCcy": "", "settleCcy": "", "ctType": ""}
        rows: list[dict[str, Any]] = []
        if inst_type == "SPOT":
            for inst, b, q in (("BTC-USDT", "BTC", "USDT"), ("ETH-USDT", "ETH", "USDT")):
                rows.append(
                    {
                        **base,
                        "instType": "SPOT",
                        "instId": inst,
                        "baseCcy": b,
                        "quoteCcy": q,
                        "tickSz": "0.1",
                        "lotSz": "0.00000001",
                        "minSz": "0.00001",
                        "state": "live",
                        "listTime": "1606468572000",
                        "expTime": "",
                        "lever": "10",
                        "alias": "",
                        "maxLmtSz": "9999999999",
                    }
                )
        elif inst_type == "SWAP":
            rows.append(
                {
                    **base,
                    "instType": "SWAP",
                    "instId": "BTC-USDT-SWAP",
                    "uly": "BTC-USDT",
                    "instFamily": "BTC-USDT",
                    "baseCcy": "",
                    "quoteCcy": "",
                    "settleCcy": "USDT",
                    "ctVal": "0.01",
                    "ctMult": "1",
                    "ctValCcy": "BTC",
                    "ctType": "linear",
                    "tickSz": "0.1",
                    "lotSz": "0.01",
                    "minSz": "0.01",
                    "state": "live",
                    "listTime": "1611916828000",
                    "expTime": "",
                    "lever": "100",
                    "alias": "",
                    "maxLmtSz": "10000",
                }
            )
        return self.answer(rows)

    def fills_history(self, params: dict[str, str]) -> httpx.Response:
        unknown = set(params) - self.documented
        if unknown or params.get("instType") not in ("SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION"):
            return self.answer([], 400, "51000", f"Parameter {', '.join(sorted(unknown)) or 'instType'} error")
        limit = int(params.get("limit", 100))
        if not 1 <= limit <= 100:
            return self.answer([], 400, "51000", "Parameter limit error")
        rows = [
            f
            for f in self.fills
            if f["inst_type"] == params["instType"]
            and f["time"] >= NOW_MS - self.depth_ms  # fills-history keeps 3 months
            and params.get("instId") in (None, f["market"])
            and ("begin" not in params or f["time"] >= int(params["begin"]))
            and ("end" not in params or f["time"] <= int(params["end"]))
            and ("after" not in params or f["bill"] < int(params["after"]))
        ]
        rows.sort(key=lambda f: -f["bill"])  # newest first
        page = rows[:limit]
        asked = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "after")
        self.served.append((asked, [f["time"] for f in page]))
        return self.answer(
            [
                {
                    "instType": f["inst_type"],
                    "instId": f["market"],
                    "tradeId": str(900_000 + f["n"]),
                    "ordId": str(700_000 + f["n"]),
                    "clOrdId": "",
                    "billId": str(f["bill"]),
                    "subType": "1",
                    "tag": "",
                    "fillPx": f["price"],
                    "fillSz": f["qty"],
                    "fillIdxPx": "",
                    "fillPnl": "0",
                    "side": f["side"],
                    "posSide": "net",
                    "execType": "T",
                    "feeCcy": f["fee_ccy"],
                    "fee": "-" + f["fee"],
                    "ts": str(f["time"]),
                    "fillTime": str(f["time"]),
                }
                for f in page
            ]
        )

    def truth(self) -> list[dict[str, Any]]:
        """The fills the API still serves (90 days): spot fees in the currency received, swaps 0.01 BTC a contract."""
        out = []
        for f in self.fills:
            if f["time"] < NOW_MS - self.depth_ms:
                continue
            tid = 900_000 + f["n"]
            if f["inst_type"] == "SPOT":
                record = fill_record(
                    f"{f['market']}:{tid}", f"{f['base']}/{f['quote']}", f, fee_currency=f["fee_ccy"],
                    currency=f["quote"],
                )  # fmt: skip
            else:
                record = fill_record(
                    f"swap:{f['market']}:{tid}", "BTC/USDT:USDT", f, fee_currency="USDT", currency="USDT",
                    multiplier="0.01",
                )  # fmt: skip
            out.append(record)
        return out


# --- Coinbase Advanced Trade (GET /api/v3/brokerage/orders/historical/fills, ``cursor``, ES256 JWT) ----


def _b64url(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def _iso(ms: int) -> str:
    """Coinbase's trade time: RFC 3339 with nanoseconds."""
    moment = dt.datetime.fromtimestamp(ms // 1000, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}000000Z"


def _ms_of(text: str) -> int:
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(moment.timestamp() * 1000)


class FakeCoinbase(FakeExchange):
    """Coinbase Advanced Trade: a CDP key (EC P-256) signs a JWT per request; fills newest first by ``cursor``."""

    host = "api.coinbase.com"
    page_max = 250
    documented = frozenset(
        {
            "order_ids",
            "trade_ids",
            "product_ids",
            "product_id",
            "start_sequence_timestamp",
            "end_sequence_timestamp",
            "retail_portfolio_id",
            "limit",
            "cursor",
            "sort_by",
        }
    )

    def __init__(self, **kwargs: Any) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        ).decode()
        kwargs.setdefault("api_key", "organizations/org-1/apiKeys/key-1")
        kwargs.setdefault("secret", pem)
        super().__init__(**kwargs)
        self.public_key = key.public_key()
        self.fills = spot_history(
            [("BTC-USD", "BTC", "USD"), ("ETH-USD", "ETH", "USD")],
            start_ms=NOW_MS - 700 * DAY_MS,
            count=560,
            step_ms=DAY_MS + 1_111,
            same_time_at=306,
            same_time_n=6,
        )
        self.accepted_keys = {self.api_key: self.public_key}

    @property
    def credentials(self) -> dict[str, str]:
        return {"api_key": self.api_key, "secret": self.secret}

    def is_public(self, request: httpx.Request) -> bool:
        return request.url.path.startswith("/api/v3/brokerage/market/")

    def unauthorized(self) -> httpx.Response:
        return reply(401, {"error": "unauthorized", "message": "Unauthorized", "error_details": ""})

    def verify(self, request: httpx.Request) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, utils

        bearer = request.headers.get("Authorization", "")
        if not bearer.startswith("Bearer ") or bearer.count(".") != 2:
            return False
        head, body, sig = bearer[len("Bearer ") :].split(".")
        header, claims = json.loads(_b64url(head)), json.loads(_b64url(body))
        public = self.accepted_keys.get(header.get("kid"))
        if public is None or header.get("alg") != "ES256" or not header.get("nonce"):
            return False
        raw = _b64url(sig)
        der = utils.encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
        try:
            public.verify(der, f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        now = time.time()
        return (
            claims.get("sub") == header["kid"]
            and claims.get("iss") == "coinbase-cloud"
            and claims.get("aud") == ["retail_rest_api_proxy"]
            and claims["exp"] - claims["nbf"] <= 120
            and claims["nbf"] - 5 <= now <= claims["exp"]
            and claims.get("uri") == f"{request.method} {self.host}{request.url.path}"  # the path, never the query
        )

    def route(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/api/v3/brokerage/market/products":
            return self.products(request.url.params.get("product_type", "SPOT"))
        if not self.verify(request):
            return self.unauthorized()
        if path == "/api/v3/brokerage/transaction_summary":
            fee_tier = {"pricing_tier": "Advanced 1", "taker_fee_rate": "0.008", "maker_fee_rate": "0.006"}
            return reply(200, {"total_volume": 0, "total_fees": 0, "fee_tier": fee_tier})
        if path == "/api/v3/brokerage/accounts":
            accounts = [
                {
                    "uuid": f"acc-{c}",
                    "name": f"{c} Wallet",
                    "currency": c,
                    "available_balance": {"value": v, "currency": c},
                    "hold": {"value": "0", "currency": c},
                    "active": True,
                    "type": "ACCOUNT_TYPE_CRYPTO",
                }
                for c, v in (("BTC", "0.25"), ("USD", "100.00"))
            ]
            return reply(200, {"accounts": accounts, "has_next": False, "cursor": "", "size": len(accounts)})
        if path == "/api/v3/brokerage/orders/historical/fills":
            return self.historical_fills(request)
        return reply(404, {"error": "NOT_FOUND", "message": f"unknown path {path}"})

    def products(self, product_type: str) -> httpx.Response:
        if product_type != "SPOT":
            return reply(200, {"products": [], "num_products": 0})
        products = [
            {
                "product_id": pid,
                "price": "1",
                "base_increment": "0.00000001",
                "quote_increment": "0.01",
                "price_increment": "0.01",
                "base_min_size": "0.00000001",
                "base_max_size": "3400",
                "quote_min_size": "1",
                "quote_max_size": "150000000",
                "status": "online",
                "is_disabled": False,
                "trading_disabled": False,
                "product_type": "SPOT",
                "base_currency_id": base,
                "quote_currency_id": "USD",
                "base_display_symbol": base,
                "quote_display_symbol": "USD",
                "product_venue": "CBE",
            }
            for pid, base in (("BTC-USD", "BTC"), ("ETH-USD", "ETH"))
        ]
        return reply(200, {"products": products, "num_products": len(products)})

    def historical_fills(self, request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        unknown = set(params) - self.documented
        if unknown:
            return reply(400, {"error": "INVALID_ARGUMENT", "message": f"unknown field(s) {sorted(unknown)}"})
        start = _ms_of(params["start_sequence_timestamp"]) if "start_sequence_timestamp" in params else None
        end = _ms_of(params["end_sequence_timestamp"]) if "end_sequence_timestamp" in params else None
        rows = [
            f
            for f in self.fills
            if (start is None or f["time"] >= start)
            and (end is None or f["time"] <= end)
            and params.get("product_id") in (None, f["market"])
        ]
        rows.sort(key=lambda f: (-f["time"], -f["n"]))  # newest first
        limit = min(int(params.get("limit", 100)), self.page_max)  # the server caps its pages
        asked = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "cursor")
        offset = 0
        if params.get("cursor"):
            found = _offset(params["cursor"], asked)
            if found is None:
                return reply(400, {"error": "INVALID_ARGUMENT", "message": "invalid cursor"})
            offset = found
        page = rows[offset : offset + limit]
        self.served.append((asked, [f["time"] for f in page]))
        more = offset + limit < len(rows)
        fills = [
            {
                "entry_id": hashlib.sha256(str(f["n"]).encode()).hexdigest(),
                "trade_id": f"t-{f['n']:06d}",
                "order_id": f"o-{f['n']:06d}",
                "trade_time": _iso(f["time"]),
                "trade_type": "FILL",
                "price": f["price"],
                "size": f["qty"],
                "commission": f["fee"],
                "product_id": f["market"],
                "sequence_timestamp": _iso(f["time"]),
                "liquidity_indicator": "TAKER",
                "size_in_quote": False,
                "user_id": "user-1",
                "side": f["side"].upper(),
                "retail_portfolio_id": "portfolio-1",
            }
            for f in page
        ]
        return reply(200, {"fills": fills, "cursor": _opaque(offset + limit, asked) if more else ""})

    def truth(self) -> list[dict[str, Any]]:
        """Every fill; Coinbase gives the commission without a currency: it is the quote currency (USD)."""
        return [
            fill_record(f"{f['market']}:t-{f['n']:06d}", f"{f['base']}/USD", f, fee_currency="USD", currency="USD")
            for f in self.fills
        ]
