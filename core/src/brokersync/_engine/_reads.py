"""What :class:`~brokersync.BrokerSync` reads: connections, trades, positions, runs, status, sync statistics,
and the retry of failed syncs (the seed's dead-letter queue).

A base class that holds the engine's parts (no stubs): :class:`~brokersync.BrokerSync` extends it
with the operations that write.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from brokersync._engine._fanout import sync_each
from brokersync._engine._parts import EngineParts
from brokersync._stats import SyncStats, build_stats
from brokersync._store import Store, safe_url, store_errors, wrap_store_errors
from brokersync.errors import BrokerSyncError
from brokersync.results import (
    ConnectionInfo,
    ConnectionStatus,
    EngineStatus,
    ProgressCallback,
    RunStatus,
    StoredCancellation,
    StoredPosition,
    StoredTrade,
    SyncResult,
    SyncRunInfo,
)

if TYPE_CHECKING:
    pass

__all__ = ["EngineReads"]


class EngineReads:
    """Listings, status and monitoring over the engine's parts; extended by :class:`~brokersync.BrokerSync`.

    Args:
        parts: The engine's collaborators.
        database_url: The database (shown with its password hidden).
    """

    def __init__(self, parts: EngineParts, database_url: str) -> None:
        self._reads = parts
        self._database_url = database_url

    @store_errors("reading a connection")
    async def get_connection(self, connection_id: str, user_id: str) -> ConnectionInfo:
        """One of the user's connections, with its accounts and their sync positions."""
        await self._reads.own_row(connection_id, user_id)
        return (await self._reads.store.list_connections(connection_id=connection_id))[0]

    @store_errors("listing connections")
    async def list_connections(
        self, *, user_id: str | None = None, status: ConnectionStatus | str | None = None, broker: str | None = None
    ) -> list[ConnectionInfo]:
        """Connections (all users' when ``user_id`` is ``None``: operator use), oldest first."""
        await self._reads.readiness.ensure()
        return await self._reads.store.list_connections(
            user_id=user_id, status=ConnectionStatus(status) if status else None, broker=broker
        )

    async def _connection_ids(self, user_id: str | None, connection_id: str | None) -> list[str] | None:
        if connection_id is not None:
            if user_id is not None:
                await self._reads.own_row(connection_id, user_id)
            return [connection_id]
        if user_id is None:
            return None
        return [c.id for c in await self._reads.store.list_connections(user_id=user_id, with_accounts=False)]

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
        await self._reads.readiness.ensure()
        try:
            ids = await self._connection_ids(user_id, connection_id)
            async for trade in self._reads.store.iter_trades(
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

    @store_errors("listing cancelled trades")
    async def list_cancellations(
        self,
        *,
        user_id: str | None = None,
        connection_id: str | None = None,
        account_id: str | None = None,
        without_trade: bool = False,
        limit: int | None = None,
    ) -> list[StoredCancellation]:
        """The trades brokers cancelled (busted): tombstones, newest cancellation first.

        Each says whether the cancelled trade itself is stored. ``without_trade`` keeps only the
        tombstones of trades brokersync never received (e.g. booked and busted before the synced
        window), which trade listings cannot show.
        """
        await self._reads.readiness.ensure()
        ids = await self._connection_ids(user_id, connection_id)
        return await self._reads.store.list_cancellations(
            connection_ids=ids, account_id=account_id, without_trade=without_trade, limit=limit
        )

    @store_errors("reading open positions")
    async def positions(
        self, *, user_id: str | None = None, connection_id: str | None = None, account: str | None = None
    ) -> list[StoredPosition]:
        """Open positions per account and instrument (all users' when ``user_id`` is ``None``: operator use).

        For a broker whose executions the core pairs, these are the open lots (signed quantity,
        quantity-weighted average entry price, when the oldest lot opened); for a broker that pairs
        by itself and reports positions, its last snapshot (``source == "broker snapshot"``).
        """
        await self._reads.readiness.ensure()
        ids = await self._connection_ids(user_id, connection_id)
        return await self._reads.store.positions(connection_ids=ids, account_id=account)

    @store_errors("counting trades")
    async def count_trades(
        self, *, user_id: str | None = None, connection_id: str | None = None, include_cancelled: bool = False
    ) -> int:
        """How many trades are stored (for a user or a connection); cancelled ones only if ``include_cancelled``."""
        await self._reads.readiness.ensure()
        ids = await self._connection_ids(user_id, connection_id)
        return await self._reads.store.count_trades(connection_ids=ids, include_cancelled=include_cancelled)

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
        await self._reads.readiness.ensure()
        ids = await self._connection_ids(user_id, connection_id)
        return await self._reads.store.list_runs(
            connection_ids=ids, status=RunStatus(status) if status else None, limit=limit
        )

    @store_errors("reading the status")
    async def status(self) -> EngineStatus:
        """Database, schema, connections, trades and key health in one summary."""
        revision = await self._reads.store.revision()
        counts: dict[str, int] = {}
        last: dict[str, int] = {}
        trades = 0
        if revision is not None:
            for info in await self._reads.store.list_connections(with_accounts=False):
                counts[info.status.value] = counts.get(info.status.value, 0) + 1
                if info.last_sync_status is not None:
                    last[info.last_sync_status.value] = last.get(info.last_sync_status.value, 0) + 1
            trades = await self._reads.store.count_trades()
        try:
            key_id: str | None = self._reads.secrets.active_key_id()
        except BrokerSyncError:
            key_id = None
        return EngineStatus(
            database=safe_url(self._database_url),
            dialect=self._reads.store.dialect,
            schema_revision=revision,
            head_revision=Store.head(),
            connections=counts,
            trades=trades,
            active_key_id=key_id,
            last_runs=last,
        )

    # -- monitoring --------------------------------------------------------------------------------

    @store_errors("computing sync statistics")
    async def sync_stats(
        self, *, since: dt.datetime | None = None, user_id: str | None = None, broker: str | None = None
    ) -> SyncStats:
        """Sync health from the audit trail, per broker and in total (see :class:`~brokersync.SyncStats`).

        Computed in the database (one grouped scan for the sums, a partial sort per broker for the
        p95), never by loading the audit rows. Check it with
        :meth:`SyncStats.alerts <brokersync.SyncStats.alerts>`.

        Args:
            since: Only runs started at or after this tz-aware time (default: the whole trail).
            user_id: Only this user's runs and connections (default: every user, the operator view).
            broker: Only this broker key.

        Raises:
            ValueError: ``since`` is naive.
            StoreError: The database failed.
        """
        if since is not None and (since.tzinfo is None or since.utcoffset() is None):
            raise ValueError(f"since must be a timezone-aware datetime, got {since!r}")
        await self._reads.readiness.ensure()
        rows = await self._reads.store.run_totals(since=since, user_id=user_id, broker=broker)
        durations = {str(row["broker"]): int(row["duration_count"] or 0) for row in rows}
        p95 = await self._reads.store.duration_p95(durations, since=since, user_id=user_id, broker=broker)
        reauth = await self._reads.store.count_connections(
            status=ConnectionStatus.NEEDS_REAUTH, user_id=user_id, broker=broker
        )
        return build_stats(
            rows=rows,
            p95=p95,
            needs_reauth=reauth,
            since=since,
            computed_at=self._reads.clock(),
            user_id=user_id,
            broker=broker,
        )

    @store_errors("listing the failed connections")
    async def failed_connections(
        self, *, user_id: str | None = None, broker: str | None = None
    ) -> list[ConnectionInfo]:
        """Active connections whose last sync failed, oldest first (what :meth:`retry_failed_syncs` syncs).

        ``needs_reauth`` connections are not among them: they need :meth:`reconnect_broker` first.
        """
        await self._reads.readiness.ensure()
        active = await self._reads.store.list_connections(
            user_id=user_id, status=ConnectionStatus.ACTIVE, broker=broker, with_accounts=False
        )
        return [c for c in active if c.last_sync_status is RunStatus.FAILED]

    async def retry_failed_syncs(
        self,
        *,
        user_id: str | None = None,
        broker: str | None = None,
        concurrency: int | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> list[SyncResult]:
        """Sync again every active connection whose last sync failed (the seed's manual retry).

        The audit trail keeps every failed run; this re-runs those connections incrementally (like
        :meth:`run_scheduled_sync`: each account from its watermark, which a failed run never
        moves), at most ``concurrency`` at once. One failing again never stops the others.

        Args:
            user_id: Only this user's connections (default: every user).
            broker: Only this broker's connections.
            concurrency: Syncs at once (default: the engine's setting).
            on_progress: Called with a :class:`~brokersync.SyncProgress` after each stored batch.

        Returns:
            One result per retried connection, in connection order (empty when none failed).
        """
        failed = await self.failed_connections(user_id=user_id, broker=broker)
        return await sync_each(
            self._reads, failed, concurrency=concurrency or self._reads.settings.concurrency, on_progress=on_progress
        )
