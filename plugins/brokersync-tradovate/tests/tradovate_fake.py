"""A fake of the Tradovate REST API, written from ../shared/reference/brokers.md §1 for these tests.

It is as awkward as the reference says the real one is:

* ``POST /auth/accesstokenrequest`` (path case-insensitive): a bad login is HTTP 200 with
  ``errorText``; ``tickets_before_login`` logins get a penalty ticket (``p-ticket``/``p-time``) and
  only the identical body plus the ticket passes; after ``CAPTCHA_AFTER`` bad logins every login
  gets a captcha ticket for an hour; a user status other than Active is reported in the answer.
* ``GET /auth/renewaccesstoken`` extends the session (no new session); tokens expire after
  ``token_minutes`` on the fake's clock, then every call answers 401.
* entities: ``/{entity}/list|item|items|deps|ldeps``; numbers are JSON doubles (``5850.5``,
  ``71.37``); a fillFee's id is its fill's id.
* Tradovate pairs fills FIFO itself (``fillPair``), keeps ``position`` (netPos/netPrice), marks a
  busted fill and its pairs ``active: false`` with a ``TradeCancel`` executionReport, and a
  corrected one with ``TradeCorrect``.
* failures: a 429 with an empty body locks the user out for an hour (``lock_out``), 423 before it
  (``warn``), random faults (503, a 500 with an HTML page, timeouts, penalty tickets on GET),
  307 redirects to an organisation host.

``FakeTradovate.transport()`` serves it in-process; ``FakeServer`` serves it on loopback.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import random
import secrets
import threading
from decimal import Decimal
from typing import Any

import httpx

BASE_URL = "https://demo.tradovateapi.com/v1"
CAPTCHA_AFTER = 3
USER = {"username": "ann", "password": "pw-Ann-7731", "cid": "4127", "sec": "sec-9f81c2d7-ann"}
T0 = dt.datetime(2026, 11, 2, 14, 30, tzinfo=dt.UTC)

# name: (valuePerPoint, tickSize, currency, contract name, fee per contract by component)
PRODUCTS: dict[str, tuple[str, str, str, str]] = {
    "ES": ("50", "0.25", "USD", "ESZ6"),
    "NQ": ("20", "0.25", "USD", "NQZ6"),
    "MES": ("5", "0.25", "USD", "MESZ6"),
    "CL": ("1000", "0.01", "USD", "CLF7"),
}
# Per contract: commission, clearingFee, exchangeFee, nfaFee (sums not divisible by 3 or 7).
FEES: dict[str, tuple[str, str, str, str]] = {
    "ES": ("0.59", "0.19", "1.38", "0.02"),
    "NQ": ("0.59", "0.19", "1.38", "0.02"),
    "MES": ("0.25", "0.07", "0.35", "0.02"),
    "CL": ("0.59", "0.19", "1.50", "0.02"),
}


def stamp(when: dt.datetime) -> str:
    """Tradovate's timestamp text: UTC, milliseconds, ``Z``."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def trade_date(when: dt.datetime) -> dict[str, int]:
    """The CME session date: a fill at or after 22:00 UTC belongs to the next day's session."""
    day = when.date() + dt.timedelta(days=1) if when.hour >= 22 else when.date()
    return {"year": day.year, "month": day.month, "day": day.day}


def dumps(body: Any) -> bytes:
    """JSON with every Decimal written as a double, the way Tradovate's server writes numbers."""
    return json.dumps(body, default=float).encode()


class FakeTradovate:
    """The fake API's state and request handler."""

    def __init__(self, *, fault_rate: float = 0.0, seed: int = 7, token_minutes: int = 80) -> None:
        self.offset = dt.timedelta(0)
        self.random = random.Random(seed)
        self.fault_rate = fault_rate
        self.token_minutes = token_minutes
        self.user_status = "Active"
        self.user_id = 15460
        self.tokens: dict[str, dt.datetime] = {}
        self.logins = 0
        self.renewals = 0
        self.login_attempts: list[dict[str, Any]] = []
        self.bad_logins = 0
        self.captcha_until: dt.datetime | None = None
        self.tickets_before_login = 0
        self.tickets: dict[str, dict[str, Any]] = {}
        self.locked_until: dt.datetime | None = None
        self.warn_next = False
        self.redirect_to: str | None = None
        self.requests: list[httpx.Request] = []
        self.faults: list[str] = []
        self.max_ids = 100
        self.ids = {"order": 300000, "fill": 500000, "fillPair": 700000, "position": 900000, "report": 1100000}
        self.entities: dict[str, dict[int, dict[str, Any]]] = {
            name: {}
            for name in (
                "account",
                "position",
                "order",
                "fill",
                "fillPair",
                "fillFee",
                "executionReport",
                "contract",
                "contractMaturity",
                "product",
                "currency",
            )
        }
        self.lots: dict[int, list[list[Any]]] = {}  # position id -> open lots [fill id, qty left, action, price]
        self.entities["currency"][1] = {"id": 1, "name": "USD", "symbol": "$"}
        for number, (name, (vpp, tick, _currency, contract)) in enumerate(PRODUCTS.items(), start=1):
            self.entities["product"][10 + number] = {
                "id": 10 + number,
                "name": name,
                "productType": "Futures",
                "description": f"{name} futures",
                "exchangeId": 1,
                "currencyId": 1,
                "valuePerPoint": Decimal(vpp),
                "tickSize": Decimal(tick),
                "status": "Verified",
            }
            self.entities["contractMaturity"][40 + number] = {
                "id": 40 + number,
                "productId": 10 + number,
                "expirationMonth": 202612 if name != "CL" else 202701,
                "expirationDate": "2026-12-18T14:30:00.000Z" if name != "CL" else "2026-12-21T19:30:00.000Z",
                "isFront": True,
            }
            self.entities["contract"][2000 + number] = {
                "id": 2000 + number,
                "name": contract,
                "contractMaturityId": 40 + number,
            }

    # -- time ----------------------------------------------------------------------------------

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += dt.timedelta(seconds=seconds)

    # -- building the book ---------------------------------------------------------------------

    def _next(self, kind: str) -> int:
        self.ids[kind] += 1
        return self.ids[kind]

    def add_account(self, account_id: int, name: str) -> None:
        self.entities["account"][account_id] = {
            "id": account_id,
            "name": name,
            "userId": self.user_id,
            "accountType": "Customer",
            "active": True,
            "clearingHouseId": 2,
            "riskCategoryId": 2,
            "autoLiqProfileId": 2,
            "marginAccountType": "Speculator",
            "legalStatus": "Individual",
            "archived": False,
            "timestamp": "2026-01-05T10:00:00.000Z",
        }

    def contract_id(self, product: str) -> int:
        return next(c["id"] for c in self.entities["contract"].values() if c["name"] == PRODUCTS[product][3])

    def _position(self, account_id: int, contract_id: int, when: dt.datetime) -> dict[str, Any]:
        for position in self.entities["position"].values():
            if position["accountId"] == account_id and position["contractId"] == contract_id:
                return position
        position_id = self._next("position")
        position = {
            "id": position_id,
            "accountId": account_id,
            "contractId": contract_id,
            "timestamp": stamp(when),
            "tradeDate": trade_date(when),
            "netPos": 0,
            "netPrice": None,
            "bought": 0,
            "boughtValue": Decimal(0),
            "sold": 0,
            "soldValue": Decimal(0),
            "prevPos": 0,
        }
        self.entities["position"][position_id] = position
        self.lots[position_id] = []
        return position

    def trade(
        self, account_id: int, product: str, action: str, fills: list[tuple[int, str]], at: dt.datetime
    ) -> list[int]:
        """One order of ``action`` filled in ``fills`` ((qty, price text), one second apart); returns the fill ids."""
        contract_id = self.contract_id(product)
        order_id = self._next("order")
        self.entities["order"][order_id] = {
            "id": order_id,
            "accountId": account_id,
            "contractId": contract_id,
            "timestamp": stamp(at),
            "action": action,
            "ordStatus": "Filled",
            "admin": False,
        }
        position = self._position(account_id, contract_id, at)
        created = []
        for index, (qty, price) in enumerate(fills):
            when = at + dt.timedelta(seconds=index, milliseconds=125 * (index + 1))
            fill_id = self._next("fill")
            self.entities["fill"][fill_id] = {
                "id": fill_id,
                "orderId": order_id,
                "contractId": contract_id,
                "timestamp": stamp(when),
                "tradeDate": trade_date(when),
                "action": action,
                "qty": qty,
                "price": Decimal(price),
                "active": True,
                "finallyPaired": 0,
                "external": False,
            }
            fee = {"id": fill_id}
            for name, value in zip(("commission", "clearingFee", "exchangeFee", "nfaFee"), FEES[product], strict=True):
                fee[name] = Decimal(value) * qty
                fee[f"{name}CurrencyId"] = 1
            self.entities["fillFee"][fill_id] = fee
            self._report(order_id, account_id, contract_id, "Trade", when, action, qty, price)
            self._pair(position, fill_id, action, qty, Decimal(price))
            created.append(fill_id)
        return created

    def _report(
        self,
        order_id: int,
        account_id: int,
        contract_id: int,
        kind: str,
        when: dt.datetime,
        action: str,
        qty: int,
        price: Any,
    ) -> None:
        report_id = self._next("report")
        self.entities["executionReport"][report_id] = {
            "id": report_id,
            "commandId": order_id + 1,
            "name": kind,
            "accountId": account_id,
            "contractId": contract_id,
            "timestamp": stamp(when),
            "tradeDate": trade_date(when),
            "orderId": order_id,
            "execType": kind,
            "action": action,
            "lastQty": qty,
            "lastPx": Decimal(str(price)) if price is not None else None,
            "text": "Busted by the exchange" if kind == "TradeCancel" else None,
        }

    def _pair(self, position: dict[str, Any], fill_id: int, action: str, qty: int, price: Decimal) -> None:
        lots = self.lots[position["id"]]
        left = qty
        while left and lots and lots[0][2] != action:
            lot = lots[0]
            matched = min(left, lot[1])
            buy, sell = (fill_id, lot[0]) if action == "Buy" else (lot[0], fill_id)
            pair_id = self._next("fillPair")
            self.entities["fillPair"][pair_id] = {
                "id": pair_id,
                "positionId": position["id"],
                "buyFillId": buy,
                "sellFillId": sell,
                "qty": matched,
                "buyPrice": self.entities["fill"][buy]["price"],
                "sellPrice": self.entities["fill"][sell]["price"],
                "active": True,
            }
            lot[1] -= matched
            left -= matched
            if lot[1] == 0:
                lots.pop(0)
        if left:
            lots.append([fill_id, left, action, price])
        if action == "Buy":
            position["bought"] += qty
            position["boughtValue"] += price * qty
        else:
            position["sold"] += qty
            position["soldValue"] += price * qty
        self._net(position)

    def _net(self, position: dict[str, Any]) -> None:
        lots = self.lots[position["id"]]
        net = sum(lot[1] if lot[2] == "Buy" else -lot[1] for lot in lots)
        position["netPos"] = net
        position["netPrice"] = (sum(lot[1] * lot[3] for lot in lots) / abs(net)) if net else None

    def bust(self, fill_id: int, at: dt.datetime) -> None:
        """The exchange busts a fill: it and its pairs become inactive; the other fills' lots reopen."""
        fill = self.entities["fill"][fill_id]
        fill["active"] = False
        order = self.entities["order"][fill["orderId"]]
        for pair in self.entities["fillPair"].values():
            if fill_id in (pair["buyFillId"], pair["sellFillId"]) and pair["active"]:
                pair["active"] = False
                other = pair["sellFillId"] if pair["buyFillId"] == fill_id else pair["buyFillId"]
                other_fill = self.entities["fill"][other]
                self.lots[pair["positionId"]].insert(0, [other, pair["qty"], other_fill["action"], other_fill["price"]])
                self._net(self.entities["position"][pair["positionId"]])
        self._report(
            order["id"], order["accountId"], order["contractId"], "TradeCancel", at, fill["action"], fill["qty"], None
        )

    def correct(self, fill_id: int, price: str, at: dt.datetime) -> None:
        """The exchange corrects a fill's price: its pairs take the new price."""
        fill = self.entities["fill"][fill_id]
        fill["price"] = Decimal(price)
        for pair in self.entities["fillPair"].values():
            if pair["buyFillId"] == fill_id:
                pair["buyPrice"] = Decimal(price)
            if pair["sellFillId"] == fill_id:
                pair["sellPrice"] = Decimal(price)
        order = self.entities["order"][fill["orderId"]]
        self._report(
            order["id"], order["accountId"], order["contractId"], "TradeCorrect", at, fill["action"], fill["qty"], price
        )

    # -- failure switches ----------------------------------------------------------------------

    def lock_out(self) -> None:
        """Tradovate locks the user out for an hour: every request answers 429 with an empty body."""
        self.locked_until = self.now() + dt.timedelta(hours=1)

    def warn(self) -> None:
        """The next request answers 423 (the warning before the lockout)."""
        self.warn_next = True

    # -- serving -------------------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        route = path[path.index("/v1/") + 4 :] if "/v1/" in path else path.lstrip("/")
        if self.locked_until is not None and self.now() < self.locked_until:
            return httpx.Response(429, request=request)
        if self.warn_next:
            self.warn_next = False
            return httpx.Response(423, request=request)
        if route.lower() == "auth/accesstokenrequest" and request.method == "POST":
            return self._json(request, self._login(json.loads(request.content)))
        if self.redirect_to and request.url.host != self.redirect_to:
            target = request.url.copy_with(host=self.redirect_to, scheme="https", port=None)
            return httpx.Response(307, headers={"Location": str(target)}, request=request)
        user = self._bearer(request)
        if user is None:
            return httpx.Response(401, text="Access is denied", request=request)
        if route.lower() == "auth/renewaccesstoken":
            return self._json(request, self._renew(request))
        fault = self._fault(request)
        if fault is not None:
            return fault
        entity, _, operation = route.partition("/")
        if entity not in self.entities or not operation:
            return httpx.Response(404, text="Not found", request=request)
        return self._json(request, self._entities(entity, operation, request.url.params))

    def _json(self, request: httpx.Request, body: Any) -> httpx.Response:
        return httpx.Response(200, content=dumps(body), headers={"Content-Type": "application/json"}, request=request)

    def _login(self, body: dict[str, Any]) -> dict[str, Any]:
        self.login_attempts.append(dict(body))
        now = self.now()
        if self.captcha_until is not None and now < self.captcha_until:
            return {"p-ticket": secrets.token_hex(8), "p-time": 3600, "p-captcha": True}
        ticket = body.pop("p-ticket", None)
        if ticket is not None:
            original = self.tickets.pop(ticket, None)
            if original != body:  # a ticket is only good for the identical body
                return {"errorText": "Invalid penalty ticket"}
        if self.tickets_before_login > 0:
            self.tickets_before_login -= 1
            new_ticket = secrets.token_hex(12)
            self.tickets[new_ticket] = dict(body)
            return {"p-ticket": new_ticket, "p-time": 2, "p-captcha": False}
        good = (
            body.get("name") == USER["username"]
            and body.get("password") == USER["password"]
            and str(body.get("cid")) == USER["cid"]
            and body.get("sec") == USER["sec"]
            and bool(body.get("deviceId"))
        )
        if not good:
            self.bad_logins += 1
            if self.bad_logins >= CAPTCHA_AFTER:
                self.captcha_until = now + dt.timedelta(hours=1)
            return {
                "errorText": "Incorrect username or password. "
                "Please try again, noting that passwords are case-sensitive."
            }
        if self.user_status != "Active":
            return {"userStatus": self.user_status, "userId": self.user_id, "name": USER["username"]}
        self.logins += 1
        return self._issue()

    def _issue(self) -> dict[str, Any]:
        token = "tok-" + secrets.token_hex(16)
        expires = self.now() + dt.timedelta(minutes=self.token_minutes)
        self.tokens[token] = expires
        return {
            "accessToken": token,
            "mdAccessToken": "md-" + secrets.token_hex(8),
            "expirationTime": stamp(expires),
            "passwordExpirationTime": "2027-06-01T00:00:00.000Z",
            "userStatus": "Active",
            "userId": self.user_id,
            "name": USER["username"],
            "hasLive": False,
            "outdatedTaC": False,
        }

    def _bearer(self, request: httpx.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ")
        expires = self.tokens.get(token)
        return token if expires is not None and self.now() < expires else None

    def _renew(self, request: httpx.Request) -> dict[str, Any]:
        old = self._bearer(request)
        assert old is not None
        self.renewals += 1
        body = self._issue()
        del self.tokens[old]
        return body

    def _fault(self, request: httpx.Request) -> httpx.Response | None:
        if request.url.params.get("p-ticket"):
            ticket = request.url.params["p-ticket"]
            if self.tickets.pop(ticket, None) is None:
                return self._json(request, {"errorText": "Invalid penalty ticket"})
            return None
        if not self.fault_rate or self.random.random() >= self.fault_rate:
            return None
        kind = self.random.choice(["503", "500", "timeout", "penalty"])
        self.faults.append(kind)
        if kind == "503":
            return httpx.Response(503, json={"errorText": "Service unavailable"}, request=request)
        if kind == "500":
            return httpx.Response(500, text="<html><body>Internal error</body></html>", request=request)
        if kind == "timeout":
            raise httpx.ReadTimeout("fake timeout", request=request)
        ticket = secrets.token_hex(6)
        self.tickets[ticket] = {}
        return self._json(request, {"p-ticket": ticket, "p-time": 1, "p-captcha": False})

    def _entities(self, entity: str, operation: str, params: httpx.QueryParams) -> Any:
        table = self.entities[entity]
        if operation == "list":
            return list(table.values())
        if operation == "item":
            item = table.get(int(params.get("id", "0")))
            return item if item is not None else {"errorText": f"{entity} not found"}
        if operation in ("items", "ldeps"):
            name = "ids" if operation == "items" else "masterids"
            wanted = [int(v) for v in params.get(name, "").split(",") if v]
            if len(wanted) > self.max_ids:
                return {
                    "violations": [{"constraint": "size", "value": len(wanted), "description": f"{name}: too many"}]
                }
            if operation == "items":
                return [table[i] for i in wanted if i in table]
            return [e for e in table.values() if self._master(entity, e) in wanted]
        if operation == "deps":
            master = int(params.get("masterid", "0"))
            return [e for e in table.values() if self._master(entity, e) == master]
        return {"errorText": f"unknown operation {operation}"}

    @staticmethod
    def _master(entity: str, item: dict[str, Any]) -> Any:
        return {
            "position": item.get("accountId"),
            "order": item.get("accountId"),
            "fillPair": item.get("positionId"),
            "fill": item.get("orderId"),
            "fillFee": item.get("id"),
            "executionReport": item.get("commandId"),
            "contract": item.get("contractMaturityId"),
        }.get(entity)


def standard_book(fake: FakeTradovate) -> FakeTradovate:
    """Two demo accounts; every awkward case in the reference; one open fill; one bust."""
    fake.add_account(70001, "DEMO70001")
    fake.add_account(70002, "DEMO70002")
    a, b = 70001, 70002
    day = T0
    # ES long, 2 contracts, a price with a fraction.
    fake.trade(a, "ES", "Buy", [(2, "5850.5")], day)
    fake.trade(a, "ES", "Sell", [(2, "5852.25")], day + dt.timedelta(minutes=15))
    # NQ short.
    fake.trade(a, "NQ", "Sell", [(1, "20110.75")], day + dt.timedelta(minutes=20))
    fake.trade(a, "NQ", "Buy", [(1, "20101.5")], day + dt.timedelta(minutes=31))
    # ES scale-in: two buys, one sell fill in two pairs.
    fake.trade(a, "ES", "Buy", [(1, "5860.25")], day + dt.timedelta(minutes=40))
    fake.trade(a, "ES", "Buy", [(2, "5861.75")], day + dt.timedelta(minutes=42))
    fake.trade(a, "ES", "Sell", [(3, "5865")], day + dt.timedelta(minutes=50))
    # ES scale-out: one buy fill of 3 in two pairs.
    fake.trade(a, "ES", "Buy", [(3, "5870.75")], day + dt.timedelta(hours=1))
    fake.trade(a, "ES", "Sell", [(1, "5872")], day + dt.timedelta(hours=1, minutes=5))
    fake.trade(a, "ES", "Sell", [(2, "5868.5")], day + dt.timedelta(hours=1, minutes=9))
    # MES partial fills: one order of 5 filled 3 + 2, closed by one sell.
    fake.trade(a, "MES", "Buy", [(3, "5875.25"), (2, "5875.5")], day + dt.timedelta(hours=2))
    fake.trade(a, "MES", "Sell", [(5, "5879.75")], day + dt.timedelta(hours=2, minutes=3))
    # CL after 22:00 UTC: its tradeDate is the next session; a price not exact in binary.
    night = day.replace(hour=22, minute=17, second=41)
    fake.trade(a, "CL", "Buy", [(1, "71.37")], night)
    fake.trade(a, "CL", "Sell", [(1, "71.52")], night + dt.timedelta(minutes=23))
    # A round trip whose exit is busted: the pair is cancelled, the buy is open again.
    fake.trade(a, "NQ", "Buy", [(1, "20120.25")], day + dt.timedelta(hours=3))
    [busted] = fake.trade(a, "NQ", "Sell", [(1, "20135.5")], day + dt.timedelta(hours=3, minutes=2))
    fake.bust(busted, day + dt.timedelta(hours=3, minutes=30))
    # An unpaired open fill.
    fake.trade(a, "MES", "Buy", [(2, "5901.25")], day + dt.timedelta(hours=4))
    # Account B: NQ long, CL short.
    fake.trade(b, "NQ", "Buy", [(2, "20050.25")], day + dt.timedelta(minutes=5))
    fake.trade(b, "NQ", "Sell", [(2, "20061")], day + dt.timedelta(minutes=25))
    fake.trade(b, "CL", "Sell", [(3, "70.93")], day + dt.timedelta(hours=1))
    fake.trade(b, "CL", "Buy", [(3, "70.71")], day + dt.timedelta(hours=1, minutes=44))
    return fake


class FakeServer:
    """Serve a :class:`FakeTradovate` on a loopback port in a background thread (for CLI subprocesses)."""

    def __init__(self, fake: FakeTradovate) -> None:
        self.fake = fake
        self._lock = threading.Lock()
        handler = self._handler()
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                url = f"http://{self.headers.get('Host', '127.0.0.1')}{self.path}"
                request = httpx.Request(self.command, url, headers=dict(self.headers.items()), content=body)
                try:
                    with server._lock:
                        response = server.fake.handle(request)
                        response.read()
                except httpx.TimeoutException:
                    self.close_connection = True
                    return
                self.send_response(response.status_code)
                for name, value in response.headers.items():
                    if name.lower() not in ("content-length", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(response.content)))
                self.end_headers()
                self.wfile.write(response.content)

            do_GET = _serve
            do_POST = _serve

        return Handler

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._thread.join()
        self._httpd.server_close()
