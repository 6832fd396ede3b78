"""The store: every read and write the engine does, one short transaction each.

A sync needs few of them: ``begin_run`` (lease, stale runs, audit row), ``sync_accounts`` (a read;
a write only when the broker's accounts changed), ``store_batch`` per page, ``finish_sync`` (audit
row, connection status, lease release). Their statements are plain SQL on the driver
(``_sql.py``); on SQLite, writers of this process queue on an asyncio lock and reads take no lock.

Only the engine (and the CLI through it) uses this class; integrators go through
:class:`brokersync.BrokerSync`.
"""

from __future__ import annotations

from brokersync._store._connections import ConnectionStore
from brokersync._store._positions import PositionStore
from brokersync._store._runs import RunStore
from brokersync._store._statistics import StatisticsStore
from brokersync._store._trades import TradeStore

__all__ = ["Store"]


class Store(ConnectionStore, RunStore, TradeStore, StatisticsStore, PositionStore):
    """Database access for the engine: one class per concern, one object for the caller.

    Args:
        url: SQLAlchemy async URL (``sqlite+aiosqlite:///...`` or ``postgresql+asyncpg://...``).
        engine: An existing async engine to use instead (the caller disposes it).
    """
