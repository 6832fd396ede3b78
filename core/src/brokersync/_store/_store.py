"""The store: every read and write the engine does, one short transaction each.

A sync needs few of them: ``begin_run`` (lease, stale runs, audit row), ``sync_accounts`` (a read;
a write only when the broker's accounts changed), ``store_batch`` per page, ``finish_sync`` (audit
row, connection status, lease release). Their statements are plain SQL on the driver
(``_sql.py``); on SQLite, writers of this process queue on an asyncio lock and reads take no lock.

Only the engine (and the CLI through it) uses this class; integrators go through
:class:`brokersync.BrokerSync`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import and_, case, delete, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from brokersync._store._cancellations import (
    BatchCounts,
    cancellations_query,
    record_cancellations,
    with_cancellations,
)
from brokersync._store._database import READ_ONLY, create_engine, current_revision, head_revision, upgrade_schema
from brokersync._store._records import (
    AccountInfo,
    ConnectionInfo,
    ConnectionRow,
    ConnectionStatus,
    RunStatus,
    StoredCancellation,
    StoredTrade,
    SyncRunInfo,
    connection_info,
    run_info,
    stored_cancellation,
    stored_trade,
)
from brokersync._store._schema import (
    accounts,
    connections,
    sync_cursors,
    sync_leases,
    sync_runs,
    trade_cancellations,
    trades,
)
from brokersync._store._sql import run_sql, update_sql
from brokersync._store._trades import dialect_insert, upsert_trades
from brokersync._store._types import parse_utc
from brokersync.errors import StoreError, SyncInProgressError
from brokersync.models import Account, Trade, TradeCancellation

__all__ = ["LeaseLostError", "Store", "store_errors", "wrap_store_errors"]

_STREAM_CHUNK = 2000


class LeaseLostError(SyncInProgressError):
    """This process's lease on a connection expired and another process took it over."""


# The upserts are built once per dialect: building an ON CONFLICT construct (its "excluded" alias
# copies the table's columns) cost more CPU than running the statement.


@functools.cache
def _accounts_upsert(dialect: str) -> Any:
    stmt = dialect_insert(dialect)(accounts)
    return stmt.on_conflict_do_update(
        index_elements=[accounts.c.connection_id, accounts.c.account_id],
        set_={k: stmt.excluded[k] for k in ("name", "currency", "type", "updated_at")},
    )


_LEASE_TAKE = (
    "INSERT INTO sync_leases (connection_id, holder, run_id, acquired_at, expires_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (connection_id) DO UPDATE SET holder = excluded.holder, run_id = excluded.run_id, "
    "acquired_at = excluded.acquired_at, expires_at = excluded.expires_at "
    "WHERE sync_leases.expires_at <= ? RETURNING holder"
)  # taken when free, or when the holder's lease has expired
_LEASE_RENEW = "UPDATE sync_leases SET expires_at = ? WHERE connection_id = ? AND holder = ? RETURNING holder"
_LEASE_RELEASE = "DELETE FROM sync_leases WHERE connection_id = ? AND holder = ?"
_CURSOR_UPSERT = (
    "INSERT INTO sync_cursors (connection_id, account_id, cursor, watermark, updated_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (connection_id, account_id) DO UPDATE SET cursor = COALESCE(excluded.cursor, sync_cursors.cursor), "
    "watermark = COALESCE(excluded.watermark, sync_cursors.watermark), updated_at = excluded.updated_at"
)  # a cursor or watermark given as None keeps the stored one (a page without a cursor)
_INTERRUPT = (
    "UPDATE sync_runs SET status = ?, finished_at = ?, error_message = ? "
    "WHERE connection_id = ? AND status = ? AND id <> ? RETURNING id"
)


_CONNECTION_QUERY = f"SELECT {', '.join(ConnectionRow._fields)} FROM connections WHERE id = ?"  # noqa: S608 - names from code
_ACCOUNTS_QUERY = (
    "SELECT a.account_id, a.name, a.currency, a.type, c.watermark, c.cursor FROM accounts a "
    "LEFT JOIN sync_cursors c ON c.connection_id = a.connection_id AND c.account_id = a.account_id "
    "WHERE a.connection_id = ? ORDER BY a.account_id"
)


async def _accounts_of(conn: AsyncConnection, connection_id: str) -> list[AccountInfo]:
    rows = await run_sql(conn, _ACCOUNTS_QUERY, (connection_id,))
    return [
        AccountInfo(
            connection_id=connection_id,
            account_id=account_id,
            name=name,
            currency=currency,
            type=type_,
            watermark=parse_utc(watermark),
            cursor=cursor,
        )
        for account_id, name, currency, type_, watermark, cursor in rows
    ]


class Store:
    """Database access for the engine.

    Args:
        url: SQLAlchemy async URL (``sqlite+aiosqlite:///...`` or ``postgresql+asyncpg://...``).
        engine: An existing async engine to use instead (the caller disposes it).
    """

    def __init__(self, url: str | None = None, *, engine: AsyncEngine | None = None) -> None:
        if engine is None:
            if url is None:
                raise ValueError("Store needs a database url or an engine")
            engine = create_engine(url)
            self._owns_engine = True
        else:
            self._owns_engine = False
        self.engine = engine
        self._write_lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction. On SQLite, this process's writers queue on an asyncio lock.

        SQLite has one writer at a time; without the lock, concurrent syncs of one process would
        wait for each other inside SQLite's sleep-and-retry busy handler (slow, and each waiter
        holds a pooled connection). Other processes still meet the busy timeout as before.
        """
        if self.engine.dialect.name != "sqlite":
            async with self.engine.begin() as conn:
                yield conn
            return
        loop = asyncio.get_running_loop()
        if self._write_lock is None or self._lock_loop is not loop:  # a lock belongs to one event loop
            self._write_lock, self._lock_loop = asyncio.Lock(), loop
        async with self._write_lock, self.engine.begin() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only connection: on SQLite it takes no write lock (see ``_database.READ_ONLY``)."""
        async with self.engine.connect() as conn:
            if self.engine.dialect.name == "sqlite":
                await conn.execution_options(**{READ_ONLY: True})
            yield conn

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    async def aclose(self) -> None:
        """Close the connection pool (if this store created it)."""
        if self._owns_engine:
            await self.engine.dispose()

    # -- schema ----------------------------------------------------------------------------------

    async def upgrade(self, target: str = "head") -> tuple[str | None, str | None]:
        """Migrate the schema; return the revision before and after."""
        return await upgrade_schema(self.engine, target)

    async def revision(self) -> str | None:
        """The database's schema revision (``None``: empty database)."""
        return await current_revision(self.engine)

    @staticmethod
    def head() -> str:
        """The schema revision this brokersync ships."""
        return head_revision()

    # -- connections -----------------------------------------------------------------------------

    async def create_connection(
        self, values: Mapping[str, Any], account_list: Sequence[Account], now: dt.datetime
    ) -> None:
        """Insert a connection and its accounts in one transaction."""
        async with self._write() as conn:
            await conn.execute(insert(connections), [dict(values)])
            await self._upsert_accounts(conn, str(values["id"]), account_list, now)

    async def _upsert_accounts(
        self, conn: AsyncConnection, connection_id: str, account_list: Sequence[Account], now: dt.datetime
    ) -> None:
        if not account_list:
            return
        stmt = _accounts_upsert(conn.dialect.name)
        await conn.execute(
            stmt,
            [
                {
                    "connection_id": connection_id,
                    "account_id": a.id,
                    "name": a.name,
                    "currency": a.currency,
                    "type": a.type,
                    "created_at": now,
                    "updated_at": now,
                }
                for a in account_list
            ],
        )

    async def upsert_accounts(self, connection_id: str, account_list: Sequence[Account], now: dt.datetime) -> None:
        """Add new accounts and refresh the names of known ones."""
        async with self._write() as conn:
            await self._upsert_accounts(conn, connection_id, account_list, now)

    async def connection_row(self, connection_id: str) -> ConnectionRow | None:
        """The connection's identity, status and ciphertexts, for the engine only."""
        async with self._read() as conn:
            rows = await run_sql(conn, _CONNECTION_QUERY, (connection_id,))
        return ConnectionRow(*rows[0]) if rows else None

    async def update_connection(self, connection_id: str, **values: Any) -> None:
        """Set columns of a connection."""
        async with self._write() as conn:
            await conn.execute(update(connections).where(connections.c.id == connection_id).values(**values))

    async def delete_connection(self, connection_id: str) -> None:
        """Delete a connection with its accounts, cursors, trades, tombstones and lease (audit rows stay)."""
        async with self._write() as conn:
            await conn.execute(delete(sync_leases).where(sync_leases.c.connection_id == connection_id))
            await conn.execute(delete(trades).where(trades.c.connection_id == connection_id))
            await conn.execute(delete(trade_cancellations).where(trade_cancellations.c.connection_id == connection_id))
            await conn.execute(delete(sync_cursors).where(sync_cursors.c.connection_id == connection_id))
            await conn.execute(delete(accounts).where(accounts.c.connection_id == connection_id))
            await conn.execute(delete(connections).where(connections.c.id == connection_id))

    async def list_accounts(self, connection_id: str) -> list[AccountInfo]:
        """The connection's accounts with their watermark and cursor."""
        async with self._read() as conn:
            return await _accounts_of(conn, connection_id)

    async def sync_accounts(
        self, connection_id: str, account_list: Sequence[Account], now: dt.datetime
    ) -> list[AccountInfo]:
        """Add new accounts, refresh changed ones, and return all with their sync positions.

        Usually nothing changed since the last sync: then this is one read and no write
        transaction (the positions cannot move meanwhile: the caller holds the sync lease).
        """
        async with self._read() as conn:
            stored = await _accounts_of(conn, connection_id)
        known = {a.account_id: (a.name, a.currency, a.type) for a in stored}
        if all(known.get(a.id) == (a.name, a.currency, a.type) for a in account_list):
            return stored
        async with self._write() as conn:
            await self._upsert_accounts(conn, connection_id, account_list, now)
            return await _accounts_of(conn, connection_id)

    async def list_connections(
        self,
        *,
        user_id: str | None = None,
        status: ConnectionStatus | None = None,
        broker: str | None = None,
        connection_id: str | None = None,
        with_accounts: bool = True,
    ) -> list[ConnectionInfo]:
        """Connections matching every given filter, oldest first."""
        query = select(connections).order_by(connections.c.created_at, connections.c.id)
        if user_id is not None:
            query = query.where(connections.c.user_id == user_id)
        if status is not None:
            query = query.where(connections.c.status == ConnectionStatus(status).value)
        if broker is not None:
            query = query.where(connections.c.broker == broker)
        if connection_id is not None:
            query = query.where(connections.c.id == connection_id)
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        result = []
        for row in rows:
            account_rows = await self.list_accounts(row.id) if with_accounts else []
            result.append(connection_info(row, account_rows))
        return result

    # -- secrets rotation ------------------------------------------------------------------------

    async def rotate_secrets(self, transform: Callable[[str, str, str], str | None], *, batch_size: int = 200) -> int:
        """Re-encrypt secrets: ``transform(connection_id, column, ciphertext)`` returns the new
        ciphertext or ``None`` (unchanged). One transaction per batch; returns how many rows changed.
        """
        moved = 0
        after = ""
        while True:
            async with self._write() as conn:
                query = (
                    select(connections.c.id, connections.c.credentials, connections.c.token)
                    .where(connections.c.id > after)
                    .order_by(connections.c.id)
                    .limit(batch_size)
                )
                rows = (await conn.execute(query)).all()
                if not rows:
                    return moved
                for row in rows:
                    values: dict[str, str] = {}
                    for column in ("credentials", "token"):
                        current = getattr(row, column)
                        if current:
                            new = transform(row.id, column, current)
                            if new is not None and new != current:
                                values[column] = new
                    if values:
                        await conn.execute(update(connections).where(connections.c.id == row.id).values(**values))
                        moved += 1
                after = rows[-1].id

    # -- lease -----------------------------------------------------------------------------------

    async def acquire_lease(
        self, connection_id: str, *, holder: str, run_id: str, now: dt.datetime, ttl: dt.timedelta
    ) -> bool:
        """Take the connection's lease if it is free or expired. Atomic across processes."""
        async with self._write() as conn:
            return await _acquire(conn, connection_id, holder, run_id, now, ttl)

    async def begin_run(
        self,
        connection_id: str,
        *,
        holder: str,
        run_id: str,
        now: dt.datetime,
        ttl: dt.timedelta,
        run: Mapping[str, Any],
    ) -> bool:
        """Start a sync in ONE transaction: take the lease, mark runs a dead process left
        ``running`` as ``interrupted``, and open this run's audit row (``run``, status running).

        Returns ``False``, writing nothing, when another holder has the lease. Once this commits,
        a crash leaves the audit row and a lease that expires by itself, as separate commits did.
        """
        async with self._write() as conn:
            if not await _acquire(conn, connection_id, holder, run_id, now, ttl):
                return False
            await _interrupt(conn, connection_id, run_id, now)
            columns = list(run)
            marks = ", ".join("?" * len(columns))
            sql = f"INSERT INTO sync_runs ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608 - names from code
            await run_sql(conn, sql, [run[name] for name in columns])
            return True

    async def lease_holder(self, connection_id: str) -> tuple[str, dt.datetime] | None:
        """Who holds the connection's lease and until when (``None``: nobody)."""
        async with self._read() as conn:
            row = (
                await conn.execute(
                    select(sync_leases.c.holder, sync_leases.c.expires_at).where(
                        sync_leases.c.connection_id == connection_id
                    )
                )
            ).first()
            return (row.holder, row.expires_at) if row else None

    @staticmethod
    async def _renew(conn: AsyncConnection, connection_id: str, holder: str, expires_at: dt.datetime) -> None:
        renewed = await run_sql(conn, _LEASE_RENEW, (expires_at, connection_id, holder))
        if len(renewed) != 1:
            raise LeaseLostError(
                f"connection {connection_id}: this sync's lease expired and another sync took over; "
                "nothing from the current batch was stored"
            )

    async def release_lease(self, connection_id: str, *, holder: str) -> None:
        """Give the lease back (only if this holder still has it)."""
        async with self._write() as conn:
            await _release(conn, connection_id, holder)

    async def reset_sync_cursors(
        self, connection_id: str, *, holder: str, now: dt.datetime, ttl: dt.timedelta
    ) -> int | None:
        """Delete the connection's cursors and watermarks under its lease, in ONE transaction.

        Returns how many accounts had one, or ``None`` (nothing changed) while another holder syncs it.
        """
        async with self._write() as conn:
            if not await _acquire(conn, connection_id, holder, "reset-sync-state", now, ttl):
                return None
            deleted = await conn.execute(delete(sync_cursors).where(sync_cursors.c.connection_id == connection_id))
            await _release(conn, connection_id, holder)
            return int(deleted.rowcount or 0)

    # -- trades ----------------------------------------------------------------------------------

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
    ) -> BatchCounts:
        """Store one batch (and its cancellations), and move the account's cursor/watermark, in ONE transaction.

        ``lease`` = (holder, new expiry): the lease is renewed in the same transaction, and if this
        process lost it the whole batch is rolled back (:class:`LeaseLostError`). ``cursor`` and
        ``watermark`` are only written when given (a page without a cursor keeps the last one).
        """
        async with self._write() as conn:
            if lease is not None:
                await self._renew(conn, connection_id, lease[0], lease[1])
            counts = await upsert_trades(conn, connection_id=connection_id, account_id=account_id, batch=batch, now=now)
            cancelled = 0
            if cancellations:
                cancelled = await record_cancellations(
                    conn, connection_id=connection_id, account_id=account_id, cancellations=cancellations, now=now
                )
            if cursor is not None or watermark is not None:
                await run_sql(conn, _CURSOR_UPSERT, (connection_id, account_id, cursor, watermark, now))
            return BatchCounts(counts.imported, counts.skipped, counts.updated, cancelled)

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
        if limit is not None:
            query = query.limit(limit)
        async with self._read() as conn:
            result = await conn.stream(query.execution_options(yield_per=_STREAM_CHUNK))
            async for partition in result.partitions(_STREAM_CHUNK):
                for row in partition:
                    yield stored_trade(row)

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
        async with self._read() as conn:
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
        async with self._read() as conn:
            return int((await conn.execute(query)).scalar_one())

    # -- audit -----------------------------------------------------------------------------------

    async def finish_sync(
        self,
        run_id: str,
        run: Mapping[str, Any],
        connection_id: str,
        connection: Mapping[str, Any],
        *,
        holder: str,
    ) -> None:
        """End a sync in ONE transaction: close its audit row (``run`` values), update the
        connection (``connection`` values) and give the lease back (if ``holder`` still has it).
        """
        async with self._write() as conn:
            await run_sql(conn, update_sql("sync_runs", run, "id = ?"), [*run.values(), run_id])
            await run_sql(conn, update_sql("connections", connection, "id = ?"), [*connection.values(), connection_id])
            await _release(conn, connection_id, holder)

    async def list_runs(
        self,
        *,
        connection_ids: Sequence[str] | None = None,
        status: RunStatus | None = None,
        limit: int | None = 50,
    ) -> list[SyncRunInfo]:
        """Audit rows, newest first."""
        query = select(sync_runs).order_by(sync_runs.c.started_at.desc(), sync_runs.c.id.desc())
        if connection_ids is not None:
            query = query.where(sync_runs.c.connection_id.in_(list(connection_ids)))
        if status is not None:
            query = query.where(sync_runs.c.status == RunStatus(status).value)
        if limit is not None:
            query = query.limit(limit)
        async with self._read() as conn:
            return [run_info(row) for row in await conn.execute(query)]

    # -- monitoring (aggregates in SQL: a window of millions of audit rows is one scan) ---------------

    @staticmethod
    def _run_filters(since: dt.datetime | None, user_id: str | None, broker: str | None) -> list[Any]:
        where: list[Any] = []
        if since is not None:
            where.append(sync_runs.c.started_at >= since)
        if user_id is not None:
            where.append(sync_runs.c.user_id == user_id)
        if broker is not None:
            where.append(sync_runs.c.broker == broker)
        return where

    async def run_totals(
        self, *, since: dt.datetime | None = None, user_id: str | None = None, broker: str | None = None
    ) -> list[dict[str, Any]]:
        """Per broker, sums over the audit rows matching the filters (names as in ``brokersync._stats``)."""
        c = sync_runs.c
        known = c.requests.is_not(None)

        def count_if(condition: Any) -> Any:
            return func.sum(case((condition, 1), else_=0))

        def sum_if(condition: Any, column: Any) -> Any:
            return func.sum(case((condition, column), else_=0))

        finished = c.status != RunStatus.RUNNING.value
        columns = [
            c.broker.label("broker"),
            func.count().label("runs"),
            *(count_if(c.status == s.value).label(s.value) for s in RunStatus),
            func.sum(c.requests).label("requests"),
            count_if(and_(finished, c.requests.is_(None))).label("runs_without_requests"),
            func.sum(c.retries).label("retries"),
            sum_if(known, c.retries).label("known_retries"),
            func.sum(c.rate_limit_waits).label("rate_limit_waits"),
            sum_if(known, c.rate_limit_waits).label("known_waits"),
            func.sum(c.rate_limit_wait_ms).label("rate_limit_wait_ms"),
            count_if(c.error_type == "rate_limit").label("rate_limit_failures"),
            count_if(c.error_type == "auth").label("auth_failures"),
            func.sum(c.imported).label("imported"),
            func.sum(c.updated).label("updated"),
            func.sum(c.skipped).label("skipped"),
            func.sum(c.cancelled).label("cancelled"),
            func.sum(c.error_count).label("invalid_records"),
            func.sum(c.duration_ms).label("duration_sum"),
            func.count(c.duration_ms).label("duration_count"),
            func.max(c.duration_ms).label("max_duration_ms"),
        ]
        query = select(*columns).where(*self._run_filters(since, user_id, broker)).group_by(c.broker)
        async with self._read() as conn:
            return [dict(row._mapping) for row in await conn.execute(query)]

    async def duration_p95(
        self,
        counts: Mapping[str, int],
        *,
        since: dt.datetime | None = None,
        user_id: str | None = None,
        broker: str | None = None,
    ) -> dict[str | None, int]:
        """The 95th percentile run duration (nearest rank), per broker and (key ``None``) over all.

        Nearest rank r = ceil(0.95 n) counted from the fastest is rank n - r + 1 from the slowest, so
        each value is the first row after skipping ``n - r`` rows sorted slowest first: the database
        keeps only the slowest 5 % while it scans, instead of sorting the whole window (over a
        million audit rows on SQLite: about 4x faster than ranking them with window functions).
        ``counts`` is, per broker, how many runs in the window recorded a duration (``run_totals``'s
        ``duration_count``), so they are not counted again.
        """
        c = sync_runs.c
        where = [c.duration_ms.is_not(None), *self._run_filters(since, user_id, broker)]
        result: dict[str | None, int] = {}
        async with self._read() as conn:
            for key, n in [*counts.items(), (None, sum(counts.values()))]:
                if n == 0:
                    continue
                rank = (n * 95 + 99) // 100  # ceil(0.95 n) in integer arithmetic
                query = (
                    select(c.duration_ms)
                    .where(*where, *([c.broker == key] if key is not None else []))
                    .order_by(c.duration_ms.desc())
                    .limit(1)
                    .offset(n - rank)
                )
                result[key] = int((await conn.execute(query)).scalar_one())
        return result

    async def count_connections(
        self, *, status: ConnectionStatus, user_id: str | None = None, broker: str | None = None
    ) -> dict[str, int]:
        """Per broker, how many connections are in ``status``."""
        query = select(connections.c.broker, func.count().label("n")).where(
            connections.c.status == ConnectionStatus(status).value
        )
        if user_id is not None:
            query = query.where(connections.c.user_id == user_id)
        if broker is not None:
            query = query.where(connections.c.broker == broker)
        async with self._read() as conn:
            return {row.broker: int(row.n) for row in await conn.execute(query.group_by(connections.c.broker))}


async def _acquire(
    conn: AsyncConnection, connection_id: str, holder: str, run_id: str, now: dt.datetime, ttl: dt.timedelta
) -> bool:
    return bool(await run_sql(conn, _LEASE_TAKE, (connection_id, holder, run_id, now, now + ttl, now)))


async def _release(conn: AsyncConnection, connection_id: str, holder: str) -> None:
    await run_sql(conn, _LEASE_RELEASE, (connection_id, holder))


async def _interrupt(conn: AsyncConnection, connection_id: str, except_run: str, now: dt.datetime) -> int:
    message = "the process running this sync stopped before it finished"
    interrupted = await run_sql(
        conn,
        _INTERRUPT,
        (RunStatus.INTERRUPTED.value, now, message, connection_id, RunStatus.RUNNING.value, except_run),
    )
    return len(interrupted)


def wrap_store_errors(exc: SQLAlchemyError | OSError, what: str) -> StoreError:
    """A :class:`StoreError` naming the operation; the driver's message is kept, never a URL."""
    if isinstance(exc, OSError) and not isinstance(exc, SQLAlchemyError):
        return StoreError(f"cannot reach the database while {what}: {type(exc).__name__}: {exc}")
    detail = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    return StoreError(f"database error while {what}: {type(exc).__name__}: {detail}")


P = ParamSpec("P")
R = TypeVar("R")


def store_errors(what: str) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Coroutine[Any, Any, R]]]:
    """Turn a database failure inside the decorated operation into a :class:`StoreError`."""

    def decorate(fn: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return await fn(*args, **kwargs)
            except (SQLAlchemyError, OSError) as exc:
                raise wrap_store_errors(exc, what) from None

        return wrapper

    return decorate
