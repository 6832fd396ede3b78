"""The lookups of storing and pairing executions: stored executions, tombstones, pairing state, open lots,
the connection's pairing method (SQLite on the driver, see ``_pairing_sqlite``)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from brokersync._pairing import OpenLot, PairingMethod
from brokersync._store import _pairing_sqlite as lite
from brokersync._store._schema import (
    connections,
    execution_cancellations,
    executions,
    open_lots,
    pairing_state,
)
from brokersync.models import Direction

__all__ = [
    "chunks",
    "open_lots_of",
    "pairing_method",
    "pairing_states",
    "stored_executions",
    "tombstoned",
]


_CHUNK = 400  # ids per IN (...) lookup: SQLite caps bound parameters per statement


# --- lookups -----------------------------------------------------------------------------------


def chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


async def stored_executions(
    conn: AsyncConnection, connection_id: str, account_id: str, ids: Sequence[str]
) -> dict[str, tuple[str, str, Any]]:
    """Stored executions among ``ids``: id -> (fingerprint, instrument key, executed_at as stored).

    ``executed_at`` is the database's value (text on SQLite): :func:`_pairing_sqlite.utc` reads it.
    """
    if conn.dialect.name == "sqlite":
        rows = await lite.select_in(
            await lite.driver_of(conn),
            "SELECT broker_execution_id, fingerprint, instrument_key, executed_at FROM executions "
            "WHERE connection_id = ? AND account_id = ? AND broker_execution_id",
            (connection_id, account_id),
            ids,
        )
        return {row[0]: (row[1], row[2], row[3]) for row in rows}
    found: dict[str, tuple[str, str, Any]] = {}
    c = executions.c
    for chunk in chunks(ids):
        query = select(c.broker_execution_id, c.fingerprint, c.instrument_key, c.executed_at).where(
            c.connection_id == connection_id, c.account_id == account_id, c.broker_execution_id.in_(chunk)
        )
        found.update((row[0], (row[1], row[2], row[3])) for row in await conn.execute(query))
    return found


async def tombstoned(conn: AsyncConnection, connection_id: str, account_id: str, ids: Sequence[str]) -> set[str]:
    if conn.dialect.name == "sqlite":
        rows = await lite.select_in(
            await lite.driver_of(conn),
            "SELECT broker_execution_id FROM execution_cancellations "
            "WHERE connection_id = ? AND account_id = ? AND broker_execution_id",
            (connection_id, account_id),
            ids,
        )
        return {row[0] for row in rows}
    found: set[str] = set()
    c = execution_cancellations.c
    for chunk in chunks(ids):
        query = select(c.broker_execution_id).where(
            c.connection_id == connection_id, c.account_id == account_id, c.broker_execution_id.in_(chunk)
        )
        found.update(row[0] for row in await conn.execute(query))
    return found


async def pairing_states(
    conn: AsyncConnection, connection_id: str, account_id: str, keys: Sequence[str]
) -> dict[str, tuple[dt.datetime, str]]:
    if conn.dialect.name == "sqlite":
        rows = await lite.select_in(
            await lite.driver_of(conn),
            "SELECT instrument_key, last_executed_at, last_execution_id FROM pairing_state "
            "WHERE connection_id = ? AND account_id = ? AND instrument_key",
            (connection_id, account_id),
            keys,
        )
        return {row[0]: (lite.utc(row[1]), row[2]) for row in rows}
    found: dict[str, tuple[dt.datetime, str]] = {}
    c = pairing_state.c
    for chunk in chunks(keys):
        query = select(c.instrument_key, c.last_executed_at, c.last_execution_id).where(
            c.connection_id == connection_id, c.account_id == account_id, c.instrument_key.in_(chunk)
        )
        found.update((row[0], (row[1], row[2])) for row in await conn.execute(query))
    return found


_DIRECTIONS = {direction.value: direction for direction in Direction}


async def open_lots_of(
    conn: AsyncConnection, connection_id: str, account_id: str, keys: Sequence[str]
) -> dict[str, list[OpenLot]]:
    """The open lots of the instruments ``keys`` (oldest first), as the pairing loop takes them."""
    found: dict[str, list[OpenLot]] = defaultdict(list)
    if conn.dialect.name == "sqlite":
        rows = await lite.select_in(
            await lite.driver_of(conn),
            "SELECT instrument_key, broker_execution_id, direction, quantity, price, opened_at, fees, fee_quantum, "
            "fee_currency FROM open_lots WHERE connection_id = ? AND account_id = ? AND instrument_key",
            (connection_id, account_id),
            keys,
            " ORDER BY instrument_key, position",
        )
        money, utc = lite.money, lite.utc
        for key, execution_id, direction, quantity, price, opened_at, fees, quantum, fee_currency in rows:
            found[key].append(
                [
                    execution_id,
                    _DIRECTIONS[direction],
                    money(quantity),
                    money(price),
                    utc(opened_at),
                    money(fees),
                    quantum,
                    fee_currency,
                ]
            )
        return found
    c = open_lots.c
    for chunk in chunks(keys):
        query = (
            select(open_lots)
            .where(c.connection_id == connection_id, c.account_id == account_id, c.instrument_key.in_(chunk))
            .order_by(c.instrument_key, c.position)
        )
        for row in await conn.execute(query):
            found[row.instrument_key].append(
                [
                    row.broker_execution_id,
                    Direction(row.direction),
                    row.quantity,
                    row.price,
                    row.opened_at,
                    row.fees,
                    row.fee_quantum,
                    row.fee_currency,
                ]
            )
    return found


async def pairing_method(conn: AsyncConnection, connection_id: str) -> PairingMethod:
    """The connection's pairing method (NULL or unknown connection: FIFO)."""
    if conn.dialect.name == "sqlite":  # once per page: on the driver, not through a compiled statement
        rows = await lite.run(
            await lite.driver_of(conn), "SELECT pairing_method FROM connections WHERE id = ?", (connection_id,)
        )
        value = rows[0][0] if rows else None
    else:
        value = (
            await conn.execute(select(connections.c.pairing_method).where(connections.c.id == connection_id))
        ).scalar()
    return PairingMethod(value) if value else PairingMethod.FIFO
