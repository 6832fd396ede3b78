"""The store: SQLAlchemy 2 (async) over SQLite or PostgreSQL, migrated by Alembic."""

from __future__ import annotations

from brokersync._store._cancellations import BatchCounts
from brokersync._store._records import (
    AccountInfo,
    ConnectionInfo,
    ConnectionRow,
    ConnectionStatus,
    RunStatus,
    StoredCancellation,
    StoredTrade,
    SyncRunInfo,
    SyncTrigger,
)
from brokersync._store._store import LeaseLostError, Store, store_errors, wrap_store_errors
from brokersync._store._trades import UpsertCounts, fingerprint

__all__ = [
    "AccountInfo",
    "BatchCounts",
    "ConnectionInfo",
    "ConnectionRow",
    "ConnectionStatus",
    "LeaseLostError",
    "RunStatus",
    "Store",
    "StoredCancellation",
    "StoredTrade",
    "SyncRunInfo",
    "SyncTrigger",
    "UpsertCounts",
    "fingerprint",
    "store_errors",
    "wrap_store_errors",
]
