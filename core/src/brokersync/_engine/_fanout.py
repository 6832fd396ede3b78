"""Many incremental syncs at once (scheduled runs, retries of failed ones), bounded, isolated."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from sqlalchemy.exc import SQLAlchemyError

from brokersync._engine._parts import EngineParts
from brokersync._engine._start import sync_connection
from brokersync._store import wrap_store_errors
from brokersync.errors import BrokerSyncError, classify_error
from brokersync.results import ConnectionInfo, ProgressCallback, RunStatus, SyncResult, SyncTrigger

__all__ = ["sync_each"]


async def sync_each(
    parts: EngineParts,
    infos: Sequence[ConnectionInfo],
    *,
    concurrency: int,
    on_progress: ProgressCallback | None = None,
) -> list[SyncResult]:
    """Scheduled (incremental) syncs of ``infos``, at most ``concurrency`` at once, one result
    each in order: a connection that fails, or cannot start (already running), never stops the
    others; its result has ``status == "failed"`` and the ``error``."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    if infos:
        parts.secrets.check()  # a missing key stops all of them before any run is recorded
    gate = asyncio.Semaphore(concurrency)
    clock = parts.clock

    async def one(info: ConnectionInfo) -> SyncResult:
        async with gate:
            started = clock()
            try:
                result, _error = await sync_connection(
                    parts, info.id, info.user_id, SyncTrigger.SCHEDULED, None, on_progress
                )
            except (BrokerSyncError, SQLAlchemyError, OSError) as exc:
                error = wrap_store_errors(exc, "syncing") if isinstance(exc, SQLAlchemyError) else exc
                return SyncResult(
                    connection_id=info.id,
                    run_id=None,
                    broker=info.broker,
                    trigger=SyncTrigger.SCHEDULED,
                    status=RunStatus.FAILED,
                    started_at=started,
                    finished_at=clock(),
                    error=classify_error(error),
                )
            return result

    return list(await asyncio.gather(*(one(info) for info in infos)))
