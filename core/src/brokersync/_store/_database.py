"""Opening the database and migrating its schema (Alembic, run programmatically).

SQLite gets write-ahead logging, foreign keys, a busy timeout, and ``BEGIN IMMEDIATE``
transactions: a transaction takes the write lock when it starts, so two processes never deadlock
upgrading a read lock, and every read-then-write (lease, upsert classification) is atomic.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from brokersync._config import normalize_database_url
from brokersync.errors import ConfigurationError

__all__ = ["READ_ONLY", "create_engine", "current_revision", "head_revision", "safe_url", "upgrade_schema"]

# Execution option of a connection that only reads: on SQLite it runs in autocommit (each SELECT
# sees a consistent WAL snapshot) instead of BEGIN IMMEDIATE, so reads never queue for the writer.
READ_ONLY = "brokersync_read_only"

_SCRIPT_LOCATION = "brokersync:_migrations"
_PG_MIGRATION_LOCK = 0x62726F6B  # advisory lock id: one migrator at a time across processes


def safe_url(url: str) -> str:
    """The URL with any password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("://", 1)[0] + "://..."


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event decide how transactions start (pysqlite would BEGIN DEFERRED).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")

    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    if conn.get_execution_options().get(READ_ONLY):
        return
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _create_private_file(path: Path) -> None:
    # docs/security.md: the data directory is 0700 and the database 0600 (it holds ciphertexts and
    # every trade). SQLite gives its -wal and -shm files the database file's mode.
    try:
        if not path.parent.is_dir():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.exists():
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    except OSError as exc:
        raise ConfigurationError(
            f"cannot create the database {path}: {exc.strerror or type(exc).__name__}. Set BROKERSYNC_DATA_DIR "
            "(or the database URL) to a directory this user can write"
        ) from None


def create_engine(url: str, **options: Any) -> AsyncEngine:
    """An async engine for ``url`` (SQLite or PostgreSQL), configured for brokersync.

    Raises:
        ConfigurationError: the URL is invalid or names an unsupported database.
    """
    url = normalize_database_url(url)
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigurationError(f"invalid database URL {safe_url(url)}: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:"):
            raise ConfigurationError("brokersync needs a SQLite file, not an in-memory database (give a path)")
        if not parsed.query.get("uri"):  # a file: URI (e.g. mode=ro) names a database that exists
            _create_private_file(Path(database).expanduser())
        engine = create_async_engine(url, **options)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    import importlib.util

    if importlib.util.find_spec("asyncpg") is None:
        raise ConfigurationError("PostgreSQL needs the asyncpg driver: pip install 'brokersync[postgres]'")
    options.setdefault("pool_pre_ping", True)
    connect_args = options.setdefault("connect_args", {})
    # Plan each statement with its parameters: a generic plan cannot hash a "= ANY($n)" array, and
    # batch lookups of 1000 trade ids then degrade from milliseconds to a linear scan per row.
    connect_args.setdefault("server_settings", {}).setdefault("plan_cache_mode", "force_custom_plan")
    return create_async_engine(url, **options)


def _alembic_config(connection: Connection) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", _SCRIPT_LOCATION)
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest schema revision this version of brokersync ships."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", _SCRIPT_LOCATION)
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def _current(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The schema revision the database is at (``None``: not initialized)."""
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


def _upgrade(connection: Connection, target: str) -> None:
    from alembic import command

    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
    command.upgrade(_alembic_config(connection), target)


async def upgrade_schema(engine: AsyncEngine, target: str = "head") -> tuple[str | None, str | None]:
    """Migrate the database to ``target`` in one transaction; return (revision before, after)."""
    before = await current_revision(engine)
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade, target)
    return before, await current_revision(engine)
