"""The SQLite statements of storing and pairing executions, straight on the driver.

Through SQLAlchemy Core each execution, open lot and round-trip source was bound row by row with
its type processors, and the ``ON CONFLICT`` constructs were rebuilt (and compiled) on every call:
more CPU than SQLite's own work. Here, as in the trade upsert (``_upsert.py``):

- every write is a multi-row ``INSERT`` of fixed text from a cache: the values every row shares
  (connection, account, now) are numbered parameters bound once; a chunk of ``n`` rows is padded to
  the next power of two with copies of its last row, so a table has at most 9 statement texts and
  they stay in the driver's statement cache. Each statement's conflict clause makes a copy a no-op
  (``DO NOTHING``, or an update to the same values);
- every lookup is one ``SELECT ... IN (...)`` per 1,000 keys (padded the same way), not one per row;
- values are bound as the text ``Money`` and ``UTCDateTime`` store on SQLite (``str(Decimal)``,
  :func:`utc_text`) and read back with the same conversions those types apply.

Everything runs on the caller's connection, inside its transaction (one hop to aiosqlite's thread
per statement). A driver error is raised as the ``DBAPIError`` SQLAlchemy would have raised.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import itertools
import sqlite3
import threading
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from brokersync._store._sql import dbapi_error
from brokersync._store._types import parse_utc, utc_text

__all__ = [
    "delete_in",
    "driver_of",
    "finish",
    "insert_rows",
    "money",
    "money_text",
    "queue_rows",
    "run",
    "select_in",
    "time_text",
    "utc",
]

_MAX_ROWS = 256  # rows per INSERT (a power of two)
_MAX_PARAMS = 32_000  # SQLite >= 3.32 binds at most 32,766 parameters per statement
_LOOKUP = 1024  # keys per IN (...) (a power of two)


async def driver_of(conn: AsyncConnection) -> Any:
    """The aiosqlite connection under ``conn`` (its transaction is the caller's)."""
    return (await conn.get_raw_connection()).driver_connection


async def run(driver: Any, sql: str, params: Sequence[Any]) -> list[Any]:
    """Run one statement on the driver's thread; return its rows."""
    try:
        rows: list[Any] = await driver.execute_fetchall(sql, params)
    except sqlite3.Error as exc:
        raise dbapi_error(sql, exc) from None
    return rows


@functools.lru_cache(maxsize=128)
def _insert_sql(head: str, shared: int, width: int, count: int, tail: str) -> str:
    numbers = itertools.count(shared + 1)
    first = [f"?{i}" for i in range(1, shared + 1)]
    rows = ", ".join(
        "(" + ", ".join([*first, *(f"?{next(numbers)}" for _ in range(width))]) + ")" for _ in range(count)
    )
    return f"{head} VALUES {rows} {tail}"


async def insert_rows(
    driver: Any, head: str, tail: str, shared: tuple[Any, ...], rows: Sequence[tuple[Any, ...]]
) -> None:
    """``head VALUES (...), (...) tail`` for ``rows``: each row is ``shared`` + its own values.

    ``head`` names the shared columns first. ``tail`` (the conflict clause) must make a second
    copy of a row a no-op: chunks are padded with copies of their last row.
    """
    if not rows:
        return
    width = len(rows[0])
    per = _MAX_ROWS
    while per > 1 and per * (width + len(shared)) > _MAX_PARAMS:
        per //= 2
    for start in range(0, len(rows), per):
        chunk = rows[start : start + per]
        count = 1 << (len(chunk) - 1).bit_length()
        params: list[Any] = [*shared, *itertools.chain.from_iterable(chunk)]
        if count > len(chunk):
            params.extend(itertools.chain.from_iterable(itertools.repeat(chunk[-1], count - len(chunk))))
        await run(driver, _insert_sql(head, len(shared), width, count, tail), params)


class _Bound:
    """The last parameter of a queued insert: tells this thread the driver's thread has bound it.

    As in the trade upsert (``_upsert._BoundSignal``): sqlite3 adapts an unknown parameter type by
    calling its ``__conform__`` while it binds, in the driver's thread, right before it runs the
    statement without the GIL.
    """

    __slots__ = ("event", "value")

    def __init__(self, value: Any) -> None:
        self.value = value
        self.event = threading.Event()

    def __conform__(self, protocol: object) -> Any:
        self.event.set()
        return self.value


_HANDOVER_TIMEOUT = 0.05  # the longest this thread blocks for the driver's thread to take a statement


async def queue_rows(
    driver: Any, head: str, tail: str, shared: tuple[Any, ...], rows: Sequence[tuple[Any, ...]]
) -> list[asyncio.Future[Any]]:
    """:func:`insert_rows`, queued on the driver's thread: the caller computes while SQLite writes.

    Each chunk's statement is queued, then this thread blocks (bounded, releasing the GIL) until
    the driver's thread has bound the chunk's last parameter; from then on SQLite runs without the
    GIL. Pass the result to :func:`finish` before the next statement that needs these rows.
    """
    tasks: list[asyncio.Future[Any]] = []
    if not rows:
        return tasks
    width = len(rows[0])
    per = _MAX_ROWS
    while per > 1 and per * (width + len(shared)) > _MAX_PARAMS:
        per //= 2
    try:
        for start in range(0, len(rows), per):
            chunk = rows[start : start + per]
            count = 1 << (len(chunk) - 1).bit_length()
            params: list[Any] = [*shared, *itertools.chain.from_iterable(chunk)]
            if count > len(chunk):
                params.extend(itertools.chain.from_iterable(itertools.repeat(chunk[-1], count - len(chunk))))
            bound = _Bound(params[-1])
            params[-1] = bound
            tasks.append(asyncio.ensure_future(run(driver, _insert_sql(head, len(shared), width, count, tail), params)))
            await asyncio.sleep(0)  # the task queues the statement in the driver's thread
            if not tasks[-1].done():
                bound.event.wait(_HANDOVER_TIMEOUT)  # blocking on purpose: see the docstring
    except BaseException:
        await finish(tasks)
        raise
    return tasks


async def finish(tasks: Sequence[asyncio.Future[Any]]) -> None:
    """Wait for queued statements; raise the first failure (after all of them ended)."""
    if not tasks:
        return
    await asyncio.wait(tasks)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


@functools.lru_cache(maxsize=64)
def _in_sql(head: str, count: int) -> str:
    return f"{head} IN ({','.join('?' * count)})"


async def select_in(driver: Any, head: str, shared: tuple[Any, ...], keys: Sequence[str], tail: str = "") -> list[Any]:
    """The rows of ``head IN (keys) tail``, ``head`` taking ``shared`` first; one statement per 1,024 keys."""
    found: list[Any] = []
    for start in range(0, len(keys), _LOOKUP):
        chunk = list(keys[start : start + _LOOKUP])
        count = 1 << (len(chunk) - 1).bit_length()
        chunk.extend(itertools.repeat(chunk[-1], count - len(chunk)))  # the same key twice matches once
        found.extend(await run(driver, _in_sql(head, count) + tail, (*shared, *chunk)))
    return found


async def delete_in(driver: Any, head: str, shared: tuple[Any, ...], keys: Sequence[str]) -> None:
    """``head IN (keys)`` for a ``DELETE``, one statement per 1,024 keys."""
    await select_in(driver, head, shared, keys)


def money(value: Any) -> Decimal:
    """A stored ``Money`` value as ``Money`` reads it back."""
    return value if isinstance(value, Decimal) else Decimal(str(value))


def money_text(value: Decimal) -> str:
    """What ``Money`` binds on SQLite."""
    return str(value)


def time_text(value: dt.datetime) -> str:
    """What ``UTCDateTime`` binds on SQLite (values here are validated, tz-aware)."""
    return utc_text(value)


def utc(value: Any) -> dt.datetime:
    """A stored ``UTCDateTime`` as it reads back."""
    parsed = parse_utc(value)
    assert parsed is not None  # NOT NULL columns
    return parsed
