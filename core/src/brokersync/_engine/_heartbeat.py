"""The lease's heartbeat: while a run is alive, renew its lease every third of the TTL.

The store also renews the lease with every stored batch, but a page can take longer than the TTL
(a slow broker, rate-limit waits): the heartbeat keeps a short TTL safe whatever the page sizes,
so a crashed holder blocks its connection for at most one TTL. It runs in its own task and its own
transactions; it stops with the run (``_start``), before the lease is given back.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt

from sqlalchemy.exc import SQLAlchemyError

from brokersync._engine._parts import EngineParts

__all__ = ["Heartbeat", "is_fresh"]


def is_fresh(heartbeat_at: dt.datetime | None, expires_at: dt.datetime, now: dt.datetime) -> bool:
    """Whether a holder whose last heartbeat was at ``heartbeat_at`` is taken to be alive at ``now``.

    Each heartbeat sets ``expires_at = heartbeat_at + ttl`` and the next one is due a third of the
    TTL later: a holder that missed two heartbeats in a row is stale. No heartbeat recorded (a
    lease taken before brokersync recorded them): stale.
    """
    if heartbeat_at is None:
        return False
    interval = (expires_at - heartbeat_at) / 3
    return now - heartbeat_at < 2 * interval


class Heartbeat:
    """Renews ``connection_id``'s lease for ``parts.holder`` while used as ``async with``."""

    def __init__(self, parts: EngineParts, connection_id: str) -> None:
        self._parts = parts
        self._connection_id = connection_id
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Heartbeat:
        self._task = asyncio.create_task(self._beat(), name=f"brokersync-heartbeat-{self._connection_id}")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _beat(self) -> None:
        parts = self._parts
        settings = parts.settings
        # Real time, not the engine's injected sleep: a test's fake sleep returns at once.
        interval = settings.heartbeat_interval.total_seconds()
        while True:
            await asyncio.sleep(interval)
            try:
                kept = await parts.store.heartbeat(
                    self._connection_id, holder=parts.holder, now=parts.clock(), ttl=settings.lease_ttl
                )
            except (SQLAlchemyError, OSError) as exc:  # the next beat (or batch) tries again
                parts.log.warning("could not renew the lease of {c}: {e}", c=self._connection_id, e=type(exc).__name__)
                continue
            if not kept:  # taken over or released: the next batch fails with LeaseLostError
                parts.log.warning("the lease of {c} is no longer this sync's", c=self._connection_id)
                return
