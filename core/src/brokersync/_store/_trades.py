"""Writing trades: a portable ``INSERT ... ON CONFLICT DO UPDATE`` that counts what changed.

A batch is classified against what is stored (one indexed ``SELECT`` of the batch's ids):
new -> imported, same fingerprint -> skipped (not written), other fingerprint -> updated. New and
changed rows then go to the database in one upsert whose ``DO UPDATE`` only fires when the
fingerprint differs, so even a racing writer can neither duplicate a trade nor lose a correction.
The fingerprint hashes the normalized fields only: a broker that reshuffles its raw JSON does not
cause an update.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import attrs
from sqlalchemy.ext.asyncio import AsyncConnection

from brokersync._store._types import decimal_text, utc_text
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
_SQLITE_CHUNK = 500


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


def _raw(trade: Trade) -> str:
    return _ENCODER.encode(trade.raw)


def _money_text(value: Decimal | None) -> str | None:
    return None if value is None else decimal_text(value)


def _sqlite_row(trade: Trade, connection_id: str, fp: str, opened: str, closed: str, now: str) -> tuple[Any, ...]:
    return (
        connection_id,
        trade.account_id,
        trade.broker_trade_id,
        trade.symbol,
        str(trade.direction),
        opened,
        closed or None,
        decimal_text(trade.entry_price),
        _money_text(trade.exit_price),
        decimal_text(trade.quantity),
        _money_text(trade.realized_pnl),
        decimal_text(trade.fees),
        trade.currency,
        _raw(trade),
        fp,
        now,
        now,
    )


def _pg_row(trade: Trade, connection_id: str, fp: str, now: dt.datetime) -> tuple[Any, ...]:
    return (
        connection_id,
        trade.account_id,
        trade.broker_trade_id,
        trade.symbol,
        trade.direction.value,
        trade.opened_at,
        trade.closed_at,
        trade.entry_price,
        trade.exit_price,
        trade.quantity,
        trade.realized_pnl,
        trade.fees,
        trade.currency,
        _raw(trade),
        fp,
        now,
        now,
    )


async def _existing(conn: AsyncConnection, connection_id: str, account_id: str, ids: Sequence[str]) -> dict[str, str]:
    if conn.dialect.name == "postgresql":
        # One array parameter: the same prepared statement (and plan) for every batch size.
        result = await conn.exec_driver_sql(
            "SELECT broker_trade_id, fingerprint FROM trades "
            "WHERE connection_id = $1 AND account_id = $2 AND broker_trade_id = ANY($3::varchar[])",
            (connection_id, account_id, list(ids)),
        )
        pg_rows: Sequence[Any] = result.all()
        return {str(row[0]): str(row[1]) for row in pg_rows}
    # Plain SQL in chunks: SQLite caps bound parameters per statement, and compiling an expanding
    # IN clause per batch cost more than the lookup itself.
    found: dict[str, str] = {}
    for start in range(0, len(ids), _SQLITE_CHUNK):
        chunk = list(ids[start : start + _SQLITE_CHUNK])
        marks = ",".join("?" * len(chunk))
        result = await conn.exec_driver_sql(
            "SELECT broker_trade_id, fingerprint FROM trades "  # noqa: S608 - only placeholders are interpolated
            f"WHERE connection_id = ? AND account_id = ? AND broker_trade_id IN ({marks})",
            (connection_id, account_id, *chunk),
        )
        rows: Sequence[Any] = result.all()
        found.update((str(row[0]), str(row[1])) for row in rows)
    return found


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
    stored = await _existing(conn, connection_id, account_id, list(latest))
    sqlite = conn.dialect.name == "sqlite"
    now_text = utc_text(now)
    rows: list[tuple[Any, ...]] = []
    imported = updated = 0
    skipped = repeated
    for trade_id, trade in latest.items():
        opened = utc_text(trade.opened_at)
        closed = "" if trade.closed_at is None else utc_text(trade.closed_at)
        fp = _fingerprint(trade, opened, closed)
        previous = stored.get(trade_id)
        if previous == fp:
            skipped += 1
            continue
        if previous is None:
            imported += 1
        else:
            updated += 1
        rows.append(
            _sqlite_row(trade, connection_id, fp, opened, closed, now_text)
            if sqlite
            else _pg_row(trade, connection_id, fp, now)
        )
    if rows:
        await conn.exec_driver_sql(_SQL["sqlite" if sqlite else "postgresql"], rows)
    return UpsertCounts(imported=imported, skipped=skipped, updated=updated)
