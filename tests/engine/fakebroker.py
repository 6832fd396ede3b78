"""A small fake broker for the engine tests: its HTTP API (served by httpx.MockTransport) and its plugin.

The API behaves like a broker with a transaction log (think OANDA transaction ids):

* ``POST /auth`` {username, password} -> {access_token, refresh_token, expires_in}; 401 when wrong.
* ``POST /auth/refresh`` {refresh_token} -> a new token pair; 401 when the refresh token is unknown.
* ``GET /accounts`` (Bearer token) -> [{id, name, currency}]; 401 for an unknown or expired token.
* ``GET /trades?account=&since=&after=&limit=`` -> {"trades": [...], "cancellations": [...],
  "cursor": "<seq>", "more": bool}. Every trade carries ``seq``, bumped whenever the broker changes
  it; a cancellation (bust) is an event with its own ``seq`` in the same log. ``after`` returns
  events with a higher ``seq`` (the opaque cursor); ``since`` keeps trades opened at or after that time.

Everything is deterministic from a seed, so a subprocess can rebuild the same broker.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import secrets
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
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
    TradePage,
    hookimpl,
)

KEY = "fakebroker"
BASE_URL = "https://api.fakebroker.test"
EPOCH = dt.datetime(2024, 1, 2, 14, 30, tzinfo=dt.UTC)
USERNAME = "trader-joe"
PASSWORD = "pw-Sup3rS3cret-7f1e9c2b"  # a distinctive secret the leak tests grep for


class FakeBrokerApi:
    """The fake broker's server side. Tests change its state to simulate the broker's behaviour."""

    def __init__(
        self,
        *,
        accounts: dict[str, int] | None = None,
        seed: int = 7,
        clock: Callable[[], dt.datetime] | None = None,
        token_lifetime: dt.timedelta = dt.timedelta(hours=1),
        page_size: int = 100,
    ) -> None:
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.account_currency = "USD"
        self.password = PASSWORD
        self.token_lifetime = token_lifetime
        self.page_size = page_size
        self.tokens: dict[str, dt.datetime] = {}
        self.refresh_tokens: set[str] = set()
        self.issued: list[str] = []  # every access and refresh token ever issued (for leak tests)
        self.requests: list[httpx.Request] = []
        self.auth_calls = 0
        self.refresh_calls = 0
        self.trade_queries: list[dict[str, str]] = []
        self.fail_trades_for: set[str] = set()  # accounts whose /trades answers 500
        self.hold_file: Path | None = None  # when set, /trades waits until this file exists
        self.on_trades: Callable[[], None] | None = None  # called when a /trades request arrives
        self.invalid: dict[str, list[dict[str, Any]]] = {}
        self.invalid_cancellations: dict[str, list[dict[str, Any]]] = {}  # sent on every first page
        self.cancellations: dict[str, dict[str, dict[str, Any]]] = {}
        self.seq = 0
        self.trades: dict[str, dict[str, dict[str, Any]]] = {}
        for account, count in (accounts or {"ACC-1": 25}).items():
            self.trades[account] = {}
            for index in range(count):
                self.add_trade(account, index, seed=seed)

    # -- state ------------------------------------------------------------------------------------

    def add_trade(
        self, account: str, index: int, *, seed: int = 7, opened: dt.datetime | None = None
    ) -> dict[str, Any]:
        opened = opened or EPOCH + dt.timedelta(minutes=7 * index)
        cents = (index * 7919 + seed * 104729) % 100000
        trade = {
            "broker_trade_id": f"{account}-T{index:06d}",
            "symbol": ("ESZ4", "NQZ4", "CLF5", "6EZ4")[index % 4],
            "direction": "long" if index % 3 else "short",
            "opened_at": opened.isoformat(),
            "closed_at": (opened + dt.timedelta(minutes=3)).isoformat(),
            "entry_price": f"{4000 + cents // 100}.{cents % 100:02d}",
            "exit_price": f"{4001 + cents // 100}.{(cents * 3) % 100:02d}",
            "quantity": str(1 + index % 5),
            "realized_pnl": f"{(cents % 2000) - 1000}.{cents % 100:02d}",
            "fees": "2.09",
            "currency": "USD",
        }
        self._put(account, trade)
        return trade

    def _put(self, account: str, trade: dict[str, Any]) -> None:
        self.seq += 1
        trade["seq"] = self.seq
        self.trades.setdefault(account, {})[trade["broker_trade_id"]] = trade

    def correct(self, account: str, trade_id: str, **changes: Any) -> None:
        """The broker amends a trade (bumps its seq, like a new transaction)."""
        trade = dict(self.trades[account][trade_id])
        trade.update(changes)
        self._put(account, trade)

    def cancel(
        self, account: str, trade_id: str, *, at: dt.datetime | None = None, reason: str | None = "busted"
    ) -> dict[str, Any]:
        """The broker cancels (busts) a trade, known to it or not yet: an event in the log."""
        self.seq += 1
        event = {
            "broker_trade_id": trade_id,
            "cancelled_at": (at or self.clock()).isoformat(),
            "reason": reason,
            "seq": self.seq,
        }
        self.cancellations.setdefault(account, {})[trade_id] = event
        return event

    def expected(self) -> dict[tuple[str, str], dict[str, Any]]:
        """(account, trade id) -> the broker's current version of every trade."""
        return {(a, tid): t for a, trades in self.trades.items() for tid, t in trades.items()}

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    # -- HTTP -------------------------------------------------------------------------------------

    def _issue(self) -> dict[str, Any]:
        access = "tok-" + secrets.token_hex(12)
        refresh = "ref-" + secrets.token_hex(12)
        self.tokens[access] = self.clock() + self.token_lifetime
        self.refresh_tokens.add(refresh)
        self.issued += [access, refresh]
        return {
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": int(self.token_lifetime.total_seconds()),
        }

    def _authorized(self, request: httpx.Request) -> bool:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        expiry = self.tokens.get(token)
        return expiry is not None and expiry > self.clock()

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path == "/auth":
            self.auth_calls += 1
            body = json.loads(request.content)
            if body.get("username") != USERNAME or body.get("password") != self.password:
                return httpx.Response(401, json={"error": "invalid username or password"})
            return httpx.Response(200, json=self._issue())
        if path == "/auth/refresh":
            self.refresh_calls += 1
            refresh = json.loads(request.content).get("refresh_token")
            if refresh not in self.refresh_tokens:
                return httpx.Response(401, json={"error": "unknown refresh token"})
            self.refresh_tokens.discard(refresh)  # rotated: each refresh token works once
            return httpx.Response(200, json=self._issue())
        if not self._authorized(request):
            return httpx.Response(401, json={"error": "invalid or expired token"})
        if path == "/accounts":
            return httpx.Response(
                200,
                json=[
                    {"id": a, "name": f"Account {a}", "currency": self.account_currency} for a in sorted(self.trades)
                ],
            )
        if path == "/trades":
            return await self._trades(request)
        return httpx.Response(404, json={"error": "no such endpoint"})

    async def _trades(self, request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        self.trade_queries.append(params)
        if self.on_trades is not None:
            self.on_trades()
        while self.hold_file is not None and not self.hold_file.exists():
            await asyncio.sleep(0.02)  # a test holds the broker here to keep this sync running
        account = params["account"]
        if account in self.fail_trades_for:
            return httpx.Response(500, json={"error": "internal error"})
        after = int(params.get("after") or 0)
        since = dt.datetime.fromisoformat(params["since"]) if params.get("since") else None
        rows = sorted((t for t in self.trades.get(account, {}).values() if t["seq"] > after), key=lambda t: t["seq"])
        if since is not None:
            rows = [t for t in rows if dt.datetime.fromisoformat(t["opened_at"]) >= since]
        busts = [c for c in self.cancellations.get(account, {}).values() if c["seq"] > after]
        rows = sorted(rows + busts, key=lambda t: t["seq"])
        page = rows[: self.page_size]
        records: list[dict[str, Any]] = [dict(t) for t in page if "cancelled_at" not in t]
        cancellations: list[dict[str, Any]] = [dict(c) for c in page if "cancelled_at" in c]
        if after == 0 and account in self.invalid:
            records += self.invalid[account]
        if after == 0 and account in self.invalid_cancellations:
            cancellations += self.invalid_cancellations[account]
        cursor = str(page[-1]["seq"]) if page else (str(after) if after else None)
        body = {"trades": records, "cursor": cursor, "more": len(rows) > len(page)}
        if cancellations:
            body["cancellations"] = cancellations
        return httpx.Response(200, json=body)


# -- the plugin ------------------------------------------------------------------------------------


def _auth(data: dict[str, Any], ctx: Any) -> AuthResult:
    return AuthResult(
        access_token=data["access_token"],
        refresh_token=data["refresh_token"],
        expires_at=ctx.now() + dt.timedelta(seconds=data["expires_in"]),
    )


class FakeBrokerPlugin:
    """The broker plugin for the fake API (what a third party would ship)."""

    @hookimpl
    def broker_metadata(self) -> BrokerMetadata:
        return BrokerMetadata(
            key=KEY,
            name="Fake Broker",
            auth_type=AuthType.PASSWORD,
            credential_fields=(
                CredentialField(name="username"),
                CredentialField(name="password", secret=True),
            ),
            environments={"live": BASE_URL},
            capabilities=Capabilities(refresh_token=True, cursor=CursorKind.OPAQUE),
        )

    @hookimpl
    async def authenticate(self, ctx: Any, credentials: Any) -> AuthResult:
        response = await ctx.http.post(
            "/auth", json={"username": credentials["username"], "password": credentials["password"]}
        )
        return _auth(response.json(), ctx)

    @hookimpl
    async def refresh_token(self, ctx: Any, auth: AuthResult) -> AuthResult:
        response = await ctx.http.post("/auth/refresh", json={"refresh_token": auth.refresh_token})
        return _auth(response.json(), ctx)

    @hookimpl
    async def get_accounts(self, ctx: Any, auth: AuthResult) -> list[Account]:
        response = await ctx.http.get("/accounts", headers={"Authorization": f"Bearer {auth.access_token}"})
        return [Account(id=a["id"], name=a["name"], currency=a["currency"]) for a in response.json()]

    @hookimpl
    async def get_trades(
        self, ctx: Any, auth: AuthResult, account: Account, since: dt.datetime | None, cursor: str | None
    ) -> AsyncIterator[TradePage]:
        after = cursor
        while True:
            params = {"account": account.id}
            if since is not None:
                params["since"] = since.isoformat()
            if after:
                params["after"] = after
            response = await ctx.http.get(
                "/trades", params=params, headers={"Authorization": f"Bearer {auth.access_token}"}
            )
            body = response.json()
            records = [{k: v for k, v in t.items() if k != "seq"} for t in body["trades"]]
            cancellations = [{k: v for k, v in c.items() if k != "seq"} for c in body.get("cancellations", [])]
            yield TradePage(records=records, cursor=body["cursor"], cancellations=cancellations)
            if not body["more"]:
                return
            after = body["cursor"]


def register() -> None:
    brokersync.register_broker(KEY, FakeBrokerPlugin(), replace=True)


def unregister() -> None:
    brokersync.unregister_broker(KEY)


CREDENTIALS = {"username": USERNAME, "password": PASSWORD}


def as_decimal(value: str) -> Decimal:
    return Decimal(value)
