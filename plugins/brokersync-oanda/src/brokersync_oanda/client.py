"""The OANDA v20 endpoints brokersync uses, and how to page through them.

Every request goes through ``ctx.http``, the core's client: it applies the rate limit, retries 429
(honouring ``Retry-After``) and 5xx, opens the circuit breaker and turns HTTP failures into
:mod:`brokersync.errors`. This module adds what only OANDA knows: its error bodies
(``{"errorCode": ..., "errorMessage": ...}``), what a 401 and a 403 mean here, and the shape of
its paging (``beforeID`` for trades, ``sinceid`` and ``idrange`` for transactions).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from brokersync import (
    BrokerApiError,
    BrokerAuthError,
    BrokerContext,
    BrokerServerError,
    ConfigurationError,
)

if TYPE_CHECKING:
    import httpx  # only for annotations: discovering the plugin must not load it

__all__ = ["MAX_COUNT", "MAX_ID_RANGE", "OandaClient"]

#: Most trades one ``GET .../trades`` returns (``count`` maximum).
MAX_COUNT = 500
#: Widest ``transactions/idrange`` this client asks for (the transactions page-size maximum).
MAX_ID_RANGE = 1000

_FIELD = {name: re.compile(rf'"{name}"\s*:\s*"((?:[^"\\]|\\.)*)"') for name in ("errorMessage", "errorCode")}


def _reason(error: Exception) -> str:
    """OANDA's ``errorMessage`` (and ``errorCode``) from the core's error, which quotes the body's start."""
    text = str(error)
    found = {name: m.group(1) for name, pattern in _FIELD.items() if (m := pattern.search(text))}
    if "errorMessage" not in found:
        return text
    code = f" [{found['errorCode']}]" if "errorCode" in found else ""
    return f"{found['errorMessage']}{code}"


class OandaClient:
    """The v20 REST API for one access token, spoken through the core's HTTP client.

    Args:
        ctx: The hook context the core passed to the plugin.
        token: The personal access token.
    """

    def __init__(self, ctx: BrokerContext, token: str) -> None:
        self.ctx = ctx
        self._headers = {"Authorization": f"Bearer {token}", "Accept-Datetime-Format": "RFC3339"}

    async def get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """GET ``path`` (relative to the ``/v3`` base URL) and return the JSON object, numbers as Decimal.

        Raises:
            BrokerAuthError: 401 (the token is wrong, revoked, or for the other environment).
            ConfigurationError: 403 on an account's endpoint (the token cannot see that account).
            BrokerApiError: Any other refusal, with OANDA's ``errorMessage``; or a body that is not JSON.
        """
        try:
            response = await self.ctx.http.get(path, params=dict(params or {}), headers=self._headers)
        except BrokerAuthError as exc:
            raise self._refused(exc, path) from exc
        except BrokerServerError:
            raise  # already retried by the core; its message says enough
        except BrokerApiError as exc:
            if exc.status_code is None:
                raise
            raise BrokerApiError(
                f"OANDA refused GET {path} (HTTP {exc.status_code}): {_reason(exc)}",
                broker=self.ctx.broker,
                connection_id=self.ctx.connection_id,
                status_code=exc.status_code,
            ) from exc
        return self._json(response, path)

    def _refused(self, exc: BrokerAuthError, path: str) -> Exception:
        account = re.match(r"accounts/([^/]+)", path)
        if exc.status_code == 403 and account:
            return ConfigurationError(
                f"OANDA account {account.group(1)!r} is not available to this token (HTTP 403: {_reason(exc)}); "
                "check the account id, and that token and environment belong to that account"
            )
        host = urlsplit(self.ctx.base_url).hostname or self.ctx.base_url
        return BrokerAuthError(
            f"OANDA rejected the access token (HTTP {exc.status_code}: {_reason(exc)}). It is wrong or revoked, "
            f"or it is a token for the other environment: this connection uses {self.ctx.environment!r} ({host}); "
            "practice tokens only work on practice and live tokens only on live. Reconnect with the right token.",
            broker=self.ctx.broker,
            connection_id=self.ctx.connection_id,
            status_code=exc.status_code,
        )

    def _json(self, response: httpx.Response, path: str) -> dict[str, Any]:
        try:
            body = json.loads(response.text, parse_float=Decimal)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise BrokerApiError(
                f"OANDA answered GET {path} with something that is not a JSON object",
                broker=self.ctx.broker,
                connection_id=self.ctx.connection_id,
                status_code=response.status_code,
            )
        return body

    def _missing(self, path: str, field: str) -> BrokerApiError:
        message = f"OANDA's answer to GET {path} lacks {field!r}"
        return BrokerApiError(message, broker=self.ctx.broker, connection_id=self.ctx.connection_id)

    def _list(self, body: Mapping[str, Any], path: str, field: str) -> list[dict[str, Any]]:
        value = body.get(field)
        if not isinstance(value, list):
            raise self._missing(path, field)
        return value

    def _last_id(self, body: Mapping[str, Any], path: str) -> int:
        value = body.get("lastTransactionID")
        if not isinstance(value, str) or not value.isdigit():
            raise self._missing(path, "lastTransactionID")
        return int(value)

    # -- accounts ----------------------------------------------------------------------------------

    async def accounts(self) -> list[dict[str, Any]]:
        """``GET /accounts``: the accounts the token can see (``id``, ``tags``)."""
        return self._list(await self.get("accounts"), "accounts", "accounts")

    async def summary(self, account_id: str) -> tuple[dict[str, Any], int]:
        """``GET /accounts/{id}/summary``: ``(AccountSummary, lastTransactionID)``."""
        path = f"accounts/{account_id}/summary"
        body = await self.get(path)
        if not isinstance(body.get("account"), dict):
            raise self._missing(path, "account")
        return body["account"], self._last_id(body, path)

    # -- trades ------------------------------------------------------------------------------------

    async def trade_pages(self, account_id: str, state: str) -> AsyncIterator[tuple[list[dict[str, Any]], int]]:
        """Every trade in ``state``, newest first, as ``(page, lastTransactionID)`` pages (``beforeID`` paging).

        OANDA documents ``beforeID`` as "the maximum Trade ID to return" without saying whether that
        trade itself is included. The next page asks for ``beforeID`` = the oldest id seen and drops
        what was seen, so both readings give every trade exactly once.
        """
        path = f"accounts/{account_id}/trades"
        params: dict[str, Any] = {"state": state, "count": MAX_COUNT}
        oldest: int | None = None
        while True:
            body = await self.get(path, params)
            trades = self._list(body, path, "trades")
            fresh = [t for t in trades if oldest is None or int(t["id"]) < oldest]
            if fresh:
                yield fresh, self._last_id(body, path)
            if not fresh or len(trades) < MAX_COUNT:
                return
            oldest = min(int(t["id"]) for t in fresh)
            params = {**params, "beforeID": str(oldest)}

    async def trades_by_id(self, account_id: str, ids: Iterable[str], state: str) -> list[dict[str, Any]]:
        """Fetch the trades with ``ids`` (``MAX_COUNT`` per request); each must be in ``state``."""
        wanted = list(ids)
        found: list[dict[str, Any]] = []
        path = f"accounts/{account_id}/trades"
        for start in range(0, len(wanted), MAX_COUNT):
            batch = wanted[start : start + MAX_COUNT]
            body = await self.get(path, {"ids": ",".join(batch), "state": state, "count": len(batch)})
            found.extend(self._list(body, path, "trades"))
        missing = sorted(set(wanted) - {str(t.get("id")) for t in found}, key=int)
        if missing:
            raise BrokerApiError(
                f"OANDA did not return {state} trade(s) {', '.join(missing[:5])} of account {account_id!r}",
                broker=self.ctx.broker,
                connection_id=self.ctx.connection_id,
            )
        return found

    # -- transactions ------------------------------------------------------------------------------

    async def transactions_since(self, account_id: str, last_id: int) -> tuple[list[dict[str, Any]], int]:
        """Every transaction after ``last_id``, and the id of the last one.

        ``sinceid`` is exclusive and may stop short (its cap is undocumented): ask again from the
        last id received until OANDA's ``lastTransactionID`` is reached.
        """
        path = f"accounts/{account_id}/transactions/sinceid"
        collected: list[dict[str, Any]] = []
        while True:
            body = await self.get(path, {"id": str(last_id)})
            page = self._list(body, path, "transactions")
            newest = self._last_id(body, path)
            if page:
                last_id = max(int(t["id"]) for t in page)
                collected.extend(page)
            if last_id >= newest:
                return collected, last_id
            if not page:
                raise BrokerApiError(
                    f"OANDA's sinceid for account {account_id!r} returned nothing after {last_id} although its "
                    f"last transaction is {newest}",
                    broker=self.ctx.broker,
                    connection_id=self.ctx.connection_id,
                )

    async def fills(self, account_id: str, ids: Iterable[int]) -> dict[str, dict[str, Any]]:
        """Fetch the ORDER_FILL transactions with ``ids`` by ``idrange`` spans of at most ``MAX_ID_RANGE`` ids."""
        path = f"accounts/{account_id}/transactions/idrange"
        wanted = sorted(set(ids))
        found: dict[str, dict[str, Any]] = {}
        for first in wanted:
            if str(first) in found:
                continue
            params = {"from": str(first), "to": str(first + MAX_ID_RANGE - 1), "type": "ORDER_FILL"}
            for transaction in self._list(await self.get(path, params), path, "transactions"):
                found[str(transaction["id"])] = transaction
            if str(first) not in found:
                raise BrokerApiError(
                    f"OANDA has no ORDER_FILL {first} in account {account_id!r}, but a trade refers to it",
                    broker=self.ctx.broker,
                    connection_id=self.ctx.connection_id,
                )
        return found
