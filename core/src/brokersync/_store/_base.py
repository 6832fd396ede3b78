"""The database under every store part: the async engine, write transactions, reads, the schema."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from brokersync._store._database import READ_ONLY, create_engine, current_revision, head_revision, upgrade_schema

__all__ = ["Database"]


class Database:
    """An async SQLAlchemy engine with the transactions every store part uses.

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
    async def write(self) -> AsyncIterator[AsyncConnection]:
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
    async def read(self) -> AsyncIterator[AsyncConnection]:
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
