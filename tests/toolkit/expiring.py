"""A broker whose fake API ends sessions in the middle of the pages, and plugins that are only endpoints."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
from brokersync import (
    Account,
    AuthResult,
    AuthType,
    BrokerMetadata,
    Capabilities,
    CredentialField,
    RateLimit,
    RetryPolicy,
    TokenAuth,
    TradePage,
    hookimpl,
)

BASE = "https://api.expiring.test/v1"
START = dt.datetime(2026, 3, 2, 14, 30, tzinfo=dt.UTC)


class ExpiringApi:
    """A broker API whose access tokens stop working after ``token_uses`` requests.

    * ``POST /login`` ``{"user", "password"}`` -> ``{"token", "refresh", "expires_in"}`` or 401;
    * ``POST /refresh`` ``{"refresh"}`` -> a new token, or 401 for an unknown refresh token;
    * ``GET /accounts`` and ``GET /accounts/{id}/trades?cursor=`` (Bearer) -> 401 ``token_expired``
      once the token has served ``token_uses`` requests (the broker ends sessions early).
    """

    def __init__(self, *, trades: int = 40, page_size: int = 5, token_uses: int = 3) -> None:
        self.password = "pw-secret-42"
        self.trades = [
            {
                "id": f"T{n:03d}",
                "symbol": "ES",
                "side": "BUY" if n % 2 else "SELL",
                "opened": (START + dt.timedelta(minutes=10 * n)).isoformat(),
                "closed": (START + dt.timedelta(minutes=10 * n + 5)).isoformat(),
                "entry": f"{5000 + n}.25",
                "exit": f"{5001 + n}.50",
                "qty": "1",
            }
            for n in range(trades)
        ]
        self.page_size = page_size
        self.token_uses = token_uses
        self.uses: dict[str, int] = {}
        self.refresh_tokens: set[str] = set()
        self.logins = 0
        self.refreshes = 0
        self.expired_answers = 0
        self.trade_requests: list[str | None] = []
        self._ids = itertools.count(1)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def _issue(self) -> httpx.Response:
        n = next(self._ids)
        token, refresh = f"tok-{n:03d}", f"ref-{n:03d}"
        self.uses[token] = 0
        self.refresh_tokens.add(refresh)
        return httpx.Response(200, json={"token": token, "refresh": refresh, "expires_in": 3600})

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/v1")
        if path == "/login":
            body = json.loads(request.content)
            if body.get("password") != self.password:
                return httpx.Response(401, json={"error": "bad_credentials"})
            self.logins += 1
            return self._issue()
        if path == "/refresh":
            body = json.loads(request.content)
            if body.get("refresh") not in self.refresh_tokens:
                return httpx.Response(401, json={"error": "bad_refresh"})
            self.refresh_tokens.discard(body["refresh"])
            self.refreshes += 1
            return self._issue()
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.uses or self.uses[token] >= self.token_uses:
            self.expired_answers += 1
            return httpx.Response(401, json={"error": "token_expired"})
        self.uses[token] += 1
        if path == "/accounts":
            return httpx.Response(200, json={"accounts": [{"id": "A1"}]})
        if path == "/accounts/A1/trades":
            start = int(request.url.params.get("cursor", "0"))
            self.trade_requests.append(request.url.params.get("cursor"))
            page = self.trades[start : start + self.page_size]
            following = start + self.page_size
            return httpx.Response(
                200, json={"trades": page, "next": str(following) if following < len(self.trades) else None}
            )
        return httpx.Response(404)


class ExpiringPlugin:
    """A plugin that is only its endpoints: no auth header, no renew-on-401, paging by the core."""

    with_refresh = True

    @hookimpl
    def broker_metadata(self) -> BrokerMetadata:
        return BrokerMetadata(
            key="expiring",
            name="Expiring",
            description="Ends sessions early.",
            auth_type=AuthType.PASSWORD,
            credential_fields=[CredentialField(name="user"), CredentialField(name="password", secret=True)],
            environments={"live": BASE},
            capabilities=Capabilities(refresh_token=self.with_refresh),
            rate_limits=[RateLimit(max_requests=1000, window_seconds=1)],
            retry=RetryPolicy(max_retries=2, initial_delay=0.01, jitter=0.0),
            docs_url="https://expiring.test/docs",
            token_auth=TokenAuth.bearer(),
        )

    def _auth(self, ctx: Any, body: dict[str, Any]) -> AuthResult:
        return AuthResult(
            access_token=body["token"],
            refresh_token=body["refresh"],
            expires_at=ctx.now() + dt.timedelta(seconds=body["expires_in"]),
        )

    @hookimpl
    async def authenticate(self, ctx: Any, credentials: Any) -> AuthResult:
        response = await ctx.http.post("login", json={"user": credentials["user"], "password": credentials["password"]})
        return self._auth(ctx, response.json())

    @hookimpl
    async def get_accounts(self, ctx: Any) -> list[Account]:
        response = await ctx.http.get("accounts")
        return [Account(id=a["id"], raw=a) for a in response.json()["accounts"]]

    @hookimpl
    async def get_trades(self, ctx: Any, account: Account, cursor: str | None) -> AsyncIterator[TradePage]:
        async for page in ctx.http.pages_by_cursor(
            f"accounts/{account.id}/trades", records="trades", next_cursor="next", cursor=cursor
        ):
            yield TradePage(records=[_record(r) for r in page.records], cursor=page.cursor)


class RefreshingPlugin(ExpiringPlugin):
    @hookimpl
    async def refresh_token(self, ctx: Any, auth: AuthResult) -> AuthResult:
        response = await ctx.http.post("refresh", json={"refresh": auth.refresh_token})
        return self._auth(ctx, response.json())


class LoginOnlyPlugin(ExpiringPlugin):
    with_refresh = False


def _record(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "broker_trade_id": row["id"],
        "symbol": row["symbol"],
        "direction": "long" if row["side"] == "BUY" else "short",
        "opened_at": row["opened"],
        "closed_at": row["closed"],
        "entry_price": row["entry"],
        "exit_price": row["exit"],
        "quantity": row["qty"],
        "realized_pnl": str((Decimal(row["exit"]) - Decimal(row["entry"])) * Decimal(row["qty"])),
        "currency": "USD",
        "raw": row,
    }
