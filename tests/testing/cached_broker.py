"""The example plugin reshaped like IBKR's: ``get_accounts`` downloads everything, ``get_trades`` reads it.

:class:`CachedAcme` downloads the whole "statement" (the account list and every account's trades)
in ``get_accounts`` and keeps it in ``ctx.cache``; ``get_trades`` serves the account's trades from
there and downloads only when the cache is empty. So in a sync, ``get_trades`` sends no request at
all: the shape the conformance suite's failure injection must still reach. Each broken variant
mishandles one kind of error on one of those request paths.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from acme_broker import AcmePlugin
from brokersync import Account, AuthResult, CursorKind, TradePage, hookimpl
from brokersync.errors import BrokerError, BrokerRateLimitError, BrokerServerError

_STATEMENT = "acme-statement"

Statement = dict[str, Any]  # {"accounts": [Account], "trades": {account id: [row]}}


class CachedAcme(AcmePlugin):
    """Well-behaved: every error of the download propagates, wherever the download happens."""

    cursor_kind = CursorKind.NONE

    async def download(self, ctx: Any, auth: AuthResult) -> Statement:
        response = await ctx.http.get("accounts", headers=self.headers(auth))
        accounts = [Account(id=a["id"], name=a["name"], currency=a["currency"], raw=a) for a in response.json()]
        trades: dict[str, list[dict[str, Any]]] = {}
        for account in accounts:
            token: str | None = None
            rows = trades.setdefault(account.id, [])
            while True:
                body = await self.fetch_page(ctx, auth, account, self.params(None, token))
                rows.extend(body["trades"])
                token = body["next"]
                if token is None:
                    break
        return {"accounts": accounts, "trades": trades}

    async def statement_for_accounts(self, ctx: Any, auth: AuthResult) -> Statement:
        return await self.download(ctx, auth)

    async def statement_for_trades(self, ctx: Any, auth: AuthResult) -> Statement:
        return await self.download(ctx, auth)

    @hookimpl
    async def get_accounts(self, ctx: Any, auth: AuthResult) -> list[Account]:
        statement = await self.statement_for_accounts(ctx, auth)
        ctx.cache[_STATEMENT] = statement
        return list(statement["accounts"])

    @hookimpl
    async def get_trades(
        self, ctx: Any, auth: AuthResult, account: Account, since: dt.datetime | None, cursor: str | None
    ) -> Any:
        statement = ctx.cache.get(_STATEMENT)
        if statement is None:
            statement = await self.statement_for_trades(ctx, auth)
            ctx.cache[_STATEMENT] = statement
        rows = statement["trades"].get(account.id, [])
        if since is not None:
            rows = [r for r in rows if dt.datetime.fromisoformat(r["closed"]) >= since]
        yield TradePage(records=[self.to_trade(row, account) for row in rows])


class CachedSwallowsRateLimit(CachedAcme):
    """Turns a 429 during the download into an empty statement ("nothing new")."""

    async def download(self, ctx: Any, auth: AuthResult) -> Statement:
        try:
            return await super().download(ctx, auth)
        except BrokerRateLimitError:
            return {"accounts": [], "trades": {}}


class CachedMaps5xxWrong(CachedAcme):
    """Reports a 5xx during the download as a plain RuntimeError."""

    async def download(self, ctx: Any, auth: AuthResult) -> Statement:
        try:
            return await super().download(ctx, auth)
        except BrokerServerError as exc:
            raise RuntimeError(f"statement not available: {exc}") from None


class CachedTradesSwallow(CachedAcme):
    """Correct in get_accounts; swallows every broker error when get_trades downloads by itself."""

    async def statement_for_trades(self, ctx: Any, auth: AuthResult) -> Statement:
        try:
            return await super().statement_for_trades(ctx, auth)
        except BrokerError:
            return {"accounts": [], "trades": {}}


class CachedTradesRateLimitAsException(CachedAcme):
    """Correct in get_accounts; turns a 429 into a bare Exception when get_trades downloads by itself."""

    async def statement_for_trades(self, ctx: Any, auth: AuthResult) -> Statement:
        try:
            return await super().statement_for_trades(ctx, auth)
        except BrokerRateLimitError as exc:
            raise Exception(f"too many requests: {exc}") from None


class EverythingInAuthenticate(CachedAcme):
    """Downloads everything while logging in: no request after authenticate() is left to fail."""

    @hookimpl
    async def authenticate(self, ctx: Any, credentials: Any) -> AuthResult:
        auth = await super().authenticate(ctx, credentials)
        ctx.cache[_STATEMENT] = await self.download(ctx, auth)
        return auth

    @hookimpl
    async def get_accounts(self, ctx: Any, auth: AuthResult) -> list[Account]:
        return list(ctx.cache[_STATEMENT]["accounts"])

    async def statement_for_trades(self, ctx: Any, auth: AuthResult) -> Statement:
        statement: Statement = ctx.cache[_STATEMENT]
        return statement


#: variant -> the rules it must fail (by name).
CACHED_VARIANTS: dict[str, tuple[type[CachedAcme], tuple[str, ...]]] = {
    "CachedSwallowsRateLimit": (CachedSwallowsRateLimit, ("rate-limit-persistent",)),
    "CachedMaps5xxWrong": (CachedMaps5xxWrong, ("error-mapping-5xx",)),
    "CachedTradesSwallow": (
        CachedTradesSwallow,
        ("rate-limit-persistent", "error-mapping-5xx", "error-mapping-401"),
    ),
    "CachedTradesRateLimitAsException": (CachedTradesRateLimitAsException, ("rate-limit-persistent",)),
    "EverythingInAuthenticate": (
        EverythingInAuthenticate,
        ("rate-limit-persistent", "error-mapping-5xx", "error-mapping-401", "rate-limit-wait"),
    ),
}
