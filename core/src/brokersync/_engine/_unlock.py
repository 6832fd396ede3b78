"""Freeing a connection whose sync died: ``brokersync unlock`` / :meth:`BrokerSync.unlock_connection`.

A dead holder's lease lapses by itself after one TTL; an operator who knows the holder is gone
(or who runs with a long TTL) frees it at once. A holder whose heartbeat is fresh is alive and
keeps its lease: stop that process instead (a stop signal gives the lease back).
"""

from __future__ import annotations

from brokersync._engine._heartbeat import is_fresh
from brokersync._engine._parts import EngineParts
from brokersync._store import store_errors
from brokersync.errors import SyncInProgressError
from brokersync.results import LeaseInfo

__all__ = ["EngineLeases", "lease_info", "unlock"]


async def lease_info(parts: EngineParts, connection_id: str, user_id: str) -> LeaseInfo | None:
    """Who holds the user's connection's lease (``None``: nobody syncs it)."""
    await parts.own_row(connection_id, user_id)
    row = await parts.store.lease(connection_id)
    if row is None:
        return None
    holder, run_id, acquired_at, expires_at, heartbeat_at = row
    return LeaseInfo(
        connection_id=connection_id,
        holder=holder,
        run_id=run_id,
        acquired_at=acquired_at,
        expires_at=expires_at,
        heartbeat_at=heartbeat_at,
        fresh=is_fresh(heartbeat_at, expires_at, parts.clock()),
    )


async def unlock(parts: EngineParts, connection_id: str, user_id: str) -> LeaseInfo | None:
    """Free the lease of a holder that stopped sending heartbeats; its run is closed ``interrupted``.

    Returns:
        The lease that was freed, or ``None`` when nobody held one.

    Raises:
        SyncInProgressError: The holder's heartbeat is fresh (it is alive), or the lease changed
            hands while this ran.
    """
    info = await lease_info(parts, connection_id, user_id)
    if info is None:
        return None
    now = parts.clock()
    if info.fresh:
        assert info.heartbeat_at is not None
        ago = (now - info.heartbeat_at).total_seconds()
        raise SyncInProgressError(
            f"connection {connection_id} is being synced by {info.holder}, which renewed its lease {ago:.0f} s ago: "
            "it is alive. Stop that process instead (SIGTERM or Ctrl-C gives the lease back)"
        )
    freed = await parts.store.break_lease(
        connection_id,
        holder=info.holder,
        run_id=info.run_id,
        now=now,
        message=f"the lease was freed by an operator (unlock) after its holder {info.holder} stopped renewing it",
    )
    if not freed:
        raise SyncInProgressError(f"the lease of connection {connection_id} changed hands meanwhile; look again")
    parts.log.warning("freed the lease of {c} held by {h}", c=connection_id, h=info.holder)
    return info


class EngineLeases:
    """Sync leases over the engine's parts (who syncs a connection, freeing a dead one's); extended by
    :class:`~brokersync.BrokerSync`.

    Args:
        parts: The engine's collaborators.
    """

    def __init__(self, parts: EngineParts) -> None:
        self._leases = parts

    @store_errors("reading a sync lease")
    async def lease_info(self, connection_id: str, user_id: str) -> LeaseInfo | None:
        """Who is syncing the user's connection right now, and whether its heartbeat is fresh.

        Raises:
            ConnectionNotFoundError: No such connection for this user.
        """
        return await lease_info(self._leases, connection_id, user_id)

    @store_errors("freeing a sync lease")
    async def unlock_connection(self, connection_id: str, user_id: str) -> LeaseInfo | None:
        """Free the lease of a sync whose process died, so the connection can be synced at once.

        A dead holder's lease lapses by itself after ``lease_ttl``; this frees it sooner. Its
        audit row is closed ``interrupted``.

        Returns:
            The freed lease, or ``None`` when nobody held one.

        Raises:
            ConnectionNotFoundError: No such connection for this user.
            SyncInProgressError: The holder's heartbeat is fresh: it is alive (stop it instead).
        """
        return await unlock(self._leases, connection_id, user_id)
