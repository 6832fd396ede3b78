"""Read-only operations of :class:`~brokersync.BrokerSync`: connections, trades, runs, status.

A mixin, so the engine module stays about syncing; ``BrokerSync`` provides the store, the
readiness check and the ownership check these methods rely on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from brokersync._results import EngineStatus
from brokersync._store import (
    ConnectionInfo,
    ConnectionStatus,
    RunStatus,
    Store,
    StoredTrade,
    SyncRunInfo,
    store_errors,
    wrap_store_errors,
)
from brokersync._store._database import safe_url
from brokersync.errors import BrokerSyncError

if TYPE_CHECKING:
    from brokersync._store import ConnectionRow
    from brokersync._vault import Vault

__all__ = ["EngineQueries"]


class EngineQueries:
    """Listings and status; mixed into :class:`~brokersync.BrokerSync`."""

    _store: Store
    database_url: str

    @property
    def vault(self) -> Vault:
        raise NotImplementedError

    async def _ensure_ready(self) -> None:
        raise NotImplementedError

    async def _own_row(self, connection_id: str, user_id: str) -> ConnectionRow:
        raise NotImplementedError

    @store_errors("reading a connection")
    async def get_connection(self, connection_id: str, user_id: str) -> ConnectionInfo:
        """One of the user's connections, with its accounts and their sync positions."""
        await self._own_row(connection_id, user_id)
        return (await self._store.list_connections(connection_id=connection_id))[0]

    @store_errors("listing connections")
    async def list_connections(
        self, *, user_id: str | None = None, status: ConnectionStatus | str | None = None, broker: str | None = None
    ) -> list[ConnectionInfo]:
        """Connections (all users' when ``user_id`` is ``None``: operator use), oldest first."""
        await self._ensure_ready()
        return await self._store.list_connections(
            user_id=user_id, status=ConnectionStatus(status) if status else None, broker=broker
        )

    async def _connection_ids(self, user_id: str | None, connection_id: str | None) -> list[str] | None:
        if connection_id is not None:
            if user_id is not None:
                await self._own_row(connection_id, user_id)
            return [connection_id]
        if user_id is None:
            return None
        return [c.id for c in await self._store.list_connections(user_id=user_id, with_accounts=False)]

    async def iter_trades(
        self,
        *,
        user_id: str | None = None,
        connection_id: str | None = None,
        account_id: str | None = None,
        symbol: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        limit: int | None = None,
        include_cancelled: bool = False,
    ) -> AsyncIterator[StoredTrade]:
        """Stream stored trades (oldest opened first), filtered; memory stays flat.

        Trades the broker cancelled (busted) are left out unless ``include_cancelled``; then they
        come with ``cancelled_at`` and ``cancel_reason`` set.
        """
        await self._ensure_ready()
        try:
            ids = await self._connection_ids(user_id, connection_id)
            async for trade in self._store.iter_trades(
                connection_ids=ids,
                account_id=account_id,
                symbol=symbol,
                since=since,
                until=until,
                limit=limit,
                include_cancelled=include_cancelled,
            ):
                yield trade
        except SQLAlchemyError as exc:
            raise wrap_store_errors(exc, "reading trades") from None

    @store_errors("counting trades")
    async def count_trades(
        self, *, user_id: str | None = None, connection_id: str | None = None, include_cancelled: bool = False
    ) -> int:
        """How many trades are stored (for a user or a connection); cancelled ones only if ``include_cancelled``."""
        await self._ensure_ready()
        ids = await self._connection_ids(user_id, connection_id)
        return await self._store.count_trades(connection_ids=ids, include_cancelled=include_cancelled)

    @store_errors("listing sync runs")
    async def list_runs(
        self,
        *,
        user_id: str | None = None,
        connection_id: str | None = None,
        status: RunStatus | str | None = None,
        limit: int | None = 50,
    ) -> list[SyncRunInfo]:
        """The audit trail, newest first."""
        await self._ensure_ready()
        ids = await self._connection_ids(user_id, connection_id)
        return await self._store.list_runs(
            connection_ids=ids, status=RunStatus(status) if status else None, limit=limit
        )

    @store_errors("reading the status")
    async def status(self) -> EngineStatus:
        """Database, schema, connections, trades and key health in one summary."""
        revision = await self._store.revision()
        counts: dict[str, int] = {}
        last: dict[str, int] = {}
        trades = 0
        if revision is not None:
            for info in await self._store.list_connections(with_accounts=False):
                counts[info.status.value] = counts.get(info.status.value, 0) + 1
                if info.last_sync_status is not None:
                    last[info.last_sync_status.value] = last.get(info.last_sync_status.value, 0) + 1
            trades = await self._store.count_trades()
        try:
            key_id: str | None = self.vault.active_key_id
        except BrokerSyncError:
            key_id = None
        return EngineStatus(
            database=safe_url(self.database_url),
            dialect=self._store.dialect,
            schema_revision=revision,
            head_revision=Store.head(),
            connections=counts,
            trades=trades,
            active_key_id=key_id,
            last_runs=last,
        )
