"""brokersync: a normalized, deduplicated copy of every trade a user made at any broker.

This module is the whole public API. Broker plugins implement the hooks in
:mod:`brokersync.hookspecs` (mark them with :data:`hookimpl`); integrators use the registry
functions below and, for syncing, the engine.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from typing import TYPE_CHECKING, Any

from brokersync._exports import show_as as _show_as
from brokersync._registry import ENTRY_POINT_GROUP, BrokerRegistry, PluginFailure, PluginInfo, get_registry
from brokersync._version import __version__
from brokersync._versions import PLUGIN_API_VERSION
from brokersync.errors import (
    AccountAlreadyConnectedError,
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
    LeaseLostError,
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
    SyncQueueError,
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
    from brokersync._config import EngineSettings
    from brokersync._context import BrokerContext, HttpClient
    from brokersync._engine import BrokerSync
    from brokersync._log import enable_logging
    from brokersync._metrics import RequestMetrics
    from brokersync._page import Page
    from brokersync._queue import SyncQueue
    from brokersync._resilience import Resilience
    from brokersync._scheduler import ConnectionSchedule, ScheduledRun, Scheduler, SchedulerStats
    from brokersync._stats import Alert, AlertKind, AlertThresholds, BrokerStats, SyncStats
    from brokersync._vault import Vault
    from brokersync.results import (
        AccountInfo,
        ConnectionInfo,
        ConnectionStatus,
        ConnectResult,
        EngineStatus,
        LeaseInfo,
        ProgressCallback,
        QueuedSync,
        RecordSource,
        RunStatus,
        StoredCancellation,
        StoredPosition,
        StoredTrade,
        SyncProgress,
        SyncRecordError,
        SyncResult,
        SyncRunInfo,
        SyncTrigger,
        SyncWarning,
        WorkerStats,
    )

for _eager in (BrokerRegistry, PluginFailure, PluginInfo, get_registry):
    _show_as(_eager, "brokersync")

# Heavy parts (httpx, cattrs, loguru, SQLAlchemy) load on first use, so `import brokersync` and the
# CLI start fast. Name -> module that defines it.
_LAZY = {
    "Broker": "brokersync._broker",
    "RecordError": "brokersync._broker",
    "TradeBatch": "brokersync._broker",
    "BrokerContext": "brokersync._context",
    "HttpClient": "brokersync._context",
    "Page": "brokersync._page",
    # The sync engine and what it returns (SQLAlchemy loads with the engine).
    "BrokerSync": "brokersync._engine",
    "EngineSettings": "brokersync._config",
    "AccountInfo": "brokersync.results",
    "ConnectResult": "brokersync.results",
    "ConnectionInfo": "brokersync.results",
    "ConnectionStatus": "brokersync.results",
    "EngineStatus": "brokersync.results",
    "LeaseInfo": "brokersync.results",
    "ProgressCallback": "brokersync.results",
    "RecordSource": "brokersync.results",
    "RunStatus": "brokersync.results",
    "StoredCancellation": "brokersync.results",
    "StoredPosition": "brokersync.results",
    "StoredTrade": "brokersync.results",
    "SyncProgress": "brokersync.results",
    "SyncRecordError": "brokersync.results",
    "SyncResult": "brokersync.results",
    "SyncRunInfo": "brokersync.results",
    "SyncTrigger": "brokersync.results",
    "SyncWarning": "brokersync.results",
    "enable_logging": "brokersync._log",
    # Monitoring: sync health from the audit trail, and alert checks.
    "Alert": "brokersync._stats",
    "AlertKind": "brokersync._stats",
    "AlertThresholds": "brokersync._stats",
    "BrokerStats": "brokersync._stats",
    "SyncStats": "brokersync._stats",
    # Broker traffic: what an engine is given (the mechanics are in brokersync.resilience).
    "RequestMetrics": "brokersync._metrics",
    "Resilience": "brokersync._resilience",
    "Vault": "brokersync._vault",
    # The embedded scheduler.
    "ConnectionSchedule": "brokersync._scheduler",
    "ScheduledRun": "brokersync._scheduler",
    "Scheduler": "brokersync._scheduler",
    "SchedulerStats": "brokersync._scheduler",
    # Scale-out: sync jobs on a saq queue (saq loads only when a queue is made).
    "QueuedSync": "brokersync.results",
    "SyncQueue": "brokersync._queue",
    "WorkerStats": "brokersync.results",
}

# Moved to brokersync.resilience; importable from here, with a DeprecationWarning, for one release.
_MOVED = frozenset(
    {
        "BrokerHttpClient",
        "CircuitBreaker",
        "CircuitState",
        "RateLimitStatus",
        "RateLimiter",
        "RetryContext",
        "create_rate_limiter",
        "get_default_resilience",
        "set_default_resilience",
        "with_rate_limit",
        "with_retry",
    }
)

if "loguru" in sys.modules:
    # The application already uses loguru: silence brokersync's records now (a library stays quiet
    # unless the application asks). Otherwise brokersync._log does it when first imported.
    importlib.import_module("brokersync._log")


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        warnings.warn(
            f"brokersync.{name} moved to brokersync.resilience.{name}; the old import goes away in the next release",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module("brokersync.resilience"), name)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'brokersync' has no attribute {name!r}")
    value = _show_as(getattr(importlib.import_module(module), name), "brokersync")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *_MOVED})


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
    "AccountAlreadyConnectedError",
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
    "LeaseInfo",
    "LeaseLostError",
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
    "ProgressCallback",
    "QueuedSync",
    "RateLimit",
    "RecordError",
    "RecordSource",
    "RecordValidationError",
    "Reports",
    "RequestChange",
    "RequestMetrics",
    "Resilience",
    "RetryPolicy",
    "RunStatus",
    "ScheduledRun",
    "Scheduler",
    "SchedulerStats",
    "Severity",
    "Side",
    "StoreError",
    "StoredCancellation",
    "StoredPosition",
    "StoredTrade",
    "SyncError",
    "SyncInProgressError",
    "SyncProgress",
    "SyncQueue",
    "SyncQueueError",
    "SyncRecordError",
    "SyncResult",
    "SyncRunInfo",
    "SyncStats",
    "SyncTrigger",
    "SyncWarning",
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
    "enable_logging",
    "get_broker",
    "get_broker_metadata",
    "get_registry",
    "hookimpl",
    "is_broker_supported",
    "list_brokers",
    "list_plugins",
    "register_broker",
    "unregister_broker",
]
