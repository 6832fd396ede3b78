"""HTTP answers and httpx failures as :mod:`brokersync.errors` exceptions (for :mod:`brokersync._http`).

Nothing from httpx escapes the core client: error statuses, transport errors and httpx errors a
plugin's ``validate_response`` raises all become the matching brokersync error.
"""

from __future__ import annotations

import email.utils
import time
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

__all__ = ["HTTPX_ERRORS", "map_response", "map_transport_error", "parse_retry_after", "response_error"]

# Errors httpx raises that are not HTTPError subclasses; none may escape either.
HTTPX_ERRORS = (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, httpx.CookieConflict)
# Answers that mean "this request can never work as sent": not worth a retry.
_NOT_TRANSIENT = (
    httpx.UnsupportedProtocol,
    httpx.InvalidURL,
    httpx.TooManyRedirects,
    httpx.DecodingError,
    httpx.LocalProtocolError,
    httpx.StreamError,
    httpx.CookieConflict,
)


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
    return max(0.0, parsed.timestamp() - (time.time() if now is None else now))


def _describe(response: httpx.Response) -> str:
    request = response.request
    text = response.text[:200] if response.content else ""
    return f"{request.method} {request.url.host}{request.url.path} answered {response.status_code} {text}".strip()


def response_error(
    response: httpx.Response, *, broker: str, connection_id: str | None = None, now: float | None = None
) -> BrokerError | None:
    """The brokersync error matching an HTTP error status, or None for 1xx-3xx."""
    status = response.status_code
    if status < 400:
        return None
    common: dict[str, Any] = {"broker": broker, "connection_id": connection_id, "status_code": status}
    what = f"broker {broker!r}: {_describe(response)}"
    retry_after = parse_retry_after(response.headers.get("Retry-After"), now=now)
    if status in (401, 403):
        return BrokerAuthError(what, **common)
    if status == 429:
        return BrokerRateLimitError(what, retry_after=retry_after, **common)
    if status >= 500:
        return BrokerServerError(what, retry_after=retry_after, **common)
    return BrokerApiError(what, **common)


def map_response(
    response: httpx.Response, *, broker: str, connection_id: str | None = None, now: float | None = None
) -> None:
    """Raise the brokersync error matching an HTTP error status; return for 1xx-3xx."""
    error = response_error(response, broker=broker, connection_id=connection_id, now=now)
    if error is not None:
        raise error


def map_transport_error(exc: Exception, *, broker: str, connection_id: str | None = None) -> BrokerError:
    """Translate any httpx exception into the matching brokersync error."""
    if isinstance(exc, httpx.HTTPStatusError):
        mapped = response_error(exc.response, broker=broker, connection_id=connection_id)
        if mapped is not None:
            return mapped
    request = getattr(exc, "_request", None)
    where = f" ({request.method} {request.url.host}{request.url.path})" if request is not None else ""
    common: dict[str, Any] = {"broker": broker, "connection_id": connection_id}
    if isinstance(exc, httpx.TimeoutException):
        return BrokerTimeoutError(f"broker {broker!r} did not answer in time{where}: {type(exc).__name__}", **common)
    if isinstance(exc, (*_NOT_TRANSIENT, httpx.HTTPStatusError)):
        return BrokerApiError(f"broker {broker!r}: request failed{where}: {type(exc).__name__}: {exc}", **common)
    return BrokerNetworkError(
        f"broker {broker!r} could not be reached{where}: {type(exc).__name__}: {exc}",
        **common,
    )
