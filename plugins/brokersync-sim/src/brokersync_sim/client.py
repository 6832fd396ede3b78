"""Talking to the sim API: login, token renewal, accounts and cursor paging.

Every request goes through ``ctx.http``, the core's client, which applies the broker's rate limits,
retries 429/5xx/timeouts (honouring ``Retry-After``), opens the circuit breaker when the broker is
down and turns HTTP failures into :mod:`brokersync.errors`. It also attaches the access token
(the metadata declares ``token_auth=TokenAuth.bearer()``) and, when the broker ends a session early
(401 in the middle of the pages), renews it once through the core and resends the same page. This
module only knows the API: no auth header, no renew-on-401, no broker name on its errors (the core
names the broker and connection on every error a plugin raises).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

from brokersync import AuthResult, BrokerApiError, BrokerAuthError, BrokerContext
from brokersync.parsing import parse_time

__all__ = ["SimClient"]


class SimClient:
    """The sim API, spoken through the core's HTTP client.

    Args:
        ctx: The hook context the core passed to the plugin.
    """

    def __init__(self, ctx: BrokerContext) -> None:
        self.ctx = ctx

    def _token(self, raw: Any) -> AuthResult:
        if not isinstance(raw, dict) or not isinstance(raw.get("access_token"), str) or "expires_at" not in raw:
            raise BrokerApiError("broker 'sim': the token response is missing access_token or expires_at")
        expires = parse_time(str(raw["expires_at"]))
        return AuthResult(access_token=raw["access_token"], expires_at=expires, refresh_token=raw.get("refresh_token"))

    async def login(self, username: str, password: str) -> AuthResult:
        """Exchange username and password for a token (``BrokerAuthError`` if they are wrong)."""
        response = await self.ctx.http.post("auth/token", json={"username": username, "password": password})
        return self._token(response.json())

    async def renew(self, auth: AuthResult) -> AuthResult | None:
        """Get a new access token with ``auth.refresh_token``; ``None`` if there is none or it was revoked."""
        if not auth.refresh_token:
            return None
        try:
            response = await self.ctx.http.post("auth/renew", json={"refresh_token": auth.refresh_token})
        except BrokerAuthError:
            return None
        return self._token(response.json())

    async def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET ``path``; the core attaches the current token."""
        response = await self.ctx.http.get(path, params=params)
        return response.json()

    async def accounts(self, auth: AuthResult) -> list[dict[str, Any]]:
        """List the user's accounts as the API returns them."""
        body = await self._get("accounts")
        accounts = body.get("accounts") if isinstance(body, dict) else None
        if not isinstance(accounts, list):
            raise BrokerApiError("broker 'sim': GET /accounts did not return an 'accounts' list")
        return accounts

    def trade_pages(
        self,
        auth: AuthResult,
        account_id: str,
        *,
        since: dt.datetime | None = None,
        cursor: str | None = None,
    ) -> AsyncIterator[tuple[list[dict[str, Any]], str]]:
        """Yield ``(records, next_cursor)`` for each page of the account's trade feed until the end."""
        return self._pages("trades", account_id, since=since, cursor=cursor)

    def fill_pages(
        self,
        auth: AuthResult,
        account_id: str,
        *,
        since: dt.datetime | None = None,
        cursor: str | None = None,
    ) -> AsyncIterator[tuple[list[dict[str, Any]], str]]:
        """Yield ``(fills, next_cursor)`` for each page of a fills account's execution feed until the end."""
        return self._pages("fills", account_id, since=since, cursor=cursor)

    async def _pages(
        self, kind: str, account_id: str, *, since: dt.datetime | None, cursor: str | None
    ) -> AsyncIterator[tuple[list[dict[str, Any]], str]]:
        params: dict[str, Any] = {"limit": int(self.ctx.options.get("page_size", 1000))}
        if cursor is not None:
            params["cursor"] = cursor
        elif since is not None:
            params["since"] = since.astimezone(dt.UTC).isoformat()
        while True:
            body = await self._get(f"accounts/{account_id}/{kind}", params)
            if not isinstance(body, dict) or not isinstance(body.get(kind), list) or not body.get("next_cursor"):
                raise BrokerApiError(
                    f"broker 'sim': {kind} page for account {account_id!r} lacks '{kind}' or 'next_cursor'"
                )
            yield body[kind], body["next_cursor"]
            if not body.get("has_more"):
                return
            params = {"limit": params["limit"], "cursor": body["next_cursor"]}
