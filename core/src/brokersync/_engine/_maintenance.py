"""Operator maintenance on stored connections: check that their secrets decrypt, forget their sync position."""

from __future__ import annotations

from collections.abc import Sequence

from brokersync._engine._parts import EngineParts
from brokersync.errors import SyncInProgressError, VaultError

__all__ = ["reset_sync_state", "verify_secrets"]


async def verify_secrets(parts: EngineParts, connection_ids: Sequence[str] | None) -> dict[str, str | None]:
    """Per connection, ``None`` when its stored credentials and token decrypt, else why not (never a secret).

    A key configuration that cannot load fails the whole check (:class:`VaultError`).
    """
    await parts.readiness.ensure()
    parts.secrets.active_key_id()  # loads the keys: nothing can be checked without them
    if connection_ids is None:
        connection_ids = [c.id for c in await parts.store.list_connections(with_accounts=False)]
    problems: dict[str, str | None] = {}
    for connection_id in connection_ids:
        row = await parts.store.connection_row(connection_id)
        if row is None:
            continue
        problems[connection_id] = None
        try:
            if row.credentials:
                parts.secrets.open_credentials(row)
            parts.secrets.open_token(row)
        except VaultError as exc:
            problems[connection_id] = str(exc)
    return problems


async def reset_sync_state(parts: EngineParts, connection_id: str, user_id: str) -> int:
    """Delete the watermarks and cursors of the user's connection under its lease; how many accounts had one.

    Raises :class:`ConnectionNotFoundError` for another user's connection and
    :class:`SyncInProgressError` while a sync holds the lease (nothing changes).
    """
    await parts.own_row(connection_id, user_id)
    forgotten = await parts.store.reset_sync_cursors(
        connection_id, holder=parts.holder, now=parts.clock(), ttl=parts.settings.lease_ttl
    )
    if forgotten is None:
        raise SyncInProgressError(f"connection {connection_id} is being synced; try again when that sync ends")
    return forgotten
