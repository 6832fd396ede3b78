"""brokersync: a normalized, deduplicated copy of every trade a user made at any broker.

This module is the whole public API. Broker plugins implement the hooks in
:mod:`brokersync.hookspecs` (mark them with :data:`hookimpl`); integrators use the registry
functions below and, for syncing, the engine.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

from brokersync._registry import ENTRY_POINT_GROUP, BrokerRegistry, PluginFailure, PluginInfo, get_registry
from brokersync._version import __version__
from brokersync._versions import PLUGIN_API_VERSION
from brokersync.errors import (
    BrokerApiError,
    BrokerAuthError,
    BrokerError,
    BrokerNetworkError,
    BrokerRateLimitError,
    BrokerServerError,
    BrokerSyncError,
    BrokerTimeoutError,
    BrokerUnavailableError,
    ConfigurationError,
    ConnectionNotFoundError,
    ErrorClassification,
    ErrorType,
    NeedsReauthError,
    PaginationError,
    PluginContractError,
    PluginError,
    RecordValidationError,
    RequestChange,
    Severity,
    StoreError,
    SyncError,
    SyncInProgressError,
    VaultError,
    classify_error,
)
from brokersync.hookspecs import hookimpl
from brokersync.models import (
    Account,
    AssetClass,
    AuthResult,
    AuthType,
    BrokerMetadata,
    Capabilities,
    CredentialField,
    Credentials,
    CursorKind,
    Direction,
    Execution,
    ExecutionCancellation,
    ExecutionKind,
    Instrument,
    OpenClose,
    OptionRight,
    Position,
    RateLimit,
    Reports,
    RetryPolicy,
    Side,
    TokenAuth,
    Trade,
    TradeCancellation,
    TradePage,
)

if TYPE_CHECKING:
    from brokersync._broker import Broker, RecordError, TradeBatch
    from brokersync._circuit import CircuitBreaker, CircuitState
    from brokersync._config import EngineSettings
    from brokersync._context import BrokerContext, HttpClient
    from brokersync._engine import BrokerSync
    from brokersync._http import BrokerHttpClient
    from brokersync._log import enable_logging
    from brokersync._metrics import RequestMetrics
    from brokersync._paging import Page
    from brokersync._queue import QueuedSync, SyncQueue, WorkerStats
    from brokersync._ratelimit import RateLimiter, RateLimitStatus
    from brokersync._resilience import (
        Resilience,
        create_rate_limiter,
        get_default_resilience,
        set_default_resilience,
        with_rate_limit,
    )
    from brokersync._results import ConnectResult, EngineStatus, SyncProgress, SyncRecordError, SyncResult
    from brokersync._retry import RetryContext, with_retry
    from brokersync._scheduler import ConnectionSchedule, ScheduledRun, Scheduler, SchedulerStats
    from brokersync._stats import Alert, AlertKind, AlertThresholds, BrokerStats, SyncStats
    from brokersync._store import (
        AccountInfo,
        ConnectionInfo,
        ConnectionStatus,
        RunStatus,
        StoredCancellation,
        StoredTrade,
        SyncRunInfo,
        SyncTrigger,
    )
    from brokersync._vault import Vault

# Heavy parts (httpx, cattrs, loguru, SQLAlchemy) load on first use, so `import brokersync` and the
# CLI start fast. Name -> module that defines it.
_LAZY = {
    "Broker": "brokersync._broker",
    "RecordError": "brokersync._broker",
    "TradeBatch": "brokersync._broker",
    "BrokerContext": "brokersync._context",
    "HttpClient": "brokersync._context",
    # The sync engine and what it returns (SQLAlchemy loads with them).
    "BrokerSync": "brokersync._engine",
    "EngineSettings": "brokersync._config",
    "ConnectResult": "brokersync._results",
    "EngineStatus": "brokersync._results",
    "SyncProgress": "brokersync._results",
    "SyncRecordError": "brokersync._results",
    "SyncResult": "brokersync._results",
    "AccountInfo": "brokersync._store",
    "ConnectionInfo": "brokersync._store",
    "ConnectionStatus": "brokersync._store",
    "RunStatus": "brokersync._store",
    "StoredCancellation": "brokersync._store",
    "StoredTrade": "brokersync._store",
    "SyncRunInfo": "brokersync._store",
    "SyncTrigger": "brokersync._store",
    "enable_logging": "brokersync._log",
    # Monitoring: sync health from the audit trail, and alert checks.
    "Alert": "brokersync._stats",
    "AlertKind": "brokersync._stats",
    "AlertThresholds": "brokersync._stats",
    "BrokerStats": "brokersync._stats",
    "SyncStats": "brokersync._stats",
    # The resilient request layer (httpx loads with it; redis only with a Redis store).
    "BrokerHttpClient": "brokersync._http",
    "Page": "brokersync._paging",
    "CircuitBreaker": "brokersync._circuit",
    "CircuitState": "brokersync._circuit",
    "RateLimitStatus": "brokersync._ratelimit",
    "RateLimiter": "brokersync._ratelimit",
    "RequestMetrics": "brokersync._metrics",
    "Resilience": "brokersync._resilience",
    "RetryContext": "brokersync._retry",
    "create_rate_limiter": "brokersync._resilience",
    "get_default_resilience": "brokersync._resilience",
    "set_default_resilience": "brokersync._resilience",
    "with_rate_limit": "brokersync._resilience",
    "with_retry": "brokersync._retry",
    "Vault": "brokersync._vault",
    # The embedded scheduler.
    "ConnectionSchedule": "brokersync._scheduler",
    "ScheduledRun": "brokersync._scheduler",
    "Scheduler": "brokersync._scheduler",
    "SchedulerStats": "brokersync._scheduler",
    # Scale-out: sync jobs on a saq queue (saq loads only when a queue is made).
    "QueuedSync": "brokersync._queue",
    "SyncQueue": "brokersync._queue",
    "WorkerStats": "brokersync._queue",
}

if "loguru" in sys.modules:
    # The application already uses loguru: silence brokersync's records now (a library stays quiet
    # unless the application asks). Otherwise brokersync._log does it when first imported.
    importlib.import_module("brokersync._log")


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'brokersync' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def register_broker(key: str, plugin: Any, *, replace: bool = False) -> BrokerMetadata:
    """Register ``plugin`` as broker ``key`` in this process (for code not installed as a package).

    Args:
        key: The broker key; must equal the key in the plugin's metadata.
        plugin: A module, class or object whose ``@hookimpl`` functions implement the hooks.
        replace: Replace an existing broker with the same key instead of raising ``ValueError``.

    Returns:
        The plugin's validated metadata.

    Raises:
        PluginError: The plugin does not satisfy the broker contract (the message says why).
    """
    return get_registry().register(key, plugin, replace=replace)


def unregister_broker(key: str) -> None:
    """Remove broker ``key`` from this process's registry."""
    get_registry().unregister(key)


def get_broker(key: str, *, environment: str | None = None, **options: Any) -> Broker:
    """A :class:`Broker` facade for broker ``key`` in ``environment`` (default: the broker's default).

    Raises:
        ConfigurationError: The broker is unknown, failed to load, or has no such environment.
    """
    return get_registry().get(key, environment=environment, **options)


def is_broker_supported(key: str) -> bool:
    """Whether broker ``key`` is installed (or registered) and loaded without error."""
    return get_registry().is_supported(key)


def get_broker_metadata(key: str) -> BrokerMetadata:
    """The metadata of broker ``key``.

    Raises:
        ConfigurationError: The broker is unknown or failed to load.
    """
    return get_registry().metadata(key)


def list_brokers() -> list[BrokerMetadata]:
    """Metadata of every usable broker, sorted by key."""
    return get_registry().list_brokers()


def list_plugins() -> list[PluginInfo]:
    """Every distribution providing brokers, with its brokers, hooks and load failures."""
    return get_registry().plugins()


__all__ = [
    "ENTRY_POINT_GROUP",
    "PLUGIN_API_VERSION",
    "Account",
    "AccountInfo",
    "Alert",
    "AlertKind",
    "AlertThresholds",
    "AssetClass",
    "AuthResult",
    "AuthType",
    "Broker",
    "BrokerApiError",
    "BrokerAuthError",
    "BrokerContext",
    "BrokerError",
    "BrokerHttpClient",
    "BrokerMetadata",
    "BrokerNetworkError",
    "BrokerRateLimitError",
    "BrokerRegistry",
    "BrokerServerError",
    "BrokerStats",
    "BrokerSync",
    "BrokerSyncError",
    "BrokerTimeoutError",
    "BrokerUnavailableError",
    "Capabilities",
    "CircuitBreaker",
    "CircuitState",
    "ConfigurationError",
    "ConnectResult",
    "ConnectionInfo",
    "ConnectionNotFoundError",
    "ConnectionSchedule",
    "ConnectionStatus",
    "CredentialField",
    "Credentials",
    "CursorKind",
    "Direction",
    "EngineSettings",
    "EngineStatus",
    "ErrorClassification",
    "ErrorType",
    "Execution",
    "ExecutionCancellation",
    "ExecutionKind",
    "HttpClient",
    "Instrument",
    "NeedsReauthError",
    "OpenClose",
    "OptionRight",
    "Page",
    "PaginationError",
    "PluginContractError",
    "PluginError",
    "PluginFailure",
    "PluginInfo",
    "Position",
    "QueuedSync",
    "RateLimit",
    "RateLimitStatus",
    "RateLimiter",
    "RecordError",
    "RecordValidationError",
    "Reports",
    "RequestChange",
    "RequestMetrics",
    "Resilience",
    "RetryContext",
    "RetryPolicy",
    "RunStatus",
    "ScheduledRun",
    "Scheduler",
    "SchedulerStats",
    "Severity",
    "Side",
    "StoreError",
    "StoredCancellation",
    "StoredTrade",
    "SyncError",
    "SyncInProgressError",
    "SyncProgress",
    "SyncQueue",
    "SyncRecordError",
    "SyncResult",
    "SyncRunInfo",
    "SyncStats",
    "SyncTrigger",
    "TokenAuth",
    "Trade",
    "TradeBatch",
    "TradeCancellation",
    "TradePage",
    "Vault",
    "VaultError",
    "WorkerStats",
    "__version__",
    "classify_error",
    "create_rate_limiter",
    "enable_logging",
    "get_broker",
    "get_broker_metadata",
    "get_default_resilience",
    "get_registry",
    "hookimpl",
    "is_broker_supported",
    "list_brokers",
    "list_plugins",
    "register_broker",
    "set_default_resilience",
    "unregister_broker",
    "with_rate_limit",
    "with_retry",
]
