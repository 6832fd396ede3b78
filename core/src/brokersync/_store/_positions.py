"""Open positions: the broker's snapshots (replaced per page) and the open lots of paired executions,
read together; the positions part of :class:`~brokersync._store.Store` (and the pairing method)."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from brokersync._store._base import Database
from brokersync._store._executions import repair_connection
from brokersync._store._instruments import instrument_json, instrument_of, json_default
from brokersync._store._schema import connections, open_lots, pairing_state, position_snapshots
from brokersync.models import Direction, Position
from brokersync.results import StoredPosition

__all__ = ["PositionStore", "read_positions", "replace_positions"]


# --- positions ---------------------------------------------------------------------------------


async def replace_positions(
    conn: AsyncConnection, *, connection_id: str, account_id: str, positions: Sequence[Position], now: dt.datetime
) -> None:
    """Replace the account's position snapshot with ``positions`` (empty: the account is flat)."""
    c = position_snapshots.c
    await conn.execute(delete(position_snapshots).where(c.connection_id == connection_id, c.account_id == account_id))
    merged: dict[str, Position] = {}
    for position in positions:
        merged[position.instrument.pairing_key] = position  # the last report of an instrument wins
    if merged:
        await conn.execute(
            position_snapshots.insert(),
            [
                {
                    "connection_id": connection_id,
                    "account_id": account_id,
                    "instrument_key": key,
                    "instrument": instrument_json(p.instrument),
                    "quantity": p.quantity,
                    "average_price": p.average_price,
                    "opened_at": p.opened_at,
                    "raw": json.dumps(dict(p.raw), default=json_default, separators=(",", ":")),
                    "updated_at": now,
                }
                for key, p in merged.items()
            ],
        )


async def read_positions(
    conn: AsyncConnection, *, connection_ids: Sequence[str] | None, account_id: str | None = None
) -> list[StoredPosition]:
    """Open positions: the open lots of paired instruments and the brokers' snapshots."""
    result: list[StoredPosition] = []
    lot, state = open_lots.c, pairing_state.c
    query = (
        select(open_lots, state.instrument)
        .select_from(
            open_lots.join(
                pairing_state,
                and_(
                    state.connection_id == lot.connection_id,
                    state.account_id == lot.account_id,
                    state.instrument_key == lot.instrument_key,
                ),
            )
        )
        .order_by(lot.connection_id, lot.account_id, lot.instrument_key, lot.position)
    )
    if connection_ids is not None:
        query = query.where(lot.connection_id.in_(list(connection_ids)))
    if account_id is not None:
        query = query.where(lot.account_id == account_id)
    grouped: dict[tuple[str, str, str], list[Any]] = defaultdict(list)
    for row in await conn.execute(query):
        grouped[(row.connection_id, row.account_id, row.instrument_key)].append(row)
    for (connection_id, account, _), lots in grouped.items():
        quantity = sum((r.quantity for r in lots), Decimal(0))
        cost = sum((r.quantity * r.price for r in lots), Decimal(0))
        sign = 1 if lots[0].direction == Direction.LONG.value else -1
        result.append(
            StoredPosition(
                connection_id=connection_id,
                account_id=account,
                instrument=instrument_of(lots[0].instrument),
                quantity=quantity * sign,
                average_price=cost / quantity,
                opened_at=min(r.opened_at for r in lots),
                source="lots",
            )
        )
    snap = position_snapshots.c
    query2 = select(position_snapshots).order_by(snap.connection_id, snap.account_id, snap.instrument_key)
    if connection_ids is not None:
        query2 = query2.where(snap.connection_id.in_(list(connection_ids)))
    if account_id is not None:
        query2 = query2.where(snap.account_id == account_id)
    for row in await conn.execute(query2):
        result.append(
            StoredPosition(
                connection_id=row.connection_id,
                account_id=row.account_id,
                instrument=instrument_of(row.instrument),
                quantity=row.quantity,
                average_price=row.average_price,
                opened_at=row.opened_at,
                source="broker snapshot",
            )
        )
    return result


class PositionStore(Database):
    """Open positions (``open_lots`` with ``pairing_state``, ``position_snapshots``) and the pairing method."""

    async def positions(
        self, *, connection_ids: Sequence[str] | None, account_id: str | None = None
    ) -> list[StoredPosition]:
        """Open positions of the connections: open lots of paired executions and brokers' snapshots."""
        async with self.read() as conn:
            return await read_positions(conn, connection_ids=connection_ids, account_id=account_id)

    async def set_pairing_method(self, connection_id: str, method: str, *, now: dt.datetime) -> int:
        """Set the connection's pairing method and re-pair every instrument with it, in ONE transaction.

        Returns how many round trips changed (imported + updated + cancelled).
        """
        async with self.write() as conn:
            await conn.execute(
                update(connections).where(connections.c.id == connection_id).values(pairing_method=method)
            )
            return await repair_connection(conn, connection_id=connection_id, now=now)
