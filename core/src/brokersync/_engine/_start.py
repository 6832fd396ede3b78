"""Starting a sync: the connection must be the user's and active; take its lease and open the audit row.

Lease, the check for runs a dead process left ``running`` and the audit row are one transaction,
committed before any broker traffic: a crash leaves a trace the next run marks ``interrupted``.
The lease's whole life is here: taken, kept alive by :mod:`~brokersync._engine._heartbeat` while
the run is, handed to :mod:`~brokersync._engine._run` with the run's context, and given back if the
run could not record its outcome (the lease expires anyway).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid

from sqlalchemy.exc import SQLAlchemyError

from brokersync._engine._context import RunContext
from brokersync._engine._heartbeat import Heartbeat
from brokersync._engine._parts import EngineParts
from brokersync._engine._run import run_started
from brokersync.errors import NeedsReauthError, SyncError, SyncInProgressError
from brokersync.results import ConnectionStatus, ProgressCallback, RunStatus, SyncResult, SyncTrigger

FILE_ONLY = "file"  # the environment of a connection that only imports files (no credentials)

__all__ = ["start_run", "sync_connection"]


def _run_id() -> str:
    # Time-ordered (nanoseconds, then random): runs sort newest first even within one clock tick.
    return f"{time.time_ns():016x}-{uuid.uuid4().hex[:19]}"


async def start_run(
    parts: EngineParts,
    connection_id: str,
    user_id: str,
    trigger: SyncTrigger,
    since: dt.datetime | None,
    on_progress: ProgressCallback | None,
) -> RunContext:
    """Take the lease of the user's connection and open its audit row.

    Raises:
        ConnectionNotFoundError: No such connection for this user.
        NeedsReauthError: The connection needs new credentials.
        SyncError: The connection is disconnected.
        SyncInProgressError: Another holder has the lease.
    """
    if since is not None and (since.tzinfo is None or since.utcoffset() is None):
        raise ValueError("since must be a timezone-aware datetime")
    row = await parts.own_row(connection_id, user_id)
    if row.status == ConnectionStatus.NEEDS_REAUTH.value:
        raise NeedsReauthError(
            f"connection {connection_id} ({row.broker}) needs new credentials: reconnect it before syncing"
        )
    if row.environment == FILE_ONLY and trigger is not SyncTrigger.IMPORT:
        raise SyncError(
            f"connection {connection_id} ({row.broker}) is file-only: it has no API to sync; "
            "import its files with `brokersync import`"
        )
    if row.status == ConnectionStatus.DISABLED.value:
        raise SyncError(f"connection {connection_id} ({row.broker}) is disconnected: reconnect it to sync again")
    parts.secrets.check()  # a missing key is a configuration error, not a failed run
    run_id = _run_id()
    started_at = parts.clock()
    taken = await parts.store.begin_run(
        connection_id,
        holder=parts.holder,
        run_id=run_id,
        now=started_at,
        ttl=parts.settings.lease_ttl,
        run={
            "id": run_id,
            "connection_id": connection_id,
            "user_id": row.user_id,
            "broker": row.broker,
            "trigger": trigger.value,
            "status": RunStatus.RUNNING.value,
            "started_at": started_at,
            "imported": 0,
            "skipped": 0,
            "updated": 0,
            "cancelled": 0,
            "error_count": 0,
            "retries": 0,
            "rate_limit_waits": 0,
            "rate_limit_wait_ms": 0,
            "holder": parts.holder,
        },
    )
    if not taken:
        current = await parts.store.lease_holder(connection_id)
        who = f" by {current[0]} (lease until {current[1].isoformat()})" if current else ""
        raise SyncInProgressError(f"connection {connection_id} is already being synced{who}; try again later")
    return RunContext(
        row=row,
        run_id=run_id,
        trigger=trigger,
        since=since,
        started_at=started_at,
        perf_start=time.perf_counter(),
        on_progress=on_progress,
    )


async def sync_connection(
    parts: EngineParts,
    connection_id: str,
    user_id: str,
    trigger: SyncTrigger,
    since: dt.datetime | None,
    on_progress: ProgressCallback | None,
) -> tuple[SyncResult, BaseException | None]:
    """One sync of one connection: the result, and the error to raise (``None`` when it finished)."""
    ctx = await start_run(parts, connection_id, user_id, trigger, since, on_progress)
    try:
        async with Heartbeat(parts, ctx.row.id):  # keeps the (short) lease alive while the run is
            return await run_started(parts, ctx)
    finally:
        if not ctx.lease.released:  # the run's outcome could not be recorded: still give the lease back
            try:
                await parts.store.release_lease(ctx.row.id, holder=parts.holder)
            except SQLAlchemyError as exc:  # the lease expires by itself; do not hide the run's outcome
                parts.log.warning("could not release the lease of {c}: {e}", c=ctx.row.id, e=type(exc).__name__)
