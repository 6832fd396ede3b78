"""Exceptions raised by brokersync, grouped by what happens next.

The tree::

    BrokerSyncError                      root of everything brokersync raises on purpose
    ├── ConfigurationError               bad configuration or credentials shape (fix it, then retry)
    ├── PluginError                      a broker plugin is broken (load, validation, contract)
    │   └── PluginContractError          a hook returned something the contract does not allow
    ├── RecordValidationError            one broker record cannot be normalized (skipped, reported)
    ├── VaultError                       a secret cannot be encrypted or decrypted (key missing/wrong)
    ├── StoreError                       the database refused or lost an operation: retried
    ├── SyncError                        a sync cannot run
    │   ├── SyncInProgressError          another process holds this connection's lease: retried
    │   │   └── LeaseLostError           this process's lease expired and another took over
    │   ├── SyncQueueError               a queued sync failed (what the job queue stores)
    │   ├── ConnectionNotFoundError      no such connection for this user
    │   └── NeedsReauthError             the connection must be reconnected by its user
    └── BrokerError                      a broker call failed (carries broker=, connection_id=)
        ├── BrokerAuthError              never retried; the connection needs re-authentication
        ├── BrokerRateLimitError         retried after ``retry_after`` seconds
        ├── BrokerApiError               the broker answered with an error (``status_code``)
        │   ├── BrokerServerError        5xx: retried
        │   └── PaginationError          a paged listing loops or would be cut short: not retried
        ├── BrokerNetworkError           the broker could not be reached: retried
        │   └── BrokerTimeoutError       the broker did not answer in time: retried
        └── BrokerUnavailableError       the circuit breaker is open: fail fast, retry later

Whether an error is retried is decided in one place: the ``retryable`` class attribute of
brokersync's errors, read by :func:`classify_error` (which also classifies foreign exceptions, by
``isinstance`` only). The retry layer and the job queue both go by its answer. Messages never
contain a secret: everything that leaves this module goes through the redactor.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Mapping
from typing import Any

import attrs

from brokersync._redact import redact

__all__ = [
    "AccountAlreadyConnectedError",
    "BrokerApiError",
    "BrokerAuthError",
    "BrokerError",
    "BrokerNetworkError",
    "BrokerRateLimitError",
    "BrokerServerError",
    "BrokerSyncError",
    "BrokerTimeoutError",
    "BrokerUnavailableError",
    "ConfigurationError",
    "ConnectionNotFoundError",
    "ErrorClassification",
    "ErrorType",
    "LeaseLostError",
    "NeedsReauthError",
    "PaginationError",
    "PluginContractError",
    "PluginError",
    "RecordValidationError",
    "RequestChange",
    "Severity",
    "StoreError",
    "SyncError",
    "SyncInProgressError",
    "SyncQueueError",
    "VaultError",
    "classify_error",
]


class BrokerSyncError(Exception):
    """Root of every error brokersync raises on purpose."""

    #: Whether trying the same operation again may succeed (read by :func:`classify_error`).
    retryable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))

    @property
    def message(self) -> str:
        """The (redacted) message."""
        return str(self.args[0]) if self.args else ""


class ConfigurationError(BrokerSyncError):
    """Configuration, credentials or arguments are invalid; nothing was sent or stored."""


class PluginError(BrokerSyncError):
    """A broker plugin cannot be used: it failed to import, validate or declare its metadata."""

    def __init__(self, message: str, *, broker: str | None = None, distribution: str | None = None) -> None:
        super().__init__(message)
        self.broker = broker
        self.distribution = distribution


class PluginContractError(PluginError):
    """A plugin hook returned or raised something the broker contract does not allow."""


class RecordValidationError(BrokerSyncError):
    """A record from a broker cannot be normalized into a model. The record is skipped, not stored."""

    def __init__(self, message: str, *, broker_trade_id: str | None = None, path: str | None = None) -> None:
        super().__init__(message)
        self.broker_trade_id = broker_trade_id
        self.path = path


class VaultError(BrokerSyncError):
    """A secret could not be encrypted or decrypted (missing key, wrong key, tampered data).

    Args:
        message: What failed and what to do; never key material or plaintext.
        key_id: The id of the key involved, when known.
        what: The value that failed, as the caller named it (e.g. a connection's credentials).
    """

    def __init__(self, message: str, *, key_id: str | None = None, what: str | None = None) -> None:
        super().__init__(message)
        self.key_id = key_id
        self.what = what


class StoreError(BrokerSyncError):
    """The database failed an operation."""

    retryable = True


class SyncError(BrokerSyncError):
    """A sync cannot run."""


class SyncInProgressError(SyncError):
    """Another caller is already syncing this connection."""

    retryable = True


class LeaseLostError(SyncInProgressError):
    """The lease of this process on a connection expired and another process took it over."""


class SyncQueueError(SyncError):
    """Why a queued sync failed; what the job queue stores as the job's error (redacted, never a secret)."""


class ConnectionNotFoundError(SyncError):
    """The connection does not exist or does not belong to this user."""


class NeedsReauthError(SyncError):
    """The connection's credentials were rejected; the user has to reconnect it."""


class AccountAlreadyConnectedError(BrokerSyncError):
    """The credentials reach broker accounts that one of the user's connections already syncs.

    A broker account's identity is (user, broker, environment, account id): connecting it twice
    would store each of its trades twice. Give the existing connection the new credentials with
    ``reconnect`` instead. Nothing was stored.

    Args:
        message: What happened and what to do.
        connection_id: The existing connection that has the accounts.
        account_ids: The accounts already connected.
    """

    def __init__(self, message: str, *, connection_id: str, account_ids: tuple[str, ...]) -> None:
        super().__init__(message)
        self.connection_id = connection_id
        self.account_ids = account_ids


class BrokerError(BrokerSyncError):
    """A call to a broker failed.

    Args:
        message: What failed, in words a user can act on.
        broker: The broker key, when known.
        connection_id: The connection, when known.
        status_code: The HTTP status the broker answered with, when there was one.
        retry_after: Seconds to wait before the next attempt, when known (``Retry-After``, a
            broker penalty, an open circuit's remaining time).
    """

    def __init__(
        self,
        message: str,
        *,
        broker: str | None = None,
        connection_id: str | None = None,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.broker = broker
        self.connection_id = connection_id
        self.status_code = status_code
        #: Seconds to wait before trying again, when the broker (or the core) said so.
        self.retry_after = retry_after


class BrokerAuthError(BrokerError):
    """The broker rejected the credentials or the token. Never retried."""


@attrs.frozen(kw_only=True)
class RequestChange:
    """What the retried request must carry that the failed one did not (e.g. a penalty ticket).

    Tradovate answers a too-early login with HTTP 200 ``{"p-ticket": ..., "p-time": ...}``: wait
    ``p-time`` seconds, then send the *same* body plus ``p-ticket``. A plugin's
    ``validate_response`` raises ``BrokerRateLimitError(retry_after=p_time,
    resend_with=RequestChange(json={"p-ticket": ticket}))`` and the core's retry sends the original
    request with these fields merged in (later changes win over earlier ones).

    Attributes:
        json: Fields merged into the JSON body (the request must have a JSON object body, or none).
        headers: Headers set on the resent request.
        params: Query parameters set on the resent request.
    """

    json: Mapping[str, Any] = attrs.field(factory=dict)
    headers: Mapping[str, str] = attrs.field(factory=dict)
    params: Mapping[str, Any] = attrs.field(factory=dict)

    def __repr__(self) -> str:
        # Tickets are short-lived secrets of a kind: show which fields change, not their values.
        return f"RequestChange(json={sorted(self.json)}, headers={sorted(self.headers)}, params={sorted(self.params)})"


class BrokerRateLimitError(BrokerError):
    """The broker (or our own limiter) says: wait ``retry_after`` seconds before the next request.

    Args:
        message: What failed.
        resend_with: What the retried request must carry (see :class:`RequestChange`).
        **kwargs: See :class:`BrokerError`.
    """

    retryable = True

    def __init__(self, message: str, *, resend_with: RequestChange | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        #: Applied by the core's retry to the next attempt of the same request.
        self.resend_with = resend_with


class BrokerApiError(BrokerError):
    """The broker answered with an error that retrying will not fix (4xx other than auth/429)."""


class BrokerServerError(BrokerApiError):
    """The broker failed on its side (5xx). Retried (after ``retry_after`` when the broker sent one)."""

    retryable = True


class PaginationError(BrokerApiError):
    """A paged listing cannot be read to its end. Not retried.

    It loops (a cursor, link or page repeats), or it would be cut short (``max_pages`` reached with
    pages left, more records at one timestamp than a page holds).
    """


class BrokerNetworkError(BrokerError):
    """The broker could not be reached (DNS, connection refused or reset). Retried."""

    retryable = True


class BrokerTimeoutError(BrokerNetworkError):
    """The broker did not answer in time. Retried."""


class BrokerUnavailableError(BrokerError):
    """The circuit breaker for this broker is open: requests fail fast until ``retry_after``."""

    retryable = True


class ErrorType(enum.StrEnum):
    """What kind of failure an exception is, as far as the user and the retry logic care."""

    AUTH = "auth"
    RATE_LIMIT = "rate_limit"
    NETWORK = "network"
    TIMEOUT = "timeout"
    API = "api"
    VALIDATION = "validation"
    UNKNOWN = "unknown"


class Severity(enum.StrEnum):
    """How loudly a failure should be reported."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


@attrs.frozen(kw_only=True)
class ErrorClassification:
    """What :func:`classify_error` says about an exception. Holds no secret."""

    type: ErrorType
    retryable: bool
    severity: Severity
    user_message: str
    technical_details: Mapping[str, Any]
    retry_after: float | None = None


_USER_MESSAGES = {
    ErrorType.AUTH: "The broker rejected the credentials. Reconnect the account with valid credentials.",
    ErrorType.RATE_LIMIT: "The broker asked us to slow down. The sync will continue after a pause.",
    ErrorType.NETWORK: "The broker could not be reached. Check the network; the sync will be retried.",
    ErrorType.TIMEOUT: "The broker did not answer in time. The sync will be retried.",
    ErrorType.API: "The broker returned an error.",
    ErrorType.VALIDATION: "The data or configuration is invalid.",
    ErrorType.UNKNOWN: "An unexpected error occurred.",
}


def _httpx_type(exc: BaseException) -> ErrorType | None:
    # httpx loads lazily with the HTTP layer: an httpx exception can only exist once it is imported.
    httpx = sys.modules.get("httpx")
    if httpx is None or not isinstance(exc, httpx.HTTPError | httpx.InvalidURL):
        return None
    if isinstance(exc, httpx.TimeoutException):
        return ErrorType.TIMEOUT
    if isinstance(exc, httpx.TransportError):
        return ErrorType.NETWORK
    if isinstance(exc, httpx.HTTPStatusError):
        return ErrorType.API
    return ErrorType.UNKNOWN


def _classify_type(exc: BaseException) -> ErrorType:
    if isinstance(exc, BrokerAuthError | NeedsReauthError):
        return ErrorType.AUTH
    if isinstance(exc, BrokerRateLimitError):
        return ErrorType.RATE_LIMIT
    if isinstance(exc, BrokerTimeoutError):
        return ErrorType.TIMEOUT
    if isinstance(exc, BrokerNetworkError | BrokerUnavailableError):
        return ErrorType.NETWORK
    if isinstance(exc, ConfigurationError | RecordValidationError | PluginError):
        return ErrorType.VALIDATION
    if isinstance(exc, BrokerError):
        return ErrorType.API
    if isinstance(exc, BrokerSyncError):
        return ErrorType.UNKNOWN
    from_httpx = _httpx_type(exc)
    if from_httpx is not None:
        return from_httpx
    if isinstance(exc, TimeoutError):  # asyncio.TimeoutError is TimeoutError since 3.11
        return ErrorType.TIMEOUT
    if isinstance(exc, ConnectionError):
        return ErrorType.NETWORK
    if isinstance(exc, ValueError | TypeError | KeyError):
        return ErrorType.VALIDATION
    return ErrorType.UNKNOWN


def _retryable(exc: BaseException, error_type: ErrorType) -> bool:
    """Decide whether ``exc`` is worth retrying: the one place that does."""
    if isinstance(exc, BrokerSyncError):
        return bool(exc.retryable)
    # Foreign errors: only the network and timeouts are transient.
    return error_type in (ErrorType.NETWORK, ErrorType.TIMEOUT)


_SEVERITY = {
    ErrorType.AUTH: Severity.ERROR,
    ErrorType.RATE_LIMIT: Severity.WARNING,
    ErrorType.NETWORK: Severity.WARNING,
    ErrorType.TIMEOUT: Severity.WARNING,
    ErrorType.API: Severity.ERROR,
    ErrorType.VALIDATION: Severity.ERROR,
    ErrorType.UNKNOWN: Severity.CRITICAL,
}


def classify_error(exc: BaseException) -> ErrorClassification:
    """Say what kind of failure ``exc`` is, whether to retry it, and what to tell the user.

    Works for any exception: brokersync's own, httpx's, builtins, and whatever a plugin raises.
    Nothing in the result contains a secret known to brokersync.

    Args:
        exc: The exception to classify.

    Returns:
        The classification: type, retryable, severity, a user message and technical details.
    """
    error_type = _classify_type(exc)
    retryable = _retryable(exc, error_type)
    retry_after = getattr(exc, "retry_after", None)
    user_message = _USER_MESSAGES[error_type]
    if error_type is ErrorType.RATE_LIMIT and isinstance(retry_after, int | float):
        user_message = f"The broker asked us to slow down; retry in {retry_after:.0f} s."
    if isinstance(exc, SyncInProgressError):
        user_message = "Another sync of this connection is running; this one was not started."
    elif isinstance(exc, StoreError):
        user_message = f"The database failed; the sync can be retried. {exc.message}"
    elif isinstance(exc, VaultError):
        user_message = f"Stored credentials could not be decrypted. {exc.message}"
    if isinstance(exc, BrokerSyncError) and error_type in (ErrorType.VALIDATION, ErrorType.API):
        user_message = f"{user_message} {exc.message}"
    details: dict[str, Any] = {
        "exception": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "message": redact(str(exc)),
    }
    for attribute in ("broker", "connection_id", "status_code", "retry_after"):
        value = getattr(exc, attribute, None)
        if value is not None:
            details[attribute] = value
    if exc.__cause__ is not None:
        details["cause"] = f"{type(exc.__cause__).__qualname__}: {redact(str(exc.__cause__))}"
    return ErrorClassification(
        type=error_type,
        retryable=retryable,
        severity=_SEVERITY[error_type],
        user_message=redact(user_message),
        technical_details=details,
        retry_after=float(retry_after) if isinstance(retry_after, int | float) else None,
    )
