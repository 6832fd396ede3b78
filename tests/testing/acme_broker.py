"""A small, well-behaved example broker plugin ("acme") and its fake API, plus broken variants.

The fake API follows a documented-looking contract:

* ``POST /auth/token`` ``{"username", "password"}`` -> ``{"access_token", "expires_in"}`` or 401.
* ``POST /auth/renew`` (Bearer) -> a new token.
* ``GET /accounts`` (Bearer) -> ``[{"id", "name", "currency"}]``.
* ``GET /accounts/{id}/trades?since=&page_token=&limit=`` (Bearer) -> ``{"trades": [...], "next": token|null}``;
  trades are sorted by close time, ``since`` filters on close time (inclusive).

Each broken variant overrides one method of :class:`AcmePlugin` and breaks exactly one rule.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import httpx
from brokersync import (
    Account,
    AuthResult,
    AuthType,
    BrokerMetadata,
    Capabilities,
    CredentialField,
    CursorKind,
    RateLimit,
    Reports,
    RetryPolicy,
    Trade,
    TradePage,
    hookimpl,
)
from brokersync.errors import BrokerAuthError, BrokerError, BrokerRateLimitError

HERE = Path(__file__).parent
BASE_URL = "https://api.acme-broker.test/v1"
USERS = {"demo": "demo-password-123"}
_START = dt.datetime(2024, 3, 1, 14, 30, tzinfo=dt.UTC)


def _trades_for(account_id: str) -> list[dict[str, Any]]:
    trades = []
    for n in range(7):
        opened = _START + dt.timedelta(days=n, minutes=7 * n)
        trades.append(
            {
                "id": f"{account_id}-T{n:03d}",
                "symbol": ["ESH4", "NQH4", "AAPL"][n % 3],
                "side": "buy" if n % 2 == 0 else "sell",
                "opened": opened.isoformat().replace("+00:00", "Z"),
                "closed": (opened + dt.timedelta(minutes=45)).isoformat().replace("+00:00", "Z"),
                "entry": f"{4800 + n}.25",
                "exit": f"{4801 + n}.50",
                "qty": "2",
                "pnl": "125.00",
                "fees": "4.12",
                "currency": "USD",
            }
        )
    return trades


class FakeAcmeApi:
    """The fake broker: deterministic data, the documented auth and paging behaviour."""

    accounts = ({"id": "A1", "name": "Main", "currency": "USD"}, {"id": "A2", "name": "IRA", "currency": "USD"})

    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self.tokens: set[str] = set()

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/v1")
        if path == "/auth/token" and request.method == "POST":
            body = json.loads(request.content)
            if USERS.get(body.get("username")) != body.get("password"):
                return httpx.Response(401, json={"error": "invalid username or password"})
            return self._issue()
        if request.headers.get("Authorization", "").removeprefix("Bearer ") not in self.tokens:
            return httpx.Response(401, json={"error": "invalid or expired token"})
        if path == "/auth/renew" and request.method == "POST":
            return self._issue()
        if path == "/accounts":
            return httpx.Response(200, json=list(self.accounts))
        parts = path.split("/")
        if len(parts) == 4 and parts[1] == "accounts" and parts[3] == "trades":
            return self._trades(parts[2], request.url.params)
        return httpx.Response(404, json={"error": f"no route {path}"})

    def _issue(self) -> httpx.Response:
        token = f"acme-token-{next(self._counter):04d}"
        self.tokens.add(token)
        return httpx.Response(200, json={"access_token": token, "expires_in": 3600})

    def _trades(self, account_id: str, params: httpx.QueryParams) -> httpx.Response:
        if account_id not in {a["id"] for a in self.accounts}:
            return httpx.Response(404, json={"error": f"no account {account_id}"})
        rows = _trades_for(account_id)
        if "since" in params:
            since = dt.datetime.fromisoformat(params["since"])
            rows = [r for r in rows if dt.datetime.fromisoformat(r["closed"]) >= since]
        start = int(params.get("page_token", "0"))
        limit = int(params.get("limit", "3"))
        page = rows[start : start + limit]
        following = start + limit
        return httpx.Response(200, json={"trades": page, "next": str(following) if following < len(rows) else None})


class AcmePlugin:
    """The well-behaved example plugin."""

    retry = RetryPolicy()
    password_secret = True
    description = "Example broker used by the conformance suite's own tests."
    refresh_capability = True
    live_url = BASE_URL
    docs_url = "https://acme-broker.test/docs/api"
    reports = Reports.ROUND_TRIPS
    cursor_kind = CursorKind.TIME

    @hookimpl
    def broker_metadata(self) -> BrokerMetadata:
        return BrokerMetadata(
            key="acme",
            name="Acme Broker",
            description=self.description,
            auth_type=AuthType.PASSWORD,
            credential_fields=[
                CredentialField(name="username", label="Username"),
                CredentialField(name="password", label="Password", secret=self.password_secret),
            ],
            environments={"live": self.live_url},
            capabilities=Capabilities(
                refresh_token=self.refresh_capability, reports=self.reports, cursor=self.cursor_kind
            ),
            rate_limits=[RateLimit(max_requests=60, window_seconds=60)],
            retry=self.retry,
            docs_url=self.docs_url,
        )

    @hookimpl
    async def authenticate(self, ctx: Any, credentials: Any) -> AuthResult:
        response = await ctx.http.post(
            "auth/token", json={"username": credentials["username"], "password": credentials["password"]}
        )
        return self.auth_result(ctx, response.json())

    def auth_result(self, ctx: Any, body: dict[str, Any]) -> AuthResult:
        return AuthResult(
            access_token=body["access_token"], expires_at=ctx.now() + dt.timedelta(seconds=body["expires_in"])
        )

    @hookimpl
    async def refresh_token(self, ctx: Any, auth: AuthResult) -> AuthResult:
        response = await ctx.http.post("auth/renew", headers=self.headers(auth))
        return self.auth_result(ctx, response.json())

    def headers(self, auth: AuthResult) -> dict[str, str]:
        return {"Authorization": f"Bearer {auth.access_token}"}

    @hookimpl
    async def get_accounts(self, ctx: Any, auth: AuthResult) -> list[Account]:
        response = await ctx.http.get("accounts", headers=self.headers(auth))
        return [Account(id=a["id"], name=a["name"], currency=a["currency"], raw=a) for a in response.json()]

    @hookimpl
    async def get_trades(
        self, ctx: Any, auth: AuthResult, account: Account, since: dt.datetime | None, cursor: str | None
    ) -> Any:
        page_token: str | None = cursor
        while True:
            body = await self.fetch_page(ctx, auth, account, self.params(since, page_token))
            yield TradePage(
                records=[self.to_trade(row, account) for row in body["trades"]],
                executions=self.executions(body["trades"], account),
                cursor=self.page_cursor(page_token, body),
            )
            page_token = self.next_token(body, page_token)
            if page_token is None:
                return

    def page_cursor(self, page_token: str | None, body: dict[str, Any]) -> str:
        # Resume after this page: the offset of its first trade plus the trades it holds.
        return str(int(page_token or 0) + len(body["trades"]))

    def executions(self, rows: list[dict[str, Any]], account: Account) -> list[dict[str, Any]]:
        return []

    def params(self, since: dt.datetime | None, page_token: str | None) -> dict[str, str]:
        params = {"limit": "3"}
        if since is not None:
            params["since"] = since.isoformat()
        if page_token is not None:
            params["page_token"] = page_token
        return params

    def next_token(self, body: dict[str, Any], current: str | None) -> str | None:
        return body["next"]

    async def fetch_page(self, ctx: Any, auth: AuthResult, account: Account, params: dict[str, str]) -> Any:
        response = await ctx.http.get(f"accounts/{account.id}/trades", params=params, headers=self.headers(auth))
        return response.json()

    def trade_id(self, row: dict[str, Any]) -> str:
        return str(row["id"])

    def to_trade(self, row: dict[str, Any], account: Account) -> Trade | dict[str, Any]:
        return Trade(
            broker_trade_id=self.trade_id(row),
            account_id=account.id,
            symbol=row["symbol"],
            direction="long" if row["side"] == "buy" else "short",
            opened_at=dt.datetime.fromisoformat(row["opened"]),
            closed_at=dt.datetime.fromisoformat(row["closed"]),
            entry_price=Decimal(row["entry"]),
            exit_price=Decimal(row["exit"]),
            quantity=Decimal(row["qty"]),
            realized_pnl=Decimal(row["pnl"]),
            fees=Decimal(row["fees"]),
            currency=row["currency"],
            raw=row,
        )


# --- broken variants: each breaks exactly one rule ----------------------------------------------


class FloatPrices(AcmePlugin):
    def to_trade(self, row: dict[str, Any], account: Account) -> dict[str, Any]:
        return {
            "broker_trade_id": row["id"],
            "symbol": row["symbol"],
            "direction": "long",
            "opened_at": row["opened"],
            "closed_at": row["closed"],
            "entry_price": float(row["entry"]),
            "exit_price": float(row["exit"]),
            "quantity": row["qty"],
            "currency": row["currency"],
        }


class NaiveTimes(AcmePlugin):
    def to_trade(self, row: dict[str, Any], account: Account) -> dict[str, Any]:
        return {
            "broker_trade_id": row["id"],
            "symbol": row["symbol"],
            "direction": "long",
            "opened_at": row["opened"].removesuffix("Z"),
            "closed_at": row["closed"].removesuffix("Z"),
            "entry_price": row["entry"],
            "quantity": row["qty"],
            "currency": row["currency"],
        }


class DuplicateIds(AcmePlugin):
    def trade_id(self, row: dict[str, Any]) -> str:
        return f"{row['symbol']}-{row['side']}"


class UnstableIds(AcmePlugin):
    def trade_id(self, row: dict[str, Any]) -> str:
        return uuid.uuid4().hex


class IgnoresSince(AcmePlugin):
    def params(self, since: dt.datetime | None, page_token: str | None) -> dict[str, str]:
        return super().params(None, page_token)


class PagingLoop(AcmePlugin):
    def next_token(self, body: dict[str, Any], current: str | None) -> str | None:
        return "3" if body["next"] else None  # never advances past the second page


class OwnClient(AcmePlugin):
    async def fetch_page(self, ctx: Any, auth: AuthResult, account: Account, params: dict[str, str]) -> Any:
        async with httpx.AsyncClient(base_url=ctx.base_url + "/") as client:
            response = await client.get(f"accounts/{account.id}/trades", params=params, headers=self.headers(auth))
            return response.json()


class NoRetry(AcmePlugin):
    retry = RetryPolicy(max_retries=0)


class SwallowsErrors(AcmePlugin):
    async def fetch_page(self, ctx: Any, auth: AuthResult, account: Account, params: dict[str, str]) -> Any:
        try:
            return await super().fetch_page(ctx, auth, account, params)
        except BrokerError:
            return {"trades": [], "next": None}


class SecretNotMarked(AcmePlugin):
    password_secret = False


class WrongAuthError(AcmePlugin):
    @hookimpl
    async def authenticate(self, ctx: Any, credentials: Any) -> AuthResult:
        try:
            return await super().authenticate(ctx, credentials)
        except BrokerAuthError:
            raise ValueError("login failed") from None


class NoDescription(AcmePlugin):
    description = ""


class PlaceholderUrl(AcmePlugin):
    # What the plugin template renders before the author gives the broker's real hosts.
    live_url = "https://api.acme.example/v1"
    docs_url = "https://acme.example/docs/api"


class NoExpiry(AcmePlugin):
    def auth_result(self, ctx: Any, body: dict[str, Any]) -> AuthResult:
        return AuthResult(access_token=body["access_token"])


class RefreshNotDeclared(AcmePlugin):
    refresh_capability = False


class NoRaw(AcmePlugin):
    def to_trade(self, row: dict[str, Any], account: Account) -> Trade | dict[str, Any]:
        trade = super().to_trade(row, account)
        assert isinstance(trade, Trade)
        return attrs.evolve(trade, raw={})


class FloatNoise(AcmePlugin):
    def to_trade(self, row: dict[str, Any], account: Account) -> Trade | dict[str, Any]:
        trade = super().to_trade(row, account)
        assert isinstance(trade, Trade)
        return attrs.evolve(trade, fees=Decimal(float(row["fees"])))


class DuplicateAccounts(AcmePlugin):
    @hookimpl
    async def get_accounts(self, ctx: Any, auth: AuthResult) -> list[Account]:
        accounts = await super().get_accounts(ctx, auth)
        return [*accounts, accounts[0]]


class LaggingCursor(AcmePlugin):
    def page_cursor(self, page_token: str | None, body: dict[str, Any]) -> str:
        return page_token or "0"  # where the page started: resuming fetches it again


class RewindingCursor(AcmePlugin):
    def page_cursor(self, page_token: str | None, body: dict[str, Any]) -> str:
        return str(max(0, int(page_token or 0) - 3))  # one page before this one


class RateLimitAsException(AcmePlugin):
    async def fetch_page(self, ctx: Any, auth: AuthResult, account: Account, params: dict[str, str]) -> Any:
        try:
            return await super().fetch_page(ctx, auth, account, params)
        except BrokerRateLimitError as exc:
            raise Exception(f"too many requests: {exc}") from None


class LogsSecret(AcmePlugin):
    @hookimpl
    async def authenticate(self, ctx: Any, credentials: Any) -> AuthResult:
        logging.getLogger("acme_broker").info("logging in %s with %s", credentials["username"], credentials["password"])
        return await super().authenticate(ctx, credentials)


class PrintsToken(AcmePlugin):
    def headers(self, auth: AuthResult) -> dict[str, str]:
        print(f"using token {auth.access_token}")
        return super().headers(auth)


class BlocksLoop(AcmePlugin):
    async def fetch_page(self, ctx: Any, auth: AuthResult, account: Account, params: dict[str, str]) -> Any:
        time.sleep(0.01)  # "be nice to the API": blocks every other sync in the process
        return await super().fetch_page(ctx, auth, account, params)


class ReportsExecutions(AcmePlugin):
    reports = Reports.EXECUTIONS

    def execution(self, row: dict[str, Any], leg: str, account: Account) -> dict[str, Any]:
        opening = leg == "open"
        buy = (row["side"] == "buy") == opening
        return {
            "broker_execution_id": f"{row['id']}-{leg}",
            "instrument": {"symbol": row["symbol"], "currency": row["currency"]},
            "side": "buy" if buy else "sell",
            "quantity": row["qty"],
            "price": row["entry"] if opening else row["exit"],
            "executed_at": row["opened"] if opening else row["closed"],
            "raw": row,
        }

    def executions(self, rows: list[dict[str, Any]], account: Account) -> list[dict[str, Any]]:
        return [self.execution(row, leg, account) for row in rows for leg in ("open", "close")]


class DuplicateExecutionIds(ReportsExecutions):
    def execution(self, row: dict[str, Any], leg: str, account: Account) -> dict[str, Any]:
        return {**super().execution(row, leg, account), "broker_execution_id": row["id"]}


class SignedExecutionQuantities(ReportsExecutions):
    def execution(self, row: dict[str, Any], leg: str, account: Account) -> dict[str, Any]:
        fill = super().execution(row, leg, account)
        return {**fill, "quantity": f"-{fill['quantity']}" if fill["side"] == "sell" else fill["quantity"]}


class NaiveExecutionTimes(ReportsExecutions):
    def execution(self, row: dict[str, Any], leg: str, account: Account) -> dict[str, Any]:
        fill = super().execution(row, leg, account)
        return {**fill, "executed_at": fill["executed_at"].removesuffix("Z")}


class IgnoresCursor(AcmePlugin):
    cursor_kind = CursorKind.OPAQUE

    @hookimpl
    async def get_trades(
        self, ctx: Any, auth: AuthResult, account: Account, since: dt.datetime | None, cursor: str | None
    ) -> Any:
        # The stored cursor is never passed on: every sync starts over from the first page.
        async for page in super().get_trades(ctx, auth, account, since, None):
            yield page


class GetTradesRaises(AcmePlugin):
    def next_token(self, body: dict[str, Any], current: str | None) -> str | None:
        return body["next_page"]  # the wrong field: KeyError on the first page


class DoesNotLoad(AcmePlugin):
    @hookimpl
    def broker_metadata(self) -> BrokerMetadata:
        raise RuntimeError("metadata needs a config file")


VARIANTS: dict[str, tuple[type[AcmePlugin], str]] = {
    "FloatPrices": (FloatPrices, "decimal-money"),
    "NaiveTimes": (NaiveTimes, "utc-times"),
    "DuplicateIds": (DuplicateIds, "unique-trade-ids"),
    "UnstableIds": (UnstableIds, "stable-trade-ids"),
    "IgnoresSince": (IgnoresSince, "since-honoured"),
    "PagingLoop": (PagingLoop, "pagination-terminates"),
    "OwnClient": (OwnClient, "core-client-only"),
    "NoRetry": (NoRetry, "rate-limit-wait"),
    "SwallowsErrors": (SwallowsErrors, "error-mapping-5xx"),
    "SecretNotMarked": (SecretNotMarked, "secret-fields"),
    "WrongAuthError": (WrongAuthError, "bad-credentials"),
    "NoDescription": (NoDescription, "metadata-complete"),
    "PlaceholderUrl": (PlaceholderUrl, "metadata-complete"),
    "NoExpiry": (NoExpiry, "auth-token"),
    "RefreshNotDeclared": (RefreshNotDeclared, "refresh-token"),
    "NoRaw": (NoRaw, "raw-kept"),
    "FloatNoise": (FloatNoise, "decimal-money"),
    "DuplicateAccounts": (DuplicateAccounts, "accounts-valid"),
    "LaggingCursor": (LaggingCursor, "cursor-advances"),
    "RewindingCursor": (RewindingCursor, "cursor-advances"),
    "RateLimitAsException": (RateLimitAsException, "rate-limit-persistent"),
    "LogsSecret": (LogsSecret, "no-secret-output"),
    "PrintsToken": (PrintsToken, "no-secret-output"),
    "BlocksLoop": (BlocksLoop, "non-blocking-hooks"),
    "DuplicateExecutionIds": (DuplicateExecutionIds, "unique-execution-ids"),
    "SignedExecutionQuantities": (SignedExecutionQuantities, "executions-valid"),
    "NaiveExecutionTimes": (NaiveExecutionTimes, "executions-valid"),
    "IgnoresCursor": (IgnoresCursor, "cursor-resumes"),
    "GetTradesRaises": (GetTradesRaises, "plugin-runs"),
    "DoesNotLoad": (DoesNotLoad, "plugin-runs"),
}


def write_distribution(site: Path, *, name: str = "acme-example", entry: str = "acme_broker:AcmePlugin") -> Path:
    """Write an installed-distribution record (``*.dist-info``) declaring broker ``acme`` into ``site``.

    This is what pip writes when it installs a package; importlib.metadata reads it from sys.path.
    """
    dist = site / f"{name.replace('-', '_')}-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n", encoding="utf-8")
    (dist / "entry_points.txt").write_text(f"[brokersync.brokers]\nacme = {entry}\n", encoding="utf-8")
    return site
