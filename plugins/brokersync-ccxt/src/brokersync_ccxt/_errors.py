"""ccxt's exception classes translated into brokersync's, with the exchange named.

ccxt's tree (``ccxt.base.errors``) is mapped by what the core must do next:

* ``AuthenticationError`` (``PermissionDenied``, ``AccountSuspended``...) -> :class:`BrokerAuthError`
* ``RateLimitExceeded``, ``DDoSProtection`` (e.g. Binance's 418 IP ban) -> :class:`BrokerRateLimitError`
* ``InvalidNonce`` -> :class:`NonceRejected`: the request is signed again (a new nonce), not resent
* ``RequestTimeout`` -> :class:`BrokerTimeoutError`; ``ExchangeNotAvailable``/``OnMaintenance`` and other
  ``NetworkError`` -> :class:`BrokerServerError` for a 5xx answer, else :class:`BrokerNetworkError` (retried)
* ``BadSymbol``, ``NotSupported``, ``ArgumentsRequired`` -> :class:`PluginError` naming the exchange
* any other ccxt error -> :class:`BrokerApiError`, except that a generic ``ExchangeError``/``BadRequest``
  (what ccxt raises for answers it cannot classify) follows the HTTP status: 401 -> auth, 429 -> rate
  limit, 5xx -> server error; and a generic error saying "invalid signature/key" is an auth error
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any

from brokersync import (
    BrokerApiError,
    BrokerAuthError,
    BrokerError,
    BrokerNetworkError,
    BrokerRateLimitError,
    BrokerServerError,
    BrokerSyncError,
    BrokerTimeoutError,
    PluginError,
)

__all__ = ["NonceRejected", "retry_after_seconds", "translate"]


class NonceRejected(BrokerApiError):
    """The exchange refused the request's nonce or timestamp: sign it again rather than resend it."""


#: Messages of rejected keys or signatures that some exchanges' ccxt classes leave as a generic error.
_AUTH_HINTS = ("invalid signature", "invalid key", "invalid api key", "api key is invalid", "invalid sign")


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if not headers:
        return None
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


def translate(
    exc: BaseException,
    *,
    broker: str,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
    connection_id: str | None = None,
) -> BrokerSyncError | None:
    """The brokersync error for a ccxt exception, or ``None`` if ``exc`` is not one of ccxt's."""
    from ccxt.base import errors as ce  # type: ignore[import-untyped]  # ccxt ships no type hints

    if isinstance(exc, BrokerSyncError):
        return exc
    if not isinstance(exc, ce.BaseError):
        return None
    common: dict[str, Any] = {"broker": broker, "connection_id": connection_id, "status_code": status}
    what = f"exchange {broker!r}: {type(exc).__name__}: {_short(exc)}"
    retry_after = retry_after_seconds(headers)
    # ccxt raises its generic classes for answers it cannot classify (e.g. a proxy's 429 or 503 page
    # with an "error" field reaches an exchange's own error handler first): the HTTP status decides.
    generic = type(exc) in (ce.ExchangeError, ce.BadRequest, ce.BadResponse, ce.NullResponse)
    if generic and status == 429:
        return BrokerRateLimitError(what, retry_after=retry_after, **common)
    if generic and status is not None and status >= 500:
        return BrokerServerError(what, retry_after=retry_after, **common)
    if generic and (status == 401 or any(hint in str(exc).lower() for hint in _AUTH_HINTS)):
        return BrokerAuthError(what, **common)  # e.g. Kraken's "EAPI:Invalid signature" (a wrong secret)
    if isinstance(exc, ce.AuthenticationError):
        return BrokerAuthError(what, **common)
    if isinstance(exc, ce.RateLimitExceeded | ce.DDoSProtection):
        return BrokerRateLimitError(what, retry_after=retry_after, **common)
    if isinstance(exc, ce.InvalidNonce):
        return NonceRejected(what, **common)
    if isinstance(exc, ce.RequestTimeout):
        return BrokerTimeoutError(what, **common)
    if isinstance(exc, ce.NetworkError):
        if status is not None and status >= 500:
            return BrokerServerError(what, retry_after=retry_after, **common)
        return BrokerNetworkError(what, **common)
    if isinstance(exc, ce.BadSymbol | ce.NotSupported | ce.ArgumentsRequired):
        return PluginError(f"brokersync-ccxt cannot ask exchange {broker!r} this way: {_short(exc)}", broker=broker)
    return BrokerApiError(what, **common)


def is_broker_error(exc: BaseException) -> bool:
    """Whether ``exc`` is already one of brokersync's broker errors."""
    return isinstance(exc, BrokerError)
