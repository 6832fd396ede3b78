"""The engine's collaborators, in one frozen object handed to every step of a sync.

Nothing in a step reaches into another object's private state: it gets what it needs here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from brokersync._clocks import WallClock
from brokersync._config import EngineSettings
from brokersync._engine._brokers import BrokerFactory
from brokersync._engine._schema import Readiness
from brokersync._engine._secrets import Secrets
from brokersync._engine._tokens import TokenLocks
from brokersync._store import ConnectionRow, Store
from brokersync.errors import ConnectionNotFoundError

if TYPE_CHECKING:
    from loguru import Logger

__all__ = ["EngineParts", "require_text"]


def require_text(name: str, value: Any) -> str:
    """``value`` if it is a non-empty string, else ``ValueError`` naming ``name``."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


@attrs.frozen(kw_only=True)
class EngineParts:
    """What one engine's steps share: store, schema readiness, secrets, brokers, settings, clock.

    Attributes:
        holder: This engine's name on the leases it takes (host, pid, random).
    """

    store: Store
    readiness: Readiness
    secrets: Secrets
    brokers: BrokerFactory
    settings: EngineSettings
    clock: WallClock
    holder: str
    token_locks: TokenLocks
    log: Logger

    async def own_row(self, connection_id: str, user_id: str) -> ConnectionRow:
        """The user's connection row (with ciphertexts), or :class:`ConnectionNotFoundError`."""
        require_text("connection_id", connection_id)
        require_text("user_id", user_id)
        await self.readiness.ensure()
        row = await self.store.connection_row(connection_id)
        if row is None or row.user_id != user_id:
            # Same message either way: a user cannot probe for other users' connection ids.
            raise ConnectionNotFoundError(f"no connection {connection_id} for user {user_id}")
        return row
