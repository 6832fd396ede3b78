"""The core HTTP client handed to plugins as ``ctx.http``.

Foundation version: resolves URLs against the environment's base URL, applies a timeout, runs the
plugin's ``validate_response`` hook, and maps httpx errors and HTTP statuses to brokersync errors
(nothing from httpx escapes). The resilience layer (rate limiter, circuit breaker, retry) wraps
:meth:`BrokerHttpClient.request`.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from typing import Any

import httpx

from brokersync.errors import (
    BrokerApiError,
    BrokerAuthError,
    BrokerError,
    BrokerNetworkError,
    BrokerRateLimitError,
    BrokerServerError,
    BrokerTimeoutError,
)

__all__ = ["BrokerHttpClient", "map_response", "map_transport_error", "parse_retry_after"]

ResponseValidator = Callable[[httpx.Response], None]


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date); never negative."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if parsed is None:
        return None
    return max(0.0, parsed.timestamp() - (time.time() if now is None else now))


def _describe(response: httpx.Response) -> str:
    request = response.request
    text = response.text[:200] if response.content else ""
    return f"{request.method} {request.url.host}{request.url.path} answered {response.status_code} {text}".strip()


def map_response(response: httpx.Response, *, broker: str, connection_id: str | None = None) -> None:
    """Raise the brokersync error matching an HTTP error status; return for 1xx-3xx."""
    status = response.status_code
    if status < 400:
        return
    common: dict[str, Any] = {"broker": broker, "connection_id": connection_id, "status_code": status}
    what = f"broker {broker!r}: {_describe(response)}"
    if status in (401, 403):
        raise BrokerAuthError(what, **common)
    if status == 429:
        raise BrokerRateLimitError(what, retry_after=parse_retry_after(response.headers.get("Retry-After")), **common)
    if status >= 500:
        raise BrokerServerError(what, **common)
    raise BrokerApiError(what, **common)


def map_transport_error(exc: httpx.HTTPError, *, broker: str, connection_id: str | None = None) -> BrokerError:
    """Translate an httpx exception into the matching brokersync error."""
    request = getattr(exc, "_request", None)
    where = f" ({request.method} {request.url.host}{request.url.path})" if request is not None else ""
    if isinstance(exc, httpx.TimeoutException):
        return BrokerTimeoutError(
            f"broker {broker!r} did not answer in time{where}: {type(exc).__name__}",
            broker=broker,
            connection_id=connection_id,
        )
    return BrokerNetworkError(
        f"broker {broker!r} could not be reached{where}: {type(exc).__name__}: {exc}",
        broker=broker,
        connection_id=connection_id,
    )


class BrokerHttpClient:
    """An async HTTP client bound to one broker environment.

    Args:
        broker: The broker key (for error messages and logs).
        base_url: The environment's base URL; relative request URLs are resolved against it.
        transport: An httpx transport (tests pass ``httpx.MockTransport``); default: the network.
        timeout: Seconds per request.
        headers: Default headers sent with every request.
        validate_response: The plugin's ``validate_response`` hook, called for every response.
        connection_id: The connection this client works for (for errors and logs).
    """

    def __init__(
        self,
        *,
        broker: str,
        base_url: str,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        headers: dict[str, str] | None = None,
        validate_response: ResponseValidator | None = None,
        connection_id: str | None = None,
    ) -> None:
        self.broker = broker
        self.connection_id = connection_id
        self._validate = validate_response
        self._client = httpx.AsyncClient(
            base_url=base_url,
            transport=transport,
            timeout=timeout,
            headers=headers,
            follow_redirects=True,
        )

    async def send_once(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send one request with no retry: map transport errors, error statuses and plugin checks."""
        try:
            response = await self._client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise map_transport_error(exc, broker=self.broker, connection_id=self.connection_id) from exc
        map_response(response, broker=self.broker, connection_id=self.connection_id)
        if self._validate is not None:
            self._validate(response)
        return response

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send a request; see :class:`~brokersync._context.HttpClient`."""
        return await self.send_once(method, url, **kwargs)

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        """Send a GET request."""
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        """Send a POST request."""
        return await self.request("POST", url, **kwargs)

    async def aclose(self) -> None:
        """Close the underlying connection pool."""
        await self._client.aclose()

    async def __aenter__(self) -> BrokerHttpClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
