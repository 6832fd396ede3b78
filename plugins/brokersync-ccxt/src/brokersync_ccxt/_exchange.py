"""A ccxt exchange whose every request goes through the core's client (``ctx.http``).

ccxt builds and signs the request and interprets the answer (its ``handle_errors`` and status
mapping run on every response, through the plugin's ``validate_response`` hook); the core sends it,
so the limiter (per API key, weighted by ccxt's endpoint cost), retries, circuit breaker, metrics
and redaction apply. ccxt's own throttle is off, numbers stay strings (``exchange.number = str``)
and JSON is read with ``parse_float=Decimal``: money never passes through a float.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from brokersync_ccxt._errors import NonceRejected, translate
from brokersync_ccxt._metadata import CREDENTIAL_NAMES, OPTION_FIELDS, metadata_for, rate_limit_for

if TYPE_CHECKING:
    import httpx
    from brokersync import BrokerContext

__all__ = ["CACHE_KEY", "build_exchange", "check_response", "key_scope"]

CACHE_KEY = "brokersync_ccxt.exchange"
_BINANCE_FAMILY = frozenset({"binance", "binanceus"})
_NONCE_ATTEMPTS = 3
_MARKET_OPTIONS: dict[str, dict[str, Any]] = {
    "binance": {"fetchMarkets": {"types": ["spot"]}, "fetchMargins": False},
    "binanceus": {"fetchMarkets": {"types": ["spot"]}, "fetchMargins": False},
    "bybit": {"fetchMarkets": {"types": ["spot", "linear"]}},
    "okx": {"fetchMarkets": {"types": ["spot", "swap"]}},
    # Advanced Trade's accounts (one key, one JWT scheme) rather than the v2 wallet API.
    "coinbase": {"fetchBalance": "v3PrivateGetBrokerageAccounts"},
}


def key_scope(api_key: str | None) -> str:
    """The limiter scope of an API key: connections sharing a key share its budget (the key is hashed)."""
    digest = hashlib.sha256((api_key or "").encode()).hexdigest()[:16]
    return f"apikey-{digest}"


def parse_json(text: str) -> Any:
    """JSON with every non-integer number as a Decimal (never a float)."""
    try:
        return json.loads(text, parse_float=Decimal)
    except ValueError:
        return None


@functools.cache
def _bridged_class(exchange_id: str) -> type[Any]:
    import ccxt.async_support as ccxt_async  # type: ignore[import-untyped]  # ccxt ships no type hints

    base: type[Any] = getattr(ccxt_async, exchange_id)

    class Bridged(base):  # type: ignore[misc]  # ccxt classes are untyped
        bs_ctx: BrokerContext
        bs_scope: str
        bs_cost: float = 1.0
        bs_origin: tuple[str, str] | None = None

        async def fetch2(
            self,
            path: str,
            api: Any = "public",
            method: str = "GET",
            params: Any = None,
            config: Any = None,
        ) -> Any:
            params = {} if params is None else params
            config = {} if config is None else config
            self.bs_cost = self.calculate_rate_limiter_cost(api, method, path, params, config)
            for attempt in range(1, _NONCE_ATTEMPTS + 1):
                try:
                    return await super().fetch2(path, api, method, params, config)
                except NonceRejected:
                    # ccxt signs again with a fresh nonce/timestamp; the core must not resend the old one.
                    if attempt == _NONCE_ATTEMPTS:
                        raise
            return None  # pragma: no cover - the loop returns or raises

        async def fetch(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
            return await _send(self, url, method, headers, body)

    Bridged.__name__ = f"Bridged_{exchange_id}"
    return Bridged


def _rewrite(exchange: Any, url: str) -> str:
    """Send to the configured base URL's host when it differs from the exchange's own (tests, proxies)."""
    if exchange.bs_origin is None:
        return url
    scheme, netloc = exchange.bs_origin
    parts = urlsplit(url)
    return str(urlunsplit((scheme, netloc, parts.path, parts.query, parts.fragment)))


async def _send(exchange: Any, url: str, method: str, headers: Any, body: Any) -> Any:
    ctx = exchange.bs_ctx
    request_headers = exchange.prepare_request_headers(headers)
    limit = rate_limit_for(exchange.id)
    cost = max(1, min(math.ceil(exchange.bs_cost or 1), limit.max_requests))
    content = body.encode() if isinstance(body, str) else body
    response = await ctx.http.request(
        method,
        _rewrite(exchange, url),
        headers=dict(request_headers),
        content=content,
        cost=cost,
        account_id=exchange.bs_scope,
    )
    text = response.text
    text = exchange.on_rest_response(
        response.status_code, response.reason_phrase, url, method, dict(response.headers), text, request_headers, body
    )
    decoded = parse_json(text) if text else None
    if decoded is not None:
        return decoded
    return text


def check_response(ctx: BrokerContext, response: httpx.Response) -> None:
    """Run ccxt's own response checks (``handle_errors``, then its status table) and translate what they raise."""
    exchange = ctx.cache.get(CACHE_KEY)
    if exchange is None:
        return
    from ccxt.base import errors as ce  # type: ignore[import-untyped]

    request = response.request
    text = response.text
    headers = dict(response.headers)
    request_body = request.content.decode() if request.content else None
    try:
        exchange.handle_errors(
            response.status_code,
            response.reason_phrase,
            str(request.url),
            request.method,
            headers,
            text,
            parse_json(text) if text else None,
            dict(request.headers),
            request_body,
        )
        exchange.handle_http_status_code(
            response.status_code, response.reason_phrase, str(request.url), request.method, text
        )
    except ce.BaseError as exc:
        mapped = translate(
            exc, broker=ctx.broker, status=response.status_code, headers=headers, connection_id=ctx.connection_id
        )
        if mapped is not None:
            raise mapped from None
        raise


def build_exchange(ctx: BrokerContext, exchange_id: str, credentials: Mapping[str, str]) -> Any:
    """A ccxt exchange for ``exchange_id`` wired to ``ctx.http``, kept in ``ctx.cache`` for the run."""
    existing = ctx.cache.get(CACHE_KEY)
    if existing is not None:
        return existing
    cls = _bridged_class(exchange_id)
    config: dict[str, Any] = {"enableRateLimit": False}
    by_field = {field: name for name, field in CREDENTIAL_NAMES.items()}
    for field, value in credentials.items():
        if field not in OPTION_FIELDS:  # ``symbols`` is a ccxt attribute of its own: never hand it over
            config[by_field.get(field, field)] = value
    exchange = cls(config)
    exchange.number = str  # ccxt's string-number mode: amounts, prices and fees stay the exchange's text
    exchange.has["fetchCurrencies"] = False  # not needed for fills; saves private calls on every run
    # Load only the market types a sync searches (ccxt loads options, futures and margin pairs otherwise).
    exchange.options.update(_MARKET_OPTIONS.get(exchange_id, {}))
    if exchange_id in _BINANCE_FAMILY:
        # Binance loads each product's markets from its own API: only those of the market types synced.
        wanted = credentials.get("market_types") or ctx.options.get("market_types") or "spot"
        kinds = str(wanted).replace(" ", "").split(",")
        exchange.options["fetchMarkets"] = {"types": [k for k in ("spot", "linear") if k in kinds] or ["spot"]}
    exchange.bs_ctx = ctx
    exchange.bs_scope = key_scope(credentials.get("api_key"))
    if ctx.environment == "sandbox":
        exchange.set_sandbox_mode(True)
    default = metadata_for(exchange_id).environments.get(ctx.environment)
    if default is not None and ctx.base_url.rstrip("/") != default.rstrip("/"):
        target = urlsplit(ctx.base_url)
        exchange.bs_origin = (target.scheme, target.netloc)
    ctx.cache[CACHE_KEY] = exchange
    return exchange
