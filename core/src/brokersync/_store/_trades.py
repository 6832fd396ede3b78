"""Trades: store a page (trades, cancellations, executions, positions, cursor and watermark in one transaction),
list and count."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import JSON, case, cast, delete, func, literal, null, select, text

from brokersync._store._base import Database
from brokersync._store._cancellations import (
    BatchCounts,
    cancellations_query,
    record_cancellations,
    with_cancellations,
)
from brokersync._store._executions import store_executions
from brokersync._store._positions import replace_positions
from brokersync._store._records import stored_cancellation, stored_trade
from brokersync._store._runs import release_lease, renew_lease, take_lease
from brokersync._store._schema import executions, round_trips, sync_cursors, trades
from brokersync._store._sql import run_sql
from brokersync._store._upsert import upsert_trades
from brokersync.models import Execution, ExecutionCancellation, Position, Trade, TradeCancellation
from brokersync.results import StoredCancellation, StoredTrade, SyncWarning

__all__ = ["TradeStore"]

_STREAM_CHUNK = 2000
_CURSOR_UPSERT = (
    "INSERT INTO sync_cursors (connection_id, account_id, cursor, watermark, updated_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (connection_id, account_id) DO UPDATE SET cursor = COALESCE(excluded.cursor, sync_cursors.cursor), "
    "watermark = COALESCE(excluded.watermark, sync_cursors.watermark), updated_at = excluded.updated_at"
)  # a cursor or watermark given as None keeps the stored one (a page without a cursor)


_EXISTING_TRADE_TABLES = text(
    "SELECT name FROM unnest(ARRAY['trades', 'executions', 'round_trips', 'open_lots']) AS name "
    "WHERE to_regclass(name) IS NOT NULL"
)


class TradeStore(Database):
    """The ``trades``, ``trade_cancellations`` and (write side) ``sync_cursors`` rows."""

    async def store_batch(
        self,
        *,
        connection_id: str,
        account_id: str,
        batch: Sequence[Trade],
        now: dt.datetime,
        cursor: str | None = None,
        watermark: dt.datetime | None = None,
        lease: tuple[str, dt.datetime] | None = None,
        cancellations: Sequence[TradeCancellation] = (),
        executions: Sequence[Execution] = (),
        execution_cancellations: Sequence[ExecutionCancellation] = (),
        positions: Sequence[Position] | None = None,
        pair: bool = True,
    ) -> BatchCounts:
        """Store one batch (and its cancellations), and move the account's cursor/watermark, in ONE transaction.

        ``lease`` = (holder, new expiry): the lease is renewed in the same transaction, and if this
        process lost it the whole batch is rolled back (:class:`LeaseLostError`). ``cursor`` and
        ``watermark`` are only written when given (a page without a cursor keeps the last one).
        ``executions`` and their busts are stored and (``pair``) paired into round trips, and
        ``positions`` (when not ``None``) replaces the account's snapshot, in the same transaction
        (see ``_executions.py``). The counts carry the warnings pairing found (``BatchCounts.warnings``),
        for the caller to report once the transaction committed.
        """
        async with self.write() as conn:
            if lease is not None:
                await renew_lease(conn, connection_id, lease[0], lease[1], now)
            counts = await upsert_trades(conn, connection_id=connection_id, account_id=account_id, batch=batch, now=now)
            cancelled = 0
            warnings: tuple[SyncWarning, ...] = ()
            if cancellations:
                cancelled = await record_cancellations(
                    conn, connection_id=connection_id, account_id=account_id, cancellations=cancellations, now=now
                )
            if executions or execution_cancellations:
                paired = await store_executions(
                    conn,
                    connection_id=connection_id,
                    account_id=account_id,
                    batch=executions,
                    busts=execution_cancellations,
                    now=now,
                    pair=pair,
                )
                counts, cancelled, warnings = counts + paired, cancelled + paired.cancelled, paired.warnings
            if positions is not None:
                await replace_positions(
                    conn, connection_id=connection_id, account_id=account_id, positions=positions, now=now
                )
            if cursor is not None or watermark is not None:
                await run_sql(conn, _CURSOR_UPSERT, (connection_id, account_id, cursor, watermark, now))
        await self._refresh_statistics(len(batch) + len(executions) + counts.imported)
        return BatchCounts(counts.imported, counts.skipped, counts.updated, cancelled, warnings)

    #: PostgreSQL: rows this store wrote, and the count at which it next refreshes the statistics.
    _written = 0
    _analyze_at = 1000

    async def _refresh_statistics(self, written: int) -> None:
        """Run ``ANALYZE`` on the trade tables each time this store's writes double (PostgreSQL).

        PostgreSQL plans from table statistics that autovacuum refreshes only a while after a bulk
        write; until then it takes a table of 100,000 fresh rows for a table of one row, and a
        listing right after a first big sync scanned every execution of an account once per trade.
        Doubling keeps it to a few cheap sampled passes per process (1k, 2k, 4k, ... rows).
        """
        if self.dialect != "postgresql" or not written:
            return
        self._written += written
        if self._written < self._analyze_at:
            return
        self._analyze_at = 2 * self._written
        async with self.write() as conn:
            names = (await conn.execute(_EXISTING_TRADE_TABLES)).scalars().all()  # older schemas lack some
            if names:
                await conn.execute(text(f"ANALYZE {', '.join(names)}"))

    async def reset_sync_cursors(
        self, connection_id: str, *, holder: str, now: dt.datetime, ttl: dt.timedelta
    ) -> int | None:
        """Delete the connection's cursors and watermarks under its lease, in ONE transaction.

        Returns how many accounts had one, or ``None`` (nothing changed) while another holder syncs it.
        """
        async with self.write() as conn:
            if not await take_lease(conn, connection_id, holder, "reset-sync-state", now, ttl):
                return None
            deleted = await conn.execute(delete(sync_cursors).where(sync_cursors.c.connection_id == connection_id))
            await release_lease(conn, connection_id, holder)
            return int(deleted.rowcount or 0)

    def _trade_query(
        self,
        *,
        connection_ids: Sequence[str] | None,
        account_id: str | None,
        symbol: str | None,
        since: dt.datetime | None,
        until: dt.datetime | None,
        include_cancelled: bool = False,
    ) -> Any:
        query = with_cancellations(select(trades), include_cancelled=include_cancelled)
        if connection_ids is not None:
            query = query.where(trades.c.connection_id.in_(list(connection_ids)))
        if account_id is not None:
            query = query.where(trades.c.account_id == account_id)
        if symbol is not None:
            query = query.where(trades.c.symbol == symbol)
        if since is not None:
            query = query.where(trades.c.opened_at >= since)
        if until is not None:
            query = query.where(trades.c.opened_at < until)
        return query

    async def iter_trades(
        self,
        *,
        connection_ids: Sequence[str] | None = None,
        account_id: str | None = None,
        symbol: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        limit: int | None = None,
        include_cancelled: bool = False,
    ) -> AsyncIterator[StoredTrade]:
        """Stream trades (oldest opened first) without loading them all in memory.

        Cancelled trades are left out unless ``include_cancelled`` (then marked, see ``StoredTrade``).
        """
        query = self._trade_query(
            connection_ids=connection_ids,
            account_id=account_id,
            symbol=symbol,
            since=since,
            until=until,
            include_cancelled=include_cancelled,
        ).order_by(trades.c.opened_at, trades.c.id)
        query = self._with_execution_sources(query)
        if limit is not None:
            query = query.limit(limit)
        async with self.read() as conn:
            result = await conn.stream(query.execution_options(yield_per=_STREAM_CHUNK))
            async for partition in result.partitions(_STREAM_CHUNK):
                for row in partition:
                    yield stored_trade(row)

    def _with_execution_sources(self, query: Any) -> Any:
        """``query`` with, for a paired round trip, the ``brokersync_source`` of its opening and closing
        executions' raw as JSON text (``''`` when there is none: it came by API), as the columns
        ``opening_source`` and ``closing_source``; both ``NULL`` for a trade that was not paired.

        Correlated scalar subqueries, each an equality on a whole primary key, not outer joins: with
        joins, PostgreSQL (on tables not yet analyzed, as after a first big sync) matched the
        executions by ``connection_id`` alone and listed 1,000 round trips in 160 s.
        """

        def end_id(end: str) -> Any:
            return (
                select(round_trips.c[end])
                .where(
                    round_trips.c.connection_id == trades.c.connection_id,
                    round_trips.c.account_id == trades.c.account_id,
                    round_trips.c.broker_trade_id == trades.c.broker_trade_id,
                )
                .correlate(trades)
                .scalar_subquery()
            )

        def source(end: str) -> Any:
            execution_id = end_id(end)
            if self.dialect == "postgresql":
                found: Any = func.json_extract_path_text(cast(executions.c.raw, JSON), "brokersync_source")
            else:
                found = func.json_extract(executions.c.raw, "$.brokersync_source")
            raw_source = (
                select(found)
                .where(
                    executions.c.connection_id == trades.c.connection_id,
                    executions.c.account_id == trades.c.account_id,
                    executions.c.broker_execution_id == execution_id,
                )
                .correlate(trades)
                .scalar_subquery()
            )
            return case((execution_id.is_(None), null()), else_=func.coalesce(raw_source, literal("")))

        return query.add_columns(
            source("opening_execution_id").label("opening_source"),
            source("closing_execution_id").label("closing_source"),
        )

    async def list_cancellations(
        self,
        *,
        connection_ids: Sequence[str] | None = None,
        account_id: str | None = None,
        without_trade: bool = False,
        limit: int | None = None,
    ) -> list[StoredCancellation]:
        """Tombstones, newest cancellation first; ``without_trade``: only those whose trade is not stored."""
        query = cancellations_query(
            connection_ids=connection_ids, account_id=account_id, without_trade=without_trade, limit=limit
        )
        async with self.read() as conn:
            return [stored_cancellation(row) for row in await conn.execute(query)]

    async def count_trades(
        self,
        *,
        connection_ids: Sequence[str] | None = None,
        account_id: str | None = None,
        include_cancelled: bool = False,
    ) -> int:
        """How many trades are stored (for the given connections/account), cancelled ones only if asked."""
        query = self._trade_query(
            connection_ids=connection_ids,
            account_id=account_id,
            symbol=None,
            since=None,
            until=None,
            include_cancelled=include_cancelled,
        ).with_only_columns(func.count(), maintain_column_froms=True)
        async with self.read() as conn:
            return int((await conn.execute(query)).scalar_one())
