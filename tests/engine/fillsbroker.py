"""A fake broker that reports executions (fills), for the pairing tests: its HTTP API and its plugin.

The API keeps an event log per account, like a broker's execution journal:

* ``POST /auth`` {api_key} -> {access_token}; 401 when the key is wrong.
* ``GET /accounts`` -> [{id, currency}].
* ``GET /fills?account=&after=&limit=`` -> {"fills": [...], "busts": [...], "cursor": "<seq>", "more": bool}.
  A fill is re-published (same ``id``, new ``seq``, its old version gone) when the broker corrects
  it; a bust is an event of its own. A fill may carry ``realized`` (the broker's realized P&L of what
  it closed, net of commissions), ``commission_currency`` and ``open_close``. ``after`` returns the
  events with a higher ``seq``. Numbers are JSON strings, as brokers send money; a fill may be
  malformed on purpose (the tests add such rows).

``reports`` picks what the plugin declares: executions for the core to pair (the default), or
round trips with a position snapshot (``positions`` rows) for a broker that pairs by itself;
``account_reports`` overrides it per account (``Account.reports``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

import brokersync
import httpx
from brokersync import (
    Account,
    AuthResult,
    AuthType,
    BrokerMetadata,
    Capabilities,
    CredentialField,
    CursorKind,
    Reports,
    TradePage,
    hookimpl,
)

KEY = "fillsbroker"
BASE_URL = "https://api.fillsbroker.test"
API_KEY = "fk-9d2c4e-secret"
CREDENTIALS = {"api_key": API_KEY}
T0 = dt.datetime(2025, 2, 3, 14, 30, tzinfo=dt.UTC)


class FillsApi:
    """The server side; tests add, correct and bust fills between syncs."""

    def __init__(self, *, accounts: tuple[str, ...] = ("U1",), page_size: int = 3) -> None:
        self.accounts = accounts
        self.page_size = page_size
        self.seq = 0
        self.log: dict[str, list[dict[str, Any]]] = {a: [] for a in accounts}
        self.positions: dict[str, list[dict[str, Any]]] = {a: [] for a in accounts}
        self.requests = 0

    def fill(
        self, account: str, fill_id: str, side: str, quantity: int | str, price: str, minute: int, **extra: Any
    ) -> None:
        """Report (or, for a known id, correct) a fill."""
        self.seq += 1
        record = {
            "seq": self.seq,
            "kind": "fill",
            "id": fill_id,
            "symbol": extra.pop("symbol", "AAPL"),
            "side": side,
            "qty": str(quantity),
            "price": price,
            "time": (T0 + dt.timedelta(minutes=minute)).isoformat().replace("+00:00", "Z"),
            "commission": extra.pop("commission", "0"),
            **extra,
        }
        # a corrected fill is re-published: it leaves its old place in the log for a new one
        self.log[account] = [e for e in self.log[account] if not (e["kind"] == "fill" and e["id"] == fill_id)]
        self.log[account].append(record)

    def bust(self, account: str, fill_id: str) -> None:
        self.seq += 1
        self.log[account].append({"seq": self.seq, "kind": "bust", "id": fill_id, "time": T0.isoformat()})

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if request.url.path == "/auth":
            if json.loads(request.content).get("api_key") != API_KEY:
                return httpx.Response(401, json={"error": "bad key"})
            return httpx.Response(200, json={"access_token": "tok"})
        if request.headers.get("Authorization") != "Bearer tok":
            return httpx.Response(401, json={"error": "no token"})
        if request.url.path == "/accounts":
            return httpx.Response(200, json=[{"id": a, "currency": "USD"} for a in self.accounts])
        if request.url.path == "/fills":
            account = request.url.params["account"]
            after = int(request.url.params.get("after") or 0)
            events = [e for e in self.log[account] if e["seq"] > after][: self.page_size]
            more = (
                bool(events)
                and events[-1]["seq"] < self.seq
                and any(e["seq"] > events[-1]["seq"] for e in self.log[account])
            )
            return httpx.Response(
                200,
                json={
                    "fills": [e for e in events if e["kind"] == "fill"],
                    "busts": [e for e in events if e["kind"] == "bust"],
                    "positions": self.positions[account],
                    "cursor": str(events[-1]["seq"]) if events else (str(after) if after else None),
                    "more": more,
                },
            )
        return httpx.Response(404)


def _execution(fill: dict[str, Any], account: str) -> dict[str, Any]:
    return {
        "broker_execution_id": fill["id"],
        "account_id": account,
        "instrument": {"symbol": fill["symbol"], "currency": "USD", "multiplier": fill.get("multiplier", "1")},
        "side": fill["side"],
        "quantity": fill["qty"],
        "price": fill["price"],
        "executed_at": fill["time"],
        "fees": fill["commission"],
        "raw": fill,
        # optional: the broker's own realized P&L of what the fill closed, its fee currency, its intent
        **{name: fill[key] for key, name in _OPTIONAL.items() if key in fill},
    }


_OPTIONAL = {"realized": "broker_realized_pnl", "commission_currency": "fee_currency", "open_close": "open_close"}


class FillsPlugin:
    def __init__(
        self, reports: Reports = Reports.EXECUTIONS, account_reports: dict[str, Reports] | None = None
    ) -> None:
        self.reports = reports
        self.account_reports = account_reports or {}

    @hookimpl
    def broker_metadata(self) -> BrokerMetadata:
        return BrokerMetadata(
            key=KEY,
            name="Fills Broker",
            auth_type=AuthType.API_KEY,
            credential_fields=(CredentialField(name="api_key", secret=True),),
            environments={"live": BASE_URL},
            capabilities=Capabilities(
                cursor=CursorKind.OPAQUE, reports=self.reports, positions=self.reports is not Reports.EXECUTIONS
            ),
        )

    @hookimpl
    async def authenticate(self, ctx: Any, credentials: Any) -> AuthResult:
        response = await ctx.http.post("/auth", json={"api_key": credentials["api_key"]})
        return AuthResult(access_token=response.json()["access_token"])

    @hookimpl
    async def get_accounts(self, ctx: Any, auth: AuthResult) -> list[Account]:
        response = await ctx.http.get("/accounts", headers={"Authorization": f"Bearer {auth.access_token}"})
        return [
            Account(id=a["id"], currency=a["currency"], reports=self.account_reports.get(a["id"]))
            for a in response.json()
        ]

    @hookimpl
    async def get_trades(
        self, ctx: Any, auth: AuthResult, account: Account, since: dt.datetime | None, cursor: str | None
    ) -> AsyncIterator[TradePage]:
        after = cursor
        while True:
            params = {"account": account.id, **({"after": after} if after else {})}
            response = await ctx.http.get(
                "/fills", params=params, headers={"Authorization": f"Bearer {auth.access_token}"}
            )
            body = response.json()
            executions = [_execution(f, account.id) for f in body["fills"]]
            busts = [{"broker_execution_id": b["id"], "cancelled_at": b["time"]} for b in body["busts"]]
            positions = None
            if (account.reports or self.reports) is not Reports.EXECUTIONS:
                positions = [
                    {"instrument": {"symbol": p["symbol"], "currency": "USD"}, "quantity": p["qty"],
                     "average_price": p["price"]}
                    for p in body["positions"]
                ]  # fmt: skip
            yield TradePage(executions=executions, cancellations=busts, positions=positions, cursor=body["cursor"])
            if not body["more"]:
                return
            after = body["cursor"]


def register(reports: Reports = Reports.EXECUTIONS, account_reports: dict[str, Reports] | None = None) -> None:
    brokersync.register_broker(KEY, FillsPlugin(reports, account_reports), replace=True)


def unregister() -> None:
    brokersync.unregister_broker(KEY)
