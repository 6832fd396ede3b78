"""The store: SQLAlchemy 2 (async) over SQLite or PostgreSQL, migrated by Alembic.

One module per concern (``_connections``, ``_runs``, ``_trades``, ``_statistics``, ``_positions``),
joined into :class:`Store`; ``_executions`` stores and pairs a page's executions inside ``_trades``'s
transaction. The records it returns are the public ones of :mod:`brokersync.results`.
"""

from __future__ import annotations

from brokersync._store._cancellations import BatchCounts
from brokersync._store._database import safe_url
from brokersync._store._errors import store_errors, wrap_store_errors
from brokersync._store._fingerprints import fingerprint
from brokersync._store._records import ConnectionRow
from brokersync._store._run_warnings import warnings_json
from brokersync._store._store import Store
from brokersync._store._upsert import UpsertCounts

__all__ = [
    "BatchCounts",
    "ConnectionRow",
    "Store",
    "UpsertCounts",
    "fingerprint",
    "safe_url",
    "store_errors",
    "warnings_json",
    "wrap_store_errors",
]
