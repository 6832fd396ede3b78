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
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import attrs
from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from brokersync._store._schema import trades
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


def _num(value: Decimal | None) -> str:
    # Normalized so "1.50" and "1.5" (the same amount) fingerprint alike.
    return "" if value is None else format(value.normalize(), "f")


def _time(value: dt.datetime | None) -> str:
    return "" if value is None else value.astimezone(dt.UTC).isoformat()


def fingerprint(trade: Trade) -> str:
    """A stable hash of the trade's normalized fields (``raw`` excluded)."""
    text = "\x1f".join(
        (
            trade.symbol,
            trade.direction.value,
            _time(trade.opened_at),
            _time(trade.closed_at),
            _num(trade.entry_price),
            _num(trade.exit_price),
            _num(trade.quantity),
            _num(trade.realized_pnl),
            _num(trade.fees),
            trade.currency,
        )
    )
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def _row(trade: Trade, connection_id: str, fp: str, now: dt.datetime) -> dict[str, Any]:
    return {
        "connection_id": connection_id,
        "account_id": trade.account_id,
        "broker_trade_id": trade.broker_trade_id,
        "symbol": trade.symbol,
        "direction": trade.direction.value,
        "opened_at": trade.opened_at,
        "closed_at": trade.closed_at,
        "entry_price": trade.entry_price,
        "exit_price": trade.exit_price,
        "quantity": trade.quantity,
        "realized_pnl": trade.realized_pnl,
        "fees": trade.fees,
        "currency": trade.currency,
        "raw": json.dumps(trade.raw, default=_json_default, separators=(",", ":"), sort_keys=True),
        "fingerprint": fp,
        "first_seen_at": now,
        "updated_at": now,
    }


def dialect_insert(dialect: str) -> Any:
    """The ``insert`` construct with ``on_conflict_do_update`` for ``dialect``."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def _upsert_statement(dialect: str) -> Any:
    stmt = dialect_insert(dialect)(trades)
    excluded = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=[trades.c.connection_id, trades.c.account_id, trades.c.broker_trade_id],
        set_={name: excluded[name] for name in _UPDATABLE},
        where=trades.c.fingerprint != excluded.fingerprint,
    )


async def _existing(conn: AsyncConnection, connection_id: str, account_id: str, ids: Sequence[str]) -> dict[str, str]:
    query = select(trades.c.broker_trade_id, trades.c.fingerprint).where(
        and_(
            trades.c.connection_id == connection_id,
            trades.c.account_id == account_id,
            trades.c.broker_trade_id.in_(ids),
        )
    )
    result = await conn.execute(query)
    return {row[0]: row[1] for row in result}


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
    rows: list[dict[str, Any]] = []
    imported = updated = 0
    skipped = repeated
    for trade_id, trade in latest.items():
        fp = fingerprint(trade)
        previous = stored.get(trade_id)
        if previous == fp:
            skipped += 1
            continue
        if previous is None:
            imported += 1
        else:
            updated += 1
        rows.append(_row(trade, connection_id, fp, now))
    if rows:
        await conn.execute(_upsert_statement(conn.dialect.name), rows)
    return UpsertCounts(imported=imported, skipped=skipped, updated=updated)
