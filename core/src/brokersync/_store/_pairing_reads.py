"""The lookups of storing and pairing executions: stored executions, tombstones, pairing state, open lots,
live fills, round-trip sources, the connection's pairing method (SQLite on the driver, see ``_pairing_sqlite``)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from brokersync._pairing import Fill, OpenLot, PairingMethod
from brokersync._store import _pairing_sqlite as lite
from brokersync._store._instruments import instrument_of
from brokersync._store._schema import (
    connections,
    execution_cancellations,
    executions,
    open_lots,
    pairing_state,
    round_trips,
)
from brokersync.models import Direction, ExecutionKind, Side

__all__ = [
    "chunks",
    "live_fills",
    "open_lots_of",
    "pairing_method",
    "pairing_states",
    "stored_executions",
    "stored_round_trips",
    "tombstoned",
]


_CHUNK = 400  # ids per IN (...) lookup: SQLite caps bound parameters per statement


# --- lookups -----------------------------------------------------------------------------------


def chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


async def stored_executions(
    conn: AsyncConnection, connection_id: str, account_id: str, ids: Sequence[str]
) -> dict[str, tuple[str, str]]:
    """Stored executions among ``ids``: id -> (fingerprint, instrument key)."""
    if conn.dialect.name == "sqlite":
        rows = await lite.select_in(
            await lite.driver_of(conn),
            "SELECT broker_execution_id, fingerprint, instrument_key FROM executions "
            "WHERE connection_id = ? AND account_id = ? AND broker_execution_id",
            (connection_id, account_id),
            ids,
        )
        return {row[0]: (row[1], row[2]) for row in rows}
    found: dict[str, tuple[str, str]] = {}
    c = executions.c
    for chunk in chunks(ids):
        query = select(c.broker_execution_id, c.fingerprint, c.instrument_key).where(
            c.connection_id == connection_id, c.account_id == account_id, c.broker_execution_id.in_(chunk)
        )
        found.update((row[0], (row[1], row[2])) for row in await conn.execute(query))
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
            "SELECT instrument_key, broker_execution_id, direction, quantity, price, opened_at, fees, fee_quantum "
            "FROM open_lots WHERE connection_id = ? AND account_id = ? AND instrument_key",
            (connection_id, account_id),
            keys,
            " ORDER BY instrument_key, position",
        )
        money, utc = lite.money, lite.utc
        for key, execution_id, direction, quantity, price, opened_at, fees, quantum in rows:
            found[key].append(
                [
                    execution_id,
                    _DIRECTIONS[direction],
                    money(quantity),
                    money(price),
                    utc(opened_at),
                    money(fees),
                    quantum,
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
                ]
            )
    return found


_SIDE_DIRECTIONS = {side.value: side.direction for side in Side}
_EXPIRY = ExecutionKind.EXPIRY.value
_ZERO = Decimal(0)


def _live_fill(
    account_id: str,
    execution_id: str,
    instrument: str,
    side: str,
    quantity: Decimal,
    price: Decimal,
    executed_at: dt.datetime,
    fees: Decimal,
    fee_currency: str | None,
    kind: str,
) -> Fill:
    """The loop's tuple of a stored execution (as ``fill_of`` builds it from an ``Execution``)."""
    return (
        executed_at,
        execution_id,
        _SIDE_DIRECTIONS[side],
        quantity,
        _ZERO if kind == _EXPIRY else price,
        fees,
        kind,
        fee_currency,
        account_id,
        instrument_of(instrument),
    )


async def live_fills(
    conn: AsyncConnection, connection_id: str, account_id: str, key: str
) -> tuple[list[Fill], str | None]:
    """The instrument's executions that are not busted, in pairing order, and the last one's instrument JSON."""
    if conn.dialect.name == "sqlite":
        rows = await lite.run(
            await lite.driver_of(conn),
            "SELECT e.broker_execution_id, e.instrument, e.side, e.quantity, e.price, e.executed_at, e.fees, "
            "e.fee_currency, e.kind FROM executions AS e "
            "WHERE e.connection_id = ? AND e.account_id = ? AND e.instrument_key = ? AND NOT EXISTS ("
            "SELECT 1 FROM execution_cancellations AS t WHERE t.connection_id = e.connection_id "
            "AND t.account_id = e.account_id AND t.broker_execution_id = e.broker_execution_id) "
            "ORDER BY e.executed_at, e.broker_execution_id",
            (connection_id, account_id, key),
        )
        money, utc = lite.money, lite.utc
        fills = [
            _live_fill(account_id, r[0], r[1], r[2], money(r[3]), money(r[4]), utc(r[5]), money(r[6]), r[7], r[8])
            for r in rows
        ]
        return fills, rows[-1][1] if rows else None
    c = executions.c
    t = execution_cancellations.c
    busted = (
        select(t.broker_execution_id)
        .where(
            t.connection_id == c.connection_id,
            t.account_id == c.account_id,
            t.broker_execution_id == c.broker_execution_id,
        )
        .exists()
    )
    query = (
        select(executions)
        .where(c.connection_id == connection_id, c.account_id == account_id, c.instrument_key == key, ~busted)
        .order_by(c.executed_at, c.broker_execution_id)
    )
    result = list(await conn.execute(query))
    fills = [
        _live_fill(
            account_id,
            row.broker_execution_id,
            row.instrument,
            row.side,
            row.quantity,
            row.price,
            row.executed_at,
            row.fees,
            row.fee_currency,
            row.kind,
        )
        for row in result
    ]
    return fills, result[-1].instrument if result else None


async def pairing_method(conn: AsyncConnection, connection_id: str) -> PairingMethod:
    """The connection's pairing method (NULL or unknown connection: FIFO)."""
    value = (await conn.execute(select(connections.c.pairing_method).where(connections.c.id == connection_id))).scalar()
    return PairingMethod(value) if value else PairingMethod.FIFO


async def stored_round_trips(conn: AsyncConnection, connection_id: str, account_id: str, key: str) -> set[str]:
    if conn.dialect.name == "sqlite":
        rows = await lite.run(
            await lite.driver_of(conn),
            "SELECT broker_trade_id FROM round_trips WHERE connection_id = ? AND account_id = ? AND instrument_key = ?",
            (connection_id, account_id, key),
        )
        return {row[0] for row in rows}
    c = round_trips.c
    query = select(c.broker_trade_id).where(
        c.connection_id == connection_id, c.account_id == account_id, c.instrument_key == key
    )
    return {row[0] for row in await conn.execute(query)}
