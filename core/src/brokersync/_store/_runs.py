"""Leases and runs: one sync per connection across processes, and the ``sync_runs`` audit trail."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from brokersync._store._base import Database
from brokersync._store._records import run_info
from brokersync._store._schema import sync_leases, sync_runs
from brokersync._store._sql import run_sql, update_sql
from brokersync.errors import LeaseLostError
from brokersync.results import RunStatus, SyncRunInfo

__all__ = ["RunStore", "release_lease", "renew_lease", "take_lease"]

_LEASE_TAKE = (
    "INSERT INTO sync_leases (connection_id, holder, run_id, acquired_at, expires_at, heartbeat_at) "
    "VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (connection_id) DO UPDATE SET holder = excluded.holder, run_id = excluded.run_id, "
    "acquired_at = excluded.acquired_at, expires_at = excluded.expires_at, heartbeat_at = excluded.heartbeat_at "
    "WHERE sync_leases.expires_at <= ? RETURNING holder"
)  # taken when free, or when the holder's lease has expired
_LEASE_RENEW = (
    "UPDATE sync_leases SET expires_at = ?, heartbeat_at = ? WHERE connection_id = ? AND holder = ? RETURNING holder"
)
_LEASE_RELEASE = "DELETE FROM sync_leases WHERE connection_id = ? AND holder = ?"
_CLOSE_RUN = "UPDATE sync_runs SET status = ?, finished_at = ?, error_message = ? WHERE id = ? AND status = ?"
_INTERRUPT = (
    "UPDATE sync_runs SET status = ?, finished_at = ?, error_message = ? "
    "WHERE connection_id = ? AND status = ? AND id <> ? RETURNING id"
)


class RunStore(Database):
    """The ``sync_leases`` and ``sync_runs`` rows."""

    async def acquire_lease(
        self, connection_id: str, *, holder: str, run_id: str, now: dt.datetime, ttl: dt.timedelta
    ) -> bool:
        """Take the connection's lease if it is free or expired. Atomic across processes."""
        async with self.write() as conn:
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
        async with self.write() as conn:
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
        async with self.read() as conn:
            row = (
                await conn.execute(
                    select(sync_leases.c.holder, sync_leases.c.expires_at).where(
                        sync_leases.c.connection_id == connection_id
                    )
                )
            ).first()
            return (row.holder, row.expires_at) if row else None

    async def heartbeat(self, connection_id: str, *, holder: str, now: dt.datetime, ttl: dt.timedelta) -> bool:
        """Renew ``holder``'s lease from ``now`` in its own transaction; ``False`` if it lost the lease."""
        async with self.write() as conn:
            return bool(await run_sql(conn, _LEASE_RENEW, (now + ttl, now, connection_id, holder)))

    async def lease(
        self, connection_id: str
    ) -> tuple[str, str | None, dt.datetime, dt.datetime, dt.datetime | None] | None:
        """The lease row: (holder, run id, acquired, expires, last heartbeat), or ``None``: nobody syncs."""
        async with self.read() as conn:
            row = (
                await conn.execute(
                    select(
                        sync_leases.c.holder,
                        sync_leases.c.run_id,
                        sync_leases.c.acquired_at,
                        sync_leases.c.expires_at,
                        sync_leases.c.heartbeat_at,
                    ).where(sync_leases.c.connection_id == connection_id)
                )
            ).first()
            return (row.holder, row.run_id, row.acquired_at, row.expires_at, row.heartbeat_at) if row else None

    async def break_lease(
        self, connection_id: str, *, holder: str, run_id: str | None, now: dt.datetime, message: str
    ) -> bool:
        """Free a dead holder's lease and close its run as ``interrupted``, in ONE transaction.

        Only that holder's lease is removed (``False`` when it changed meanwhile: nothing is written).
        """
        async with self.write() as conn:
            same_run = sync_leases.c.run_id.is_(None) if run_id is None else sync_leases.c.run_id == run_id
            query = delete(sync_leases).where(
                sync_leases.c.connection_id == connection_id, sync_leases.c.holder == holder, same_run
            )
            if (await conn.execute(query)).rowcount != 1:
                return False
            if run_id is not None:
                await run_sql(
                    conn, _CLOSE_RUN, (RunStatus.INTERRUPTED.value, now, message, run_id, RunStatus.RUNNING.value)
                )
            return True

    async def release_lease(self, connection_id: str, *, holder: str) -> None:
        """Give the lease back (only if this holder still has it)."""
        async with self.write() as conn:
            await _release(conn, connection_id, holder)

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
        async with self.write() as conn:
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
        async with self.read() as conn:
            return [run_info(row) for row in await conn.execute(query)]


async def renew_lease(
    conn: AsyncConnection, connection_id: str, holder: str, expires_at: dt.datetime, now: dt.datetime
) -> None:
    """Extend ``holder``'s lease (a heartbeat at ``now``) in the caller's transaction, or raise
    :class:`LeaseLostError` (rolling it back)."""
    renewed = await run_sql(conn, _LEASE_RENEW, (expires_at, now, connection_id, holder))
    if len(renewed) != 1:
        raise LeaseLostError(
            f"connection {connection_id}: this sync's lease expired and another sync took over; "
            "nothing from the current batch was stored"
        )


async def take_lease(
    conn: AsyncConnection, connection_id: str, holder: str, run_id: str, now: dt.datetime, ttl: dt.timedelta
) -> bool:
    """Take the connection's lease in the caller's transaction; ``False`` while another holder has it."""
    return await _acquire(conn, connection_id, holder, run_id, now, ttl)


async def release_lease(conn: AsyncConnection, connection_id: str, holder: str) -> None:
    """Give the lease back in the caller's transaction (only if ``holder`` still has it)."""
    await _release(conn, connection_id, holder)


async def _acquire(
    conn: AsyncConnection, connection_id: str, holder: str, run_id: str, now: dt.datetime, ttl: dt.timedelta
) -> bool:
    return bool(await run_sql(conn, _LEASE_TAKE, (connection_id, holder, run_id, now, now + ttl, now, now)))


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
