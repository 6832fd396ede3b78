"""Tombstones for cancelled (busted) trades: recording them, and leaving cancelled trades out of listings.

A tombstone is keyed like a trade (connection, account, broker trade id) but lives in its own
table, so it can arrive before, with, or after the trade it cancels, and the trade's own row is
never rewritten (history and audit keep it). Recording is idempotent: a broker that reports the
same cancellation again changes nothing and counts 0. Tombstones are written inside the caller's
transaction (the one that stores the page's trades and moves its cursor).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import attrs
from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Select

from brokersync._store._schema import trade_cancellations, trades
from brokersync._store._upsert import UpsertCounts, dialect_insert
from brokersync.models import TradeCancellation
from brokersync.results import SyncWarning

__all__ = ["BatchCounts", "cancellations_query", "record_cancellations", "with_cancellations"]

_LOOKUP_CHUNK = 500  # SQLite caps bound parameters per statement


@attrs.frozen
class BatchCounts(UpsertCounts):
    """How a page landed: its trades (imported/skipped/updated), its newly recorded tombstones, and the
    warnings pairing found (a broker's realized P&L the round trips disagree with: ``_pairing_check``)."""

    cancelled: int = 0
    warnings: tuple[SyncWarning, ...] = ()


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


async def record_cancellations(
    conn: AsyncConnection,
    *,
    connection_id: str,
    account_id: str,
    cancellations: Sequence[TradeCancellation],
    now: dt.datetime,
) -> int:
    """Store the tombstones not stored yet (inside the caller's transaction); return how many were new.

    Within one page the first report of a trade's cancellation wins, as across pages: a tombstone
    keeps the cancellation time and reason it was first recorded with.
    """
    first: dict[str, TradeCancellation] = {}
    for cancellation in cancellations:
        if cancellation.account_id != account_id:
            raise ValueError(
                f"cancellation of trade {cancellation.broker_trade_id!r} belongs to account "
                f"{cancellation.account_id!r}, not {account_id!r}"
            )
        first.setdefault(cancellation.broker_trade_id, cancellation)
    if not first:
        return 0
    ids = list(first)
    stored: set[str] = set()
    table = trade_cancellations
    for start in range(0, len(ids), _LOOKUP_CHUNK):
        query = select(table.c.broker_trade_id).where(
            table.c.connection_id == connection_id,
            table.c.account_id == account_id,
            table.c.broker_trade_id.in_(ids[start : start + _LOOKUP_CHUNK]),
        )
        stored.update(str(row[0]) for row in await conn.execute(query))
    new = [c for trade_id, c in first.items() if trade_id not in stored]
    if not new:
        return 0
    # ON CONFLICT DO NOTHING: a racing writer (which the sync lease already rules out) could not
    # make this fail or overwrite the first tombstone.
    statement = dialect_insert(conn.dialect.name)(table).on_conflict_do_nothing(
        index_elements=[table.c.connection_id, table.c.account_id, table.c.broker_trade_id]
    )
    await conn.execute(
        statement,
        [
            {
                "connection_id": connection_id,
                "account_id": account_id,
                "broker_trade_id": c.broker_trade_id,
                "cancelled_at": c.cancelled_at,
                "reason": c.reason,
                "raw": json.dumps(dict(c.raw), default=_json_default, separators=(",", ":")),
                "recorded_at": now,
            }
            for c in new
        ],
    )
    return len(new)


def with_cancellations(query: Select[Any], *, include_cancelled: bool) -> Select[Any]:
    """``query`` (a ``select(trades)``) with each trade's tombstone joined in, as the columns
    ``cancelled_at`` and ``cancel_reason`` (``NULL`` when not cancelled); cancelled trades are
    filtered out unless ``include_cancelled``.
    """
    table = trade_cancellations
    joined = trades.outerjoin(
        table,
        and_(
            table.c.connection_id == trades.c.connection_id,
            table.c.account_id == trades.c.account_id,
            table.c.broker_trade_id == trades.c.broker_trade_id,
        ),
    )
    query = query.add_columns(table.c.cancelled_at, table.c.reason.label("cancel_reason")).select_from(joined)
    if not include_cancelled:
        query = query.where(table.c.broker_trade_id.is_(None))
    return query


def cancellations_query(
    *, connection_ids: Sequence[str] | None, account_id: str | None, without_trade: bool, limit: int | None
) -> Select[Any]:
    """Tombstones (newest cancellation first), each with whether its trade is stored."""
    table = trade_cancellations
    stored = (
        select(trades.c.id)
        .where(
            trades.c.connection_id == table.c.connection_id,
            trades.c.account_id == table.c.account_id,
            trades.c.broker_trade_id == table.c.broker_trade_id,
        )
        .exists()
    )
    query = select(
        table.c.connection_id,
        table.c.account_id,
        table.c.broker_trade_id,
        table.c.cancelled_at,
        table.c.reason,
        table.c.recorded_at,
        stored.label("trade_stored"),
    )
    if connection_ids is not None:
        query = query.where(table.c.connection_id.in_(list(connection_ids)))
    if account_id is not None:
        query = query.where(table.c.account_id == account_id)
    if without_trade:
        query = query.where(~stored)
    query = query.order_by(table.c.cancelled_at.desc(), table.c.broker_trade_id)
    return query.limit(limit) if limit is not None else query
