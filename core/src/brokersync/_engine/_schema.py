"""The schema check before the first operation: migrate (SQLite default) or insist on the head revision."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from sqlalchemy.exc import SQLAlchemyError

from brokersync._store import Store, safe_url, wrap_store_errors
from brokersync.errors import ConfigurationError

__all__ = ["Readiness"]


class Readiness:
    """Whether the database is at the schema this brokersync needs; checked once per engine.

    Args:
        store: The store.
        database_url: For messages (the password is hidden).
        auto_upgrade: Migrate on first use instead of refusing an old schema.
        then: Checked once after the schema is ready, before the first operation (the key file).
    """

    def __init__(
        self,
        store: Store,
        database_url: str,
        *,
        auto_upgrade: bool,
        then: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        self._url = database_url
        self._auto_upgrade = auto_upgrade
        self._then = then
        self._ready = False
        self._checked = then is None
        self._lock = asyncio.Lock()

    async def upgrade(self) -> tuple[str | None, str | None]:
        """Migrate the schema to the newest revision; return the revision (before, after)."""
        try:
            result = await self._store.upgrade()
        except (SQLAlchemyError, OSError) as exc:
            raise wrap_store_errors(exc, f"upgrading the schema of {safe_url(self._url)}") from None
        self._ready = True
        return result

    async def ensure(self) -> None:
        """Return once the schema is current (migrating it first when allowed)."""
        if self._ready and self._checked:
            return
        async with self._lock:
            await self._prepare()
            if not self._checked and self._then is not None:
                await self._then()
                self._checked = True

    async def _prepare(self) -> None:
        if self._ready:  # another task prepared it while this one waited for the lock
            return
        if self._auto_upgrade:
            await self.upgrade()
            return
        try:
            revision = await self._store.revision()
        except (SQLAlchemyError, OSError) as exc:
            raise wrap_store_errors(exc, f"opening {safe_url(self._url)}") from None
        if revision != Store.head():
            raise ConfigurationError(
                f"the database {safe_url(self._url)} is at schema revision {revision or 'none'}, "
                f"this brokersync needs {Store.head()}: run `brokersync db upgrade` (BrokerSync.upgrade_database())"
            )
        self._ready = True
