"""Writing trades: a portable ``INSERT ... ON CONFLICT DO UPDATE`` that counts what changed.

A batch is classified against what is stored (one indexed ``SELECT`` of the batch's ids):
new -> imported, same fingerprint -> skipped (not written), other fingerprint -> updated. New and
changed rows then go to the database in one upsert whose ``DO UPDATE`` only fires when the
fingerprint differs, so even a racing writer can neither duplicate a trade nor lose a correction.
The fingerprint hashes the normalized fields only: a broker that reshuffles its raw JSON does not
cause an update.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import attrs
from sqlalchemy.ext.asyncio import AsyncConnection

from brokersync._store._sql import dbapi_error
from brokersync._store._types import utc_text
from brokersync.models import Trade

__all__ = ["UpsertCounts", "dialect_insert", "fingerprint", "upsert_trades"]

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
_SQLITE_CHUNK = 500  # SQLite allows 32766 bound parameters; 500 ids keep each lookup short
_PIPELINE_CHUNK = 250  # trades prepared here while the previous chunk is written there


def _fingerprint(trade: Trade, opened: str, closed: str) -> str:
    # The exact decimal text: a broker that changes "1.5" to "1.50" changed what is stored (NUMERIC
    # keeps the scale), so that counts as an update too.
    text = (
        f"{trade.symbol}\x1f{trade.direction}\x1f{opened}\x1f{closed}\x1f{trade.entry_price}\x1f"
        f"{trade.exit_price}\x1f{trade.quantity}\x1f{trade.realized_pnl}\x1f{trade.fees}\x1f{trade.currency}"
    )
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def fingerprint(trade: Trade) -> str:
    """A stable hash of the trade's normalized fields (``raw`` excluded)."""
    closed = "" if trade.closed_at is None else utc_text(trade.closed_at)
    return _fingerprint(trade, utc_text(trade.opened_at), closed)


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


def _prepare(
    latest: Mapping[str, Trade], connection_id: str, now: dt.datetime, sqlite: bool
) -> list[tuple[str, str, tuple[Any, ...]]]:
    """(broker trade id, fingerprint, row) per trade: the per-trade work, done once per value.

    Each Decimal and time is turned into text once and that text feeds both the fingerprint and
    (on SQLite) the stored row; ``f"{value}"`` of a Decimal is ``str(value)``, so fingerprints
    are unchanged from earlier versions (stored rows do not all turn into "updated").
    """
    encode = _encode
    blake2b = hashlib.blake2b
    now_text = utc_text(now)
    prepared: list[tuple[str, str, tuple[Any, ...]]] = []
    append = prepared.append
    utc = dt.UTC
    for trade_id, trade in latest.items():
        # utc_text, inlined for the common case (Trade's converter already made the time UTC).
        opened_at = trade.opened_at
        opened = opened_at.isoformat(" ", "microseconds")[:26] if opened_at.tzinfo is utc else utc_text(opened_at)
        closed_at = trade.closed_at
        if closed_at is None:
            closed = ""
        elif closed_at.tzinfo is utc:
            closed = closed_at.isoformat(" ", "microseconds")[:26]
        else:
            closed = utc_text(closed_at)
        direction = trade.direction.value
        entry = str(trade.entry_price)
        exit_ = None if trade.exit_price is None else str(trade.exit_price)
        quantity = str(trade.quantity)
        pnl = None if trade.realized_pnl is None else str(trade.realized_pnl)
        fees = str(trade.fees)
        # The exact decimal text: a broker that changes "1.5" to "1.50" changed what is stored
        # (NUMERIC keeps the scale), so that counts as an update too. None is spelled "None".
        fp = blake2b(
            f"{trade.symbol}\x1f{direction}\x1f{opened}\x1f{closed}\x1f{entry}\x1f{exit_}\x1f{quantity}\x1f"
            f"{pnl}\x1f{fees}\x1f{trade.currency}".encode(),
            digest_size=16,
        ).hexdigest()
        raw = encode(trade.raw)
        if sqlite:
            row: tuple[Any, ...] = (
                connection_id, trade.account_id, trade_id, trade.symbol, direction, opened, closed or None,
                entry, exit_, quantity, pnl, fees, trade.currency, raw, fp, now_text, now_text,
            )  # fmt: skip
        else:
            row = (
                connection_id, trade.account_id, trade_id, trade.symbol, direction, trade.opened_at, closed_at,
                trade.entry_price, trade.exit_price, trade.quantity, trade.realized_pnl, trade.fees,
                trade.currency, raw, fp, now, now,
            )  # fmt: skip
        append((trade_id, fp, row))
    return prepared


_PG_LOOKUP = (
    "SELECT broker_trade_id, fingerprint FROM trades "
    "WHERE connection_id = $1 AND account_id = $2 AND broker_trade_id = ANY($3::varchar[])"
)


def _sqlite_lookup(chunk: int) -> str:
    return (
        "SELECT broker_trade_id, fingerprint FROM trades "  # noqa: S608 - only placeholders are interpolated
        f"WHERE connection_id = ? AND account_id = ? AND broker_trade_id IN ({','.join('?' * chunk)})"
    )


async def _existing(conn: AsyncConnection, connection_id: str, account_id: str, ids: Sequence[str]) -> dict[str, str]:
    if conn.dialect.name == "postgresql":
        # One array parameter: the same prepared statement (and plan) for every batch size.
        result = await conn.exec_driver_sql(_PG_LOOKUP, (connection_id, account_id, list(ids)))
        pg_rows: Sequence[Any] = result.all()
        return {str(row[0]): str(row[1]) for row in pg_rows}
    # Plain SQL in chunks: SQLite caps bound parameters per statement, and compiling an expanding
    # IN clause per batch cost more than the lookup itself.
    found: dict[str, str] = {}
    for start in range(0, len(ids), _SQLITE_CHUNK):
        chunk = list(ids[start : start + _SQLITE_CHUNK])
        result = await conn.exec_driver_sql(_sqlite_lookup(len(chunk)), (connection_id, account_id, *chunk))
        rows: Sequence[Any] = result.all()
        found.update((str(row[0]), str(row[1])) for row in rows)
    return found


async def _sqlite_existing(driver: Any, connection_id: str, account_id: str, ids: Sequence[str]) -> dict[str, str]:
    # Straight on the aiosqlite connection: one hop to its thread per chunk (execute + fetch),
    # where SQLAlchemy's cursor adapter takes four (cursor, execute, fetchall, close).
    found: dict[str, str] = {}
    for start in range(0, len(ids), _SQLITE_CHUNK):
        chunk = ids[start : start + _SQLITE_CHUNK]
        sql = _sqlite_lookup(len(chunk))
        try:
            rows = await driver.execute_fetchall(sql, (connection_id, account_id, *chunk))
        except sqlite3.Error as exc:
            raise dbapi_error(sql, exc) from None
        found.update((str(row[0]), str(row[1])) for row in rows)
    return found


def _classify(
    prepared: Sequence[tuple[str, str, tuple[Any, ...]]], stored: Mapping[str, str]
) -> tuple[list[tuple[Any, ...]], int, int, int]:
    rows: list[tuple[Any, ...]] = []
    imported = updated = skipped = 0
    get = stored.get
    for trade_id, fp, row in prepared:
        previous = get(trade_id)
        if previous is None:
            imported += 1
        elif previous == fp:
            skipped += 1
            continue
        else:
            updated += 1
        rows.append(row)
    return rows, imported, skipped, updated


async def _sqlite_executemany(driver: Any, rows: list[tuple[Any, ...]]) -> Any:
    # Returns the driver's cursor, which the caller keeps until every chunk is written: dropping it
    # resets its statement from this thread, and the next chunk runs the same cached statement in
    # the driver's thread.
    try:
        return await driver.executemany(_SQL["sqlite"], rows)
    except sqlite3.Error as exc:
        raise dbapi_error(_SQL["sqlite"], exc) from None


async def _upsert_sqlite(
    conn: AsyncConnection, connection_id: str, account_id: str, latest: Mapping[str, Trade], now: dt.datetime
) -> tuple[int, int, int]:
    """The SQLite path: pipelined, so the database thread and this thread work at the same time.

    aiosqlite runs every statement in its own thread, in the order they were queued, and SQLite
    releases the GIL while it searches and writes. So the fingerprint lookup of the whole batch is
    queued first, then each chunk of trades is turned into rows here while the previous chunk's
    ``executemany`` runs there. Classification still sees the database as it was before this
    batch (the lookup is queued before any insert, inside the caller's ``BEGIN IMMEDIATE``
    transaction), so the counts are exact; a failure anywhere fails the caller's transaction.
    """
    driver = (await conn.get_raw_connection()).driver_connection
    items = list(latest.items())
    tasks: list[asyncio.Future[Any]] = [
        asyncio.ensure_future(_sqlite_existing(driver, connection_id, account_id, list(latest)))
    ]
    imported = skipped = updated = 0
    try:
        await asyncio.sleep(0)  # let the lookup reach the driver's queue before the CPU work starts
        stored: dict[str, str] | None = None
        for start in range(0, len(items), _PIPELINE_CHUNK):
            prepared = _prepare(dict(items[start : start + _PIPELINE_CHUNK]), connection_id, now, sqlite=True)
            if stored is None:
                stored = await tasks[0]
            rows, new, same, changed = _classify(prepared, stored)
            imported, skipped, updated = imported + new, skipped + same, updated + changed
            if rows:
                tasks.append(asyncio.ensure_future(_sqlite_executemany(driver, rows)))
                await asyncio.sleep(0)  # queue it now; the next chunk is prepared meanwhile
        cursors = await asyncio.gather(*tasks)
        del cursors  # every statement of the batch is done: nothing runs in the driver's thread now
    finally:
        # On failure or cancellation: wait until nothing of this batch is still queued, so the
        # caller's rollback comes after it (the driver runs requests in order either way).
        pending = [task for task in tasks if not task.done()]
        if pending:
            await asyncio.wait(pending)
        for task in tasks:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: the first failure already propagates
    return imported, skipped, updated


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
    if conn.dialect.name == "sqlite":
        imported, skipped, updated = await _upsert_sqlite(conn, connection_id, account_id, latest, now)
    else:
        stored = await _existing(conn, connection_id, account_id, list(latest))
        rows, imported, skipped, updated = _classify(_prepare(latest, connection_id, now, sqlite=False), stored)
        if rows:
            await conn.exec_driver_sql(_SQL["postgresql"], rows)
    return UpsertCounts(imported=imported, skipped=skipped + repeated, updated=updated)
