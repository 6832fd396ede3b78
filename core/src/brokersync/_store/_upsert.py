"""Writing trades: a portable ``INSERT ... ON CONFLICT DO UPDATE`` that counts what changed.

A batch is classified against what is stored (one indexed ``SELECT`` of the batch's ids):
new -> imported, same fingerprint -> skipped (not written), other fingerprint -> updated. New and
changed rows then go to the database in upserts whose ``DO UPDATE`` only fires when the
fingerprint differs, so even a racing writer can neither duplicate a trade nor lose a correction.
The fingerprint hashes the normalized fields only: a broker that reshuffles its raw JSON, or
writes a number with another scale ("1.5" / "1.50"), does not cause an update.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import hashlib
import itertools
import json
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import attrs
from sqlalchemy.ext.asyncio import AsyncConnection

from brokersync._store._fingerprints import canonical_decimal
from brokersync._store._sql import dbapi_error
from brokersync._store._types import utc_text
from brokersync.models import Trade

__all__ = ["UpsertCounts", "dialect_insert", "upsert_trades"]

_UPDATABLE = (
    "symbol",
    "direction",
    "opened_at",
    "closed_at",
    "entry_price",
    "exit_price",
    "quantity",
    "realized_pnl",
    "fees",
    "currency",
    "raw",
    "fingerprint",
    "updated_at",
)


@attrs.frozen
class UpsertCounts:
    """How a batch of trades landed."""

    imported: int = 0
    skipped: int = 0
    updated: int = 0

    def __add__(self, other: UpsertCounts) -> UpsertCounts:
        return UpsertCounts(self.imported + other.imported, self.skipped + other.skipped, self.updated + other.updated)


_COLUMNS = (
    "connection_id",
    "account_id",
    "broker_trade_id",
    "symbol",
    "direction",
    "opened_at",
    "closed_at",
    "entry_price",
    "exit_price",
    "quantity",
    "realized_pnl",
    "fees",
    "currency",
    "raw",
    "fingerprint",
    "first_seen_at",
    "updated_at",
)


def dialect_insert(dialect: str) -> Any:
    """The ``insert`` construct with ``on_conflict_do_update`` for ``dialect``."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def _upsert_sql(dialect: str) -> str:
    # Written out (not compiled per call): the same text is valid on SQLite and PostgreSQL, and
    # sending pre-converted tuples straight to the driver's executemany is what makes the store
    # fast; the column types' own conversions (Money, UTCDateTime) are applied in _rows below.
    marks = ", ".join("?" if dialect == "sqlite" else f"${i}" for i in range(1, len(_COLUMNS) + 1))
    updates = ", ".join(f"{name} = excluded.{name}" for name in _UPDATABLE)
    return (
        f"INSERT INTO trades ({', '.join(_COLUMNS)}) VALUES ({marks}) "  # noqa: S608 - constant names only
        "ON CONFLICT (connection_id, account_id, broker_trade_id) "
        f"DO UPDATE SET {updates} WHERE trades.fingerprint <> excluded.fingerprint"
    )


_SQL = {name: _upsert_sql(name) for name in ("sqlite", "postgresql")}


def _json_default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


_ENCODER = json.JSONEncoder(default=_json_default, separators=(",", ":"))


def _make_encode() -> Callable[[Any], str]:
    # json builds a new C encoder on every encode() call, which costs as much as encoding a small
    # record. Build it once, with the same settings as _ENCODER. No circular-reference markers: a
    # raw record parsed from a broker's JSON cannot be circular (one built circular by a plugin
    # fails the batch with RecursionError instead of a ValueError).
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator (e.g. another Python implementation)
        return _ENCODER.encode
    encoder = make(None, _json_default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True)

    def encode(value: Any) -> str:
        return "".join(encoder(value, 0))

    return encode


_encode = _make_encode()


@attrs.define
class _Tally:
    imported: int = 0
    skipped: int = 0
    updated: int = 0


def _rows(
    items: Sequence[tuple[str, Trade]],
    stored: Mapping[str, str],
    connection_id: str,
    now: dt.datetime,
    now_text: str,
    tally: _Tally,
    sqlite: bool,
) -> list[tuple[Any, ...]]:
    """The rows to write for ``items``, classified against ``stored`` (id -> fingerprint).

    The per-trade work, done once per value: each Decimal and time becomes text once, and that
    text feeds the fingerprint and (on SQLite) the stored row. A trade whose fingerprint is stored
    already is only counted (its raw JSON is never encoded). The fingerprint is the one
    :func:`fingerprint` computes (a test compares them); the canonical decimal text is inlined for
    the common case (no trailing zero, no exponent: the text is canonical already).
    """
    encode = _encode
    blake2b = hashlib.blake2b
    canonical = canonical_decimal
    get = stored.get
    rows: list[tuple[Any, ...]] = []
    append = rows.append
    imported = skipped = updated = 0
    for trade_id, trade in items:
        opened_at = trade.opened_at
        opened = utc_text(opened_at)
        closed_at = trade.closed_at
        closed = "" if closed_at is None else utc_text(closed_at)
        direction = trade.direction._value_
        entry = str(trade.entry_price)
        quantity = str(trade.quantity)
        fees = str(trade.fees)
        exit_price = trade.exit_price
        pnl_value = trade.realized_pnl
        if exit_price is None:
            exit_ = None
            exit_key = "None"
        else:
            exit_ = exit_key = str(exit_price)
            if exit_key[-1] == "0" or "E" in exit_key:
                exit_key = canonical(exit_key)
        if pnl_value is None:
            pnl = None
            pnl_key = "None"
        else:
            pnl = pnl_key = str(pnl_value)
            if pnl_key[-1] == "0" or "E" in pnl_key:
                pnl_key = canonical(pnl_key)
        fp = blake2b(
            f"{trade.symbol}\x1f{direction}\x1f{opened}\x1f{closed}\x1f"
            f"{entry if entry[-1] != '0' and 'E' not in entry else canonical(entry)}\x1f{exit_key}\x1f"
            f"{quantity if quantity[-1] != '0' and 'E' not in quantity else canonical(quantity)}\x1f{pnl_key}\x1f"
            f"{fees if fees[-1] != '0' and 'E' not in fees else canonical(fees)}\x1f{trade.currency}".encode(),
            digest_size=16,
        ).hexdigest()
        previous = get(trade_id)
        if previous is None:
            imported += 1
        elif previous == fp:
            skipped += 1
            continue
        else:
            updated += 1
        raw = encode(trade.raw)
        if sqlite:
            # the columns of _SQLITE_ROW (connection, account and times are bound once per statement)
            append((trade_id, trade.symbol, direction, opened, closed or None, entry, exit_, quantity, pnl, fees,
                    trade.currency, raw, fp))  # fmt: skip
        else:
            append((
                connection_id, trade.account_id, trade_id, trade.symbol, direction, opened_at, closed_at,
                trade.entry_price, exit_price, trade.quantity, pnl_value, trade.fees,
                trade.currency, raw, fp, now, now,
            ))  # fmt: skip
    tally.imported += imported
    tally.skipped += skipped
    tally.updated += updated
    return rows


# --- PostgreSQL --------------------------------------------------------------------------------

_PG_LOOKUP = (
    "SELECT broker_trade_id, fingerprint FROM trades "
    "WHERE connection_id = $1 AND account_id = $2 AND broker_trade_id = ANY($3::varchar[])"
)


async def _pg_existing(conn: AsyncConnection, connection_id: str, account_id: str, ids: list[str]) -> dict[str, str]:
    # One array parameter: the same prepared statement (and plan) for every batch size.
    result = await conn.exec_driver_sql(_PG_LOOKUP, (connection_id, account_id, ids))
    rows: Sequence[Any] = result.all()
    return {str(row[0]): str(row[1]) for row in rows}


# --- SQLite ------------------------------------------------------------------------------------

# Trades per SQLite statement. A chunk is one multi-row INSERT (17 parameters a row: 4,352 of the
# 32,766 SQLite >= 3.32 allows). SQLite compiles such a statement at ~10 µs a row, as much as
# inserting it, so the statement must come from the driver's statement cache: a chunk of n rows is
# padded to the next power of two with copies of its last row (at most 9 statement texts). A copy
# conflicts with its original, and "DO UPDATE ... WHERE fingerprint <> excluded.fingerprint" makes
# that a no-op, so padding changes nothing in the table.
_SQLITE_CHUNK = 256
_SQLITE_LOOKUP_CHUNK = 1000  # ids per lookup statement


# The values every row of a batch shares are bound once per statement, as numbered parameters
# (?1 connection, ?2 account, ?3 now for first_seen_at and updated_at): binding runs in the driver's
# thread with the GIL held, so each parameter not bound is time this thread does not wait.
_SQLITE_SHARED = {"connection_id": 1, "account_id": 2, "first_seen_at": 3, "updated_at": 3}
_SQLITE_ROW = tuple(name for name in _COLUMNS if name not in _SQLITE_SHARED)  # bound per row


@functools.lru_cache(maxsize=16)
def _sqlite_insert_sql(count: int) -> str:
    numbers = itertools.count(len(set(_SQLITE_SHARED.values())) + 1)

    def marks() -> str:
        shared = _SQLITE_SHARED
        return ", ".join(f"?{shared[name]}" if name in shared else f"?{next(numbers)}" for name in _COLUMNS)

    rows = [f"({marks()})" for _ in range(count)]
    updates = ", ".join(f"{name} = excluded.{name}" for name in _UPDATABLE)
    return (
        f"INSERT INTO trades ({', '.join(_COLUMNS)}) VALUES {', '.join(rows)} "  # noqa: S608 - constant names only
        "ON CONFLICT (connection_id, account_id, broker_trade_id) "
        f"DO UPDATE SET {updates} WHERE trades.fingerprint <> excluded.fingerprint"
    )


@functools.lru_cache(maxsize=16)
def _sqlite_lookup_sql(count: int) -> str:
    return (
        "SELECT broker_trade_id, fingerprint FROM trades "  # noqa: S608 - only placeholders are interpolated
        f"WHERE connection_id = ? AND account_id = ? AND broker_trade_id IN ({','.join('?' * count)})"
    )


async def _sqlite_existing(driver: Any, connection_id: str, account_id: str, ids: list[str]) -> dict[str, str]:
    # Straight on the aiosqlite connection: one hop to its thread per chunk (execute + fetch),
    # where SQLAlchemy's cursor adapter takes four (cursor, execute, fetchall, close).
    found: dict[str, str] = {}
    for start in range(0, len(ids), _SQLITE_LOOKUP_CHUNK):
        chunk = ids[start : start + _SQLITE_LOOKUP_CHUNK]
        sql = _sqlite_lookup_sql(len(chunk))
        try:
            rows = await driver.execute_fetchall(sql, (connection_id, account_id, *chunk))
        except sqlite3.Error as exc:
            raise dbapi_error(sql, exc) from None
        found.update((str(row[0]), str(row[1])) for row in rows)
    return found


class _BoundSignal:
    """The last parameter of an insert: tells this thread that the driver's thread has bound it.

    sqlite3 adapts a parameter of a type it does not know by calling its ``__conform__`` (the
    documented adapter protocol) while it binds the statement's parameters in the driver's thread,
    in order; right after the last one it runs the statement, without the GIL.
    """

    __slots__ = ("event", "value")

    def __init__(self, value: str) -> None:
        self.value = value
        self.event = threading.Event()

    def __conform__(self, protocol: object) -> str:
        self.event.set()
        return self.value


async def _sqlite_insert(
    driver: Any, shared: tuple[str, str, str], rows: list[tuple[Any, ...]], signal: _BoundSignal
) -> None:
    count = 1 << (len(rows) - 1).bit_length()  # the next power of two (a cached statement)
    sql = _sqlite_insert_sql(count)
    params: list[Any] = [*shared, *itertools.chain.from_iterable(rows)]
    if count > len(rows):
        params.extend(itertools.chain.from_iterable(itertools.repeat(rows[-1], count - len(rows))))
    params[-1] = signal  # the last row's fingerprint: bound last, right before the statement runs
    try:
        # execute_fetchall: the driver's thread also drops the cursor (and resets the statement),
        # so this thread never touches a statement the driver's thread may be running.
        await driver.execute_fetchall(sql, params)
    except sqlite3.Error as exc:
        raise dbapi_error(sql, exc) from None


# How long this thread waits (blocking) for the driver's thread to start an insert. Normally the
# rest of the previous chunk's insert (a few ms); if it takes longer, this thread stops waiting
# and only loses the overlap for that chunk.
_HANDOVER_TIMEOUT = 0.05


async def _upsert_sqlite(
    conn: AsyncConnection,
    connection_id: str,
    account_id: str,
    items: Sequence[tuple[str, Trade]],
    now: dt.datetime,
    tally: _Tally,
) -> None:
    """The SQLite path: this thread prepares chunk k+1 while SQLite inserts chunk k.

    aiosqlite runs each statement in its own thread, in the order they were queued, and SQLite
    releases the GIL while it runs a statement. A chunk is one multi-row INSERT, so all of its
    rows are written in one GIL-free call. But the driver's thread needs the GIL to bind the
    parameters and to hand back the result (several times: queue, result, waking the loop), and
    while this thread computes it gets the GIL only after the interpreter's switch interval (5 ms,
    longer than a chunk takes): every statement would wait for this thread to finish computing,
    and nothing would overlap (measured: wall time = the sum of both threads' CPU time).

    So after queueing an insert, this thread blocks (releasing the GIL, not running the event
    loop) until the driver's thread has bound its last parameter: from then on SQLite runs
    without the GIL while this thread prepares the next chunk. Other coroutines of this process
    wait for that long (at most the rest of the previous chunk's insert, a few ms), and only when
    the batch has more than one chunk. The driver's thread finishes the
    previous insert in that blocked window too. The wait is bounded (``_HANDOVER_TIMEOUT``).

    The fingerprint lookup of the whole batch runs first, inside the caller's ``BEGIN IMMEDIATE``
    transaction, so classification sees the database as it was before this batch and the counts
    are exact; a failure anywhere fails the caller's transaction.
    """
    driver = (await conn.get_raw_connection()).driver_connection
    now_text = utc_text(now)
    shared = (connection_id, account_id, now_text)
    stored = await _sqlite_existing(driver, connection_id, account_id, [trade_id for trade_id, _ in items])
    tasks: list[asyncio.Future[Any]] = []
    try:
        for start in range(0, len(items), _SQLITE_CHUNK):
            rows = _rows(items[start : start + _SQLITE_CHUNK], stored, connection_id, now, now_text, tally, sqlite=True)
            if rows:
                signal = _BoundSignal(rows[-1][-1])
                task = asyncio.ensure_future(_sqlite_insert(driver, shared, rows, signal))
                tasks.append(task)
                await asyncio.sleep(0)  # the task queues the insert in the driver's thread
                # Only when another chunk follows (nothing to overlap otherwise: a small batch of a
                # scheduled sync never blocks the loop); done already: it failed before the driver.
                if start + _SQLITE_CHUNK < len(items) and not task.done():
                    signal.event.wait(_HANDOVER_TIMEOUT)  # blocking on purpose: see the docstring
        await asyncio.gather(*tasks)
    finally:
        # On failure or cancellation: wait until nothing of this batch is still queued, so the
        # caller's rollback comes after it (the driver runs requests in order either way).
        pending = [queued for queued in tasks if not queued.done()]
        if pending:
            await asyncio.wait(pending)
        for queued in tasks:
            if queued.done() and not queued.cancelled():
                queued.exception()  # retrieved: the first failure already propagates


async def upsert_trades(
    conn: AsyncConnection,
    *,
    connection_id: str,
    account_id: str,
    batch: Sequence[Trade],
    now: dt.datetime,
) -> UpsertCounts:
    """Store ``batch`` (trades of one account) inside the caller's transaction; count the outcome.

    A trade repeated within the batch counts once per occurrence: the last occurrence wins and the
    earlier ones count as skipped.
    """
    if not batch:
        return UpsertCounts()
    latest: dict[str, Trade] = {}
    for trade in batch:
        if trade.account_id != account_id:
            raise ValueError(
                f"trade {trade.broker_trade_id!r} belongs to account {trade.account_id!r}, not {account_id!r}"
            )
        latest[trade.broker_trade_id] = trade
    repeated = len(batch) - len(latest)
    tally = _Tally(skipped=repeated)
    if conn.dialect.name == "sqlite":
        await _upsert_sqlite(conn, connection_id, account_id, list(latest.items()), now, tally)
    else:
        stored = await _pg_existing(conn, connection_id, account_id, list(latest))
        rows = _rows(list(latest.items()), stored, connection_id, now, utc_text(now), tally, sqlite=False)
        if rows:
            await conn.exec_driver_sql(_SQL["postgresql"], rows)
    return UpsertCounts(imported=tally.imported, skipped=tally.skipped, updated=tally.updated)
