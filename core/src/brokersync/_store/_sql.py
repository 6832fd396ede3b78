"""The sync path's bookkeeping statements as plain SQL, run straight on the driver.

Every sync runs the same dozen small statements (lease, audit row, cursor, connection status).
Through SQLAlchemy Core each one cost more CPU than the database work itself (building and
caching the construct, the result machinery) and, on SQLite, four hops to aiosqlite's thread.
Here each is a fixed SQL text with ``?`` placeholders, written once for both databases:

- SQLite: run on the aiosqlite connection under the caller's transaction, one hop per statement;
  times are bound as the fixed-width UTC text that :class:`~brokersync._store._types.UTCDateTime`
  stores, and a driver error is raised as the ``DBAPIError`` SQLAlchemy would have raised.
- PostgreSQL: ``exec_driver_sql`` with ``$n`` placeholders; times are bound as tz-aware datetimes.

Counts come from ``RETURNING`` (SQLite >= 3.35, as the ON CONFLICT upserts already need).
"""

from __future__ import annotations

import datetime as dt
import functools
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from brokersync._store._types import utc_text

__all__ = ["dbapi_error", "run_sql", "update_sql"]


def dbapi_error(sql: str, exc: sqlite3.Error) -> BaseException:
    """The ``DBAPIError`` SQLAlchemy raises for ``exc``: callers turn those into a StoreError."""
    error = DBAPIError.instance(sql, None, exc, sqlite3.Error, hide_parameters=True)
    error.__cause__ = exc
    return error


@functools.cache
def _numbered(sql: str) -> str:
    parts = sql.split("?")
    return "".join(f"{part}${i}" if i < len(parts) else part for i, part in enumerate(parts, start=1))


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"expected a timezone-aware datetime, got {value!r}")
        return utc_text(value)
    return value


async def run_sql(conn: AsyncConnection, sql: str, params: Iterable[Any]) -> Sequence[Any]:
    """Run ``sql`` (``?`` placeholders) inside the connection's transaction; return its rows."""
    if conn.dialect.name == "sqlite":
        driver = (await conn.get_raw_connection()).driver_connection
        values = tuple(_sqlite_value(value) for value in params)
        try:
            rows: Sequence[Any] = await driver.execute_fetchall(sql, values)  # type: ignore[union-attr]
        except sqlite3.Error as exc:
            raise dbapi_error(sql, exc) from None
        return rows
    result = await conn.exec_driver_sql(_numbered(sql), tuple(params))
    return result.all() if result.returns_rows else ()


def update_sql(table: str, columns: Iterable[str], where: str) -> str:
    """``UPDATE table SET a = ?, b = ? WHERE where`` (column names come from code, never input)."""
    return f"UPDATE {table} SET {', '.join(f'{name} = ?' for name in columns)} WHERE {where}"  # noqa: S608
