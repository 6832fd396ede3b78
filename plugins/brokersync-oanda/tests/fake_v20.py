"""A fake OANDA v20 REST API for the plugin's tests, written from the reference (brokers.md §3).

The source of truth is each account's **transaction log** (CREATE, TRANSFER_FUNDS, MARKET_ORDER,
ORDER_FILL with tradeOpened / tradeReduced / tradesClosed, DAILY_FINANCING, MARKET_ORDER_REJECT).
Orders are filled the way v20 does it: FIFO accounts net an opposite order against the oldest
open trades of the instrument (closing, reducing, then opening the rest: a reversal), hedging
accounts open a new trade unless a trade is closed explicitly. Trades are never stored: every
``/trades`` answer replays the log, so what the plugin reads is derived independently of it.

Served in-process (:meth:`FakeV20.transport`) or on loopback (:class:`FakeV20Server`) with the
documented behaviour: Bearer token per environment (a token of the other environment gets 401),
403 for an account the token cannot see, ``count`` default 50 and maximum 500, ``beforeID``
inclusive or exclusive (the reference leaves it open: both are served), ``sinceid`` exclusive
and capped, ``idrange`` inclusive, error bodies ``{"errorCode", "errorMessage"}``, every number a
string and every time RFC 3339 with nine fractional digits. Failures can be injected.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
from collections import deque
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from urllib.parse import parse_qsl

import httpx

PRECISION = {"EUR_USD": 5, "USD_JPY": 3, "XAU_USD": 3}
#: Quote currency -> home currency conversion factors the fake applies to realized P&L.
RATES = {
    ("USD", "USD"): Decimal(1),
    ("JPY", "USD"): Decimal("0.0066667"),
    ("USD", "EUR"): Decimal("0.92"),
    ("JPY", "EUR"): Decimal("0.0061333"),
}
CENT4 = Decimal("0.0001")
START = dt.datetime(2026, 3, 2, 7, 0, tzinfo=dt.UTC)
PRACTICE_TOKEN = "practice-token-0123456789abcdef"
LIVE_TOKEN = "live-token-fedcba9876543210"


def rfc3339(moment: dt.datetime, nanos: int) -> str:
    """A v20 time: UTC, nine fractional digits."""
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond:06d}{nanos:03d}Z"


def money(value: Decimal) -> str:
    return str(value.quantize(CENT4, ROUND_HALF_EVEN))


def error(status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
    body: dict[str, str] = {"errorMessage": message}
    if code:
        body["errorCode"] = code
    return httpx.Response(status, json=body, headers=headers)


class FakeAccount:
    def __init__(self, account_id: str, *, currency: str, alias: str, hedging: bool, commission_per_unit: Decimal):
        self.id = account_id
        self.currency = currency
        self.alias = alias
        self.hedging = hedging
        self.commission_per_unit = commission_per_unit
        self.log: list[dict[str, Any]] = []
        self.trades: dict[str, dict[str, Any]] = {}  # replayed from the log, up to ``replayed``
        self.replayed = 0


class FakeV20:
    """The fake API. Build accounts and trade with :meth:`add_account`, :meth:`order`, :meth:`close_trade`."""

    def __init__(
        self,
        *,
        environment: str = "practice",
        sinceid_cap: int = 5,
        before_id_inclusive: bool = True,
        visible: tuple[str, ...] | None = None,
    ) -> None:
        self.environment = environment
        self.token = PRACTICE_TOKEN if environment == "practice" else LIVE_TOKEN
        self.sinceid_cap = sinceid_cap
        self.before_id_inclusive = before_id_inclusive
        self.accounts: dict[str, FakeAccount] = {}
        self.hidden: set[str] = set()  # accounts that exist but the token may not see (403)
        self.requests: list[tuple[str, dict[str, str], dict[str, str]]] = []  # (path, params, headers)
        self._inject: deque[httpx.Response] = deque()
        self._moment = START
        self._nanos = 0
        self.lock = threading.RLock()

    # -- building the log ------------------------------------------------------------------------

    def _tick(self, seconds: int = 37) -> str:
        self._moment += dt.timedelta(seconds=seconds, microseconds=123457)
        self._nanos = (self._nanos + 389) % 1000
        return rfc3339(self._moment, self._nanos)

    def _append(self, account: FakeAccount, kind: str, **fields: Any) -> dict[str, Any]:
        transaction = {
            "id": str(len(account.log) + 1),
            "time": self._tick(),
            "userID": 1435156,
            "accountID": account.id,
            "batchID": str(len(account.log) + 1),
            "type": kind,
            **fields,
        }
        account.log.append(transaction)
        return transaction

    def add_account(
        self,
        account_id: str,
        *,
        currency: str = "USD",
        alias: str = "Primary",
        hedging: bool = False,
        commission_per_unit: Decimal = Decimal(0),
        deposit: Decimal = Decimal(100000),
    ) -> FakeAccount:
        account = FakeAccount(
            account_id, currency=currency, alias=alias, hedging=hedging, commission_per_unit=commission_per_unit
        )
        self.accounts[account_id] = account
        self._append(account, "CREATE", divisionID=4, siteID=101, accountUserID=1435156, homeCurrency=currency)
        self._append(account, "TRANSFER_FUNDS", amount=money(deposit), fundingReason="CLIENT_FUNDING")
        return account

    def order(self, account_id: str, instrument: str, units: int | Decimal, price: str) -> dict[str, Any]:
        """A market order, filled at ``price``: FIFO netting, or a new trade on a hedging account."""
        account = self.accounts[account_id]
        units = Decimal(units)
        order = self._append(
            account, "MARKET_ORDER", instrument=instrument, units=str(units), timeInForce="FOK", reason="CLIENT_ORDER"
        )
        plan: list[tuple[dict[str, Any], Decimal]] = []
        remaining = units
        if not account.hedging:
            for trade in self._open(account, instrument):
                if remaining == 0 or (trade["current"] > 0) == (remaining > 0):
                    continue
                take = min(abs(remaining), abs(trade["current"]))
                plan.append((trade, take.copy_sign(remaining)))
                remaining -= take.copy_sign(remaining)
        return self._fill(account, order, instrument, units, Decimal(price), plan, remaining, "MARKET_ORDER")

    def close_trade(
        self, account_id: str, trade_id: str, price: str, units: int | Decimal | None = None
    ) -> dict[str, Any]:
        """``PUT .../trades/{id}/close``: close all (or ``units``) of one trade, on any account."""
        account = self.accounts[account_id]
        trade = self.trades(account_id)[trade_id]
        current = trade["current"]
        amount = -(abs(Decimal(units)) if units is not None else abs(current)).copy_sign(current)
        order = self._append(
            account,
            "MARKET_ORDER",
            instrument=trade["instrument"],
            units=str(amount),
            reason="TRADE_CLOSE",
            tradeClose={"tradeID": trade_id, "units": "ALL" if units is None else str(abs(Decimal(units)))},
        )
        return self._fill(
            account,
            order,
            trade["instrument"],
            amount,
            Decimal(price),
            [(trade, amount)],
            Decimal(0),
            "MARKET_ORDER_TRADE_CLOSE",
        )

    def reject(self, account_id: str, instrument: str, units: int, reason: str = "INSUFFICIENT_MARGIN") -> None:
        self._append(
            self.accounts[account_id],
            "MARKET_ORDER_REJECT",
            instrument=instrument,
            units=str(units),
            rejectReason=reason,
        )

    def daily_financing(self, account_id: str, rate: Decimal = Decimal("-0.00002")) -> None:
        """Charge (or pay) every open trade ``rate`` x units x open price, in the home currency."""
        account = self.accounts[account_id]
        by_instrument: dict[str, list[dict[str, str]]] = {}
        for trade in self.trades(account_id).values():
            if trade["current"] != 0:
                home = self._home(account, trade["instrument"], abs(trade["current"]) * trade["open_price"] * rate)
                by_instrument.setdefault(trade["instrument"], []).append(
                    {"tradeID": trade["id"], "financing": money(home)}
                )
        if by_instrument:
            self._append(
                account,
                "DAILY_FINANCING",
                financing=money(
                    sum((Decimal(f["financing"]) for fs in by_instrument.values() for f in fs), Decimal(0))
                ),
                accountFinancingMode="DAILY",
                positionFinancings=[
                    {"instrument": name, "openTradeFinancings": entries} for name, entries in by_instrument.items()
                ],
            )

    def _home(self, account: FakeAccount, instrument: str, quote_amount: Decimal) -> Decimal:
        quote = instrument.split("_")[1]
        return (quote_amount * RATES[(quote, account.currency)]).quantize(CENT4, ROUND_HALF_EVEN)

    def _fill(
        self,
        account: FakeAccount,
        order: dict[str, Any],
        instrument: str,
        units: Decimal,
        price: Decimal,
        plan: list[tuple[dict[str, Any], Decimal]],
        opening: Decimal,
        reason: str,
    ) -> dict[str, Any]:
        closed, reduced = [], None
        for trade, amount in plan:
            pl = self._home(account, instrument, (price - trade["open_price"]) * -amount)
            entry = {
                "tradeID": trade["id"],
                "units": str(amount),
                "price": str(price),
                "realizedPL": money(pl),
                "financing": "0.0000",
            }
            if abs(amount) == abs(trade["current"]):
                closed.append(entry)
            else:
                reduced = entry
        commission = (abs(units) * account.commission_per_unit).quantize(CENT4, ROUND_HALF_EVEN)
        fields: dict[str, Any] = {
            "orderID": order["id"],
            "instrument": instrument,
            "units": str(units),
            "requestedUnits": str(units),
            "price": str(price),
            "reason": reason,
            "pl": money(
                sum((Decimal(e["realizedPL"]) for e in [*closed, *([reduced] if reduced else [])]), Decimal(0))
            ),
            "financing": "0.0000",
            "commission": money(commission),
            "guaranteedExecutionFee": "0.0000",
            "halfSpreadCost": "0.0000",
        }
        if closed:
            fields["tradesClosed"] = closed
        if reduced:
            fields["tradeReduced"] = reduced
        if opening:
            fields["tradeOpened"] = {"tradeID": str(len(account.log) + 1), "units": str(opening), "price": str(price)}
        return self._append(account, "ORDER_FILL", **fields)

    # -- the log, replayed ------------------------------------------------------------------------

    def trades(self, account_id: str) -> dict[str, dict[str, Any]]:
        """Every trade of the account by id, replayed from the log (internal fields, Decimal)."""
        account = self.accounts[account_id]
        trades = account.trades
        for tx in account.log[account.replayed :]:
            if tx["type"] == "ORDER_FILL":
                for part in [*tx.get("tradesClosed", []), *([tx["tradeReduced"]] if "tradeReduced" in tx else [])]:
                    trade = trades[part["tradeID"]]
                    trade["current"] += Decimal(part["units"])
                    trade["realized"] += Decimal(part["realizedPL"])
                    trade["closes"].append((abs(Decimal(part["units"])), Decimal(part["price"])))
                    trade["closing_ids"].append(tx["id"])
                    if trade["current"] == 0:
                        trade["close_time"] = tx["time"]
                if "tradeOpened" in tx:
                    opened = tx["tradeOpened"]
                    trades[opened["tradeID"]] = {
                        "id": opened["tradeID"],
                        "instrument": tx["instrument"],
                        "open_price": Decimal(opened["price"]),
                        "open_time": tx["time"],
                        "initial": Decimal(opened["units"]),
                        "current": Decimal(opened["units"]),
                        "realized": Decimal(0),
                        "financing": Decimal(0),
                        "closes": [],
                        "closing_ids": [],
                        "close_time": None,
                    }
            elif tx["type"] == "DAILY_FINANCING":
                for position in tx["positionFinancings"]:
                    for entry in position["openTradeFinancings"]:
                        trades[entry["tradeID"]]["financing"] += Decimal(entry["financing"])
        account.replayed = len(account.log)
        return trades

    def _open(self, account: FakeAccount, instrument: str) -> list[dict[str, Any]]:
        return sorted(
            (t for t in self.trades(account.id).values() if t["instrument"] == instrument and t["current"] != 0),
            key=lambda t: int(t["id"]),
        )

    @staticmethod
    def wire(trade: dict[str, Any]) -> dict[str, Any]:
        """A replayed trade as v20 ``Trade`` JSON."""
        state = "CLOSED" if trade["current"] == 0 else "OPEN"
        body: dict[str, Any] = {
            "id": trade["id"],
            "instrument": trade["instrument"],
            "price": str(trade["open_price"]),
            "openTime": trade["open_time"],
            "state": state,
            "initialUnits": str(trade["initial"]),
            "initialMarginRequired": "0.0000",
            "currentUnits": str(trade["current"]),
            "realizedPL": money(trade["realized"]),
            "financing": money(trade["financing"]),
            "dividendAdjustment": "0.0000",
        }
        if trade["closes"]:
            closed_units = sum((u for u, _ in trade["closes"]), Decimal(0))
            average = sum((u * p for u, p in trade["closes"]), Decimal(0)) / closed_units
            exponent = Decimal(1).scaleb(-PRECISION.get(trade["instrument"], 5) - 1)
            body["averageClosePrice"] = str(average.quantize(exponent, ROUND_HALF_EVEN))
            body["closingTransactionIDs"] = list(trade["closing_ids"])
        if state == "CLOSED":
            body["closeTime"] = trade["close_time"]
        else:
            body["unrealizedPL"] = "0.0000"
            body["marginUsed"] = "0.0000"
        return body

    def closed_trades(self, account_id: str) -> list[dict[str, Any]]:
        """The CLOSED trades as v20 JSON, newest first (what ``/trades?state=CLOSED`` pages through)."""
        return [self.wire(t) for t in self._sorted(account_id) if t["current"] == 0]

    def open_trades(self, account_id: str) -> list[dict[str, Any]]:
        return [self.wire(t) for t in self._sorted(account_id) if t["current"] != 0]

    def _sorted(self, account_id: str) -> list[dict[str, Any]]:
        return sorted(self.trades(account_id).values(), key=lambda t: -int(t["id"]))

    def fills(self, account_id: str) -> list[dict[str, Any]]:
        return [t for t in self.accounts[account_id].log if t["type"] == "ORDER_FILL"]

    # -- HTTP -----------------------------------------------------------------------------------

    def fail_next(self, *responses: httpx.Response) -> None:
        """Answer the next requests with ``responses`` (after checking the token)."""
        self._inject.extend(responses)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def count(self, suffix: str = "") -> int:
        """Requests whose path ends with ``suffix`` (all of them for ``""``)."""
        return sum(1 for path, _, _ in self.requests if path.endswith(suffix))

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            return self._handle(request)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        params = dict(parse_qsl(request.url.query.decode()))
        self.requests.append((path, params, dict(request.headers)))
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return error(401, "Insufficient authorization to perform request.")
        if self._inject:
            return self._inject.popleft()
        if request.method != "GET" or not path.startswith("/v3/accounts"):
            return error(405 if path.startswith("/v3/") else 404, "The request is not supported.")
        parts = path.removeprefix("/v3/").split("/")
        if parts == ["accounts"]:
            listed = [{"id": a, "tags": []} for a in self.accounts if a not in self.hidden]
            return httpx.Response(200, json={"accounts": listed})
        account = self.accounts.get(parts[1])
        if account is None or account.id in self.hidden:
            return error(403, "The provided request was forbidden.")
        last = str(len(account.log))
        rest = parts[2:]
        if rest == ["summary"]:
            return httpx.Response(200, json={"account": self._summary(account), "lastTransactionID": last})
        if rest == ["trades"]:
            return self._trades(account, params, last)
        if rest == ["transactions", "sinceid"]:
            if not params.get("id", "").isdigit():
                return error(400, "The request was missing required data", "INVALID_PARAMETER")
            newer = [t for t in account.log if int(t["id"]) > int(params["id"])][: self.sinceid_cap]
            return httpx.Response(200, json={"transactions": newer, "lastTransactionID": last})
        if rest == ["transactions", "idrange"]:
            low, high = params.get("from", ""), params.get("to", "")
            if not (low.isdigit() and high.isdigit()) or int(high) - int(low) >= 1000:
                return error(400, "Invalid value specified for 'from'/'to'", "INVALID_RANGE")
            types = set(params["type"].split(",")) if params.get("type") else None
            found = [
                t
                for t in account.log
                if int(low) <= int(t["id"]) <= int(high) and (types is None or t["type"] in types)
            ]
            return httpx.Response(200, json={"transactions": found, "lastTransactionID": last})
        return error(404, "The requested resource does not exist.", "NO_SUCH_RESOURCE")

    def _summary(self, account: FakeAccount) -> dict[str, Any]:
        fills = self.fills(account.id)
        pl = sum((Decimal(f["pl"]) for f in fills), Decimal(0))
        commission = sum((Decimal(f["commission"]) for f in fills), Decimal(0))
        financing = sum((Decimal(t["financing"]) for t in account.log if t["type"] == "DAILY_FINANCING"), Decimal(0))
        return {
            "id": account.id,
            "alias": account.alias,
            "currency": account.currency,
            "balance": money(Decimal(100000) + pl - commission + financing),
            "pl": money(pl),
            "commission": money(commission),
            "financing": money(financing),
            "hedgingEnabled": account.hedging,
            "openTradeCount": len(self.open_trades(account.id)),
            "lastTransactionID": str(len(account.log)),
            "createdTime": account.log[0]["time"],
            "createdByUserID": 1435156,
        }

    def _trades(self, account: FakeAccount, params: dict[str, str], last: str) -> httpx.Response:
        count = params.get("count", "50")
        if not count.isdigit() or not 1 <= int(count) <= 500:
            return error(400, "Invalid value specified for 'count'", "INVALID_PARAMETER")
        state = params.get("state", "OPEN")
        trades = [self.wire(t) for t in self._sorted(account.id)]
        if state != "ALL":
            trades = [t for t in trades if t["state"] == state]
        if params.get("ids"):
            wanted = set(params["ids"].split(","))
            trades = [t for t in trades if t["id"] in wanted]
        if params.get("instrument"):
            trades = [t for t in trades if t["instrument"] == params["instrument"]]
        if "beforeID" in params:
            before = int(params["beforeID"])
            trades = [t for t in trades if int(t["id"]) <= before - (0 if self.before_id_inclusive else 1)]
        return httpx.Response(200, json={"trades": trades[: int(count)], "lastTransactionID": last})


class FakeV20Server:
    """Serve a :class:`FakeV20` on a loopback port (for CLI subprocesses)."""

    def __init__(self, fake: FakeV20) -> None:
        self.fake = fake
        fake_ = fake

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def do_GET(self) -> None:
                request = httpx.Request("GET", f"http://loopback{self.path}", headers=dict(self.headers.items()))
                response = fake_.handle(request)
                self.send_response(response.status_code)
                for name, value in response.headers.items():
                    if name.lower() not in ("content-length", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(response.content)))
                self.end_headers()
                self.wfile.write(response.content)

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v3"

    def __enter__(self) -> FakeV20Server:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._thread.join()
        self._httpd.server_close()


def json_body(response: httpx.Response) -> Any:
    return json.loads(response.content)
