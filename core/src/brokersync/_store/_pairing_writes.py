"""Writing what pairing produced: open lots and pairing state, round-trip sources, and the tombstones of
round trips a re-pair made disappear (and their removal when one comes back)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncConnection

from brokersync._pairing import OpenLot
from brokersync._store import _pairing_sqlite as lite
from brokersync._store._cancellations import record_cancellations
from brokersync._store._pairing_reads import chunks
from brokersync._store._schema import open_lots, pairing_state, round_trips, trade_cancellations
from brokersync._store._upsert import dialect_insert
from brokersync.models import Trade, TradeCancellation

__all__ = ["REPAIRED", "LastPaired", "forget_round_trips", "remember_round_trips", "replace_lots", "revive_round_trips"]


REPAIRED = "re-paired: its executions were corrected, busted or joined by a late fill"


# the last paired execution of an instrument: (its instrument JSON, executed_at, broker execution id)
LastPaired = tuple[str, dt.datetime, str]


async def _replace_lots_sqlite(
    conn: AsyncConnection,
    connection_id: str,
    account_id: str,
    lots: dict[str, Sequence[OpenLot]],
    states: dict[str, LastPaired | None],
    now: dt.datetime,
) -> None:
    driver = await lite.driver_of(conn)
    shared = (connection_id, account_id)
    keys = list(lots)
    await lite.delete_in(
        driver, "DELETE FROM open_lots WHERE connection_id = ? AND account_id = ? AND instrument_key", shared, keys
    )
    gone = [key for key in keys if states[key] is None]
    if gone:
        await lite.delete_in(
            driver,
            "DELETE FROM pairing_state WHERE connection_id = ? AND account_id = ? AND instrument_key",
            shared,
            gone,
        )
    text, time = lite.money_text, lite.time_text
    rows = [
        (key, lot[0], position, lot[1].value, text(lot[2]), text(lot[3]), time(lot[4]), text(lot[5]), lot[6], lot[7])
        for key, key_lots in lots.items()
        for position, lot in enumerate(key_lots)
    ]
    # a lot's opening execution opens one lot, and the instruments' lots were deleted above: the
    # DO NOTHING only meets the padding copies of a row
    await lite.insert_rows(
        driver,
        "INSERT INTO open_lots (connection_id, account_id, instrument_key, broker_execution_id, position, direction, "
        "quantity, price, opened_at, fees, fee_quantum, fee_currency)",
        "ON CONFLICT DO NOTHING",
        shared,
        rows,
    )
    state_rows = [(key, last[0], time(last[1]), last[2]) for key, last in states.items() if last is not None]
    await lite.insert_rows(
        driver,
        "INSERT INTO pairing_state (connection_id, account_id, updated_at, instrument_key, instrument, "
        "last_executed_at, last_execution_id)",
        "ON CONFLICT (connection_id, account_id, instrument_key) DO UPDATE SET instrument = excluded.instrument, "
        "last_executed_at = excluded.last_executed_at, last_execution_id = excluded.last_execution_id, "
        "updated_at = excluded.updated_at",
        (connection_id, account_id, time(now)),
        state_rows,
    )


async def replace_lots(
    conn: AsyncConnection,
    connection_id: str,
    account_id: str,
    lots: dict[str, Sequence[OpenLot]],
    states: dict[str, LastPaired | None],
    now: dt.datetime,
) -> None:
    if conn.dialect.name == "sqlite":
        await _replace_lots_sqlite(conn, connection_id, account_id, lots, states, now)
        return
    keys = list(lots)
    for chunk in chunks(keys):
        where = (open_lots.c.connection_id == connection_id, open_lots.c.account_id == account_id)
        await conn.execute(delete(open_lots).where(*where, open_lots.c.instrument_key.in_(chunk)))
        c = pairing_state.c
        gone = [key for key in chunk if states[key] is None]
        if gone:
            await conn.execute(
                delete(pairing_state).where(
                    c.connection_id == connection_id, c.account_id == account_id, c.instrument_key.in_(gone)
                )
            )
    rows = [
        {
            "connection_id": connection_id,
            "account_id": account_id,
            "instrument_key": key,
            "broker_execution_id": lot[0],
            "position": position,
            "direction": lot[1].value,
            "quantity": lot[2],
            "price": lot[3],
            "opened_at": lot[4],
            "fees": lot[5],
            "fee_quantum": lot[6],
            "fee_currency": lot[7],
        }
        for key, key_lots in lots.items()
        for position, lot in enumerate(key_lots)
    ]
    if rows:
        await conn.execute(open_lots.insert(), rows)
    state_rows = [
        {
            "connection_id": connection_id,
            "account_id": account_id,
            "instrument_key": key,
            "instrument": last[0],
            "last_executed_at": last[1],
            "last_execution_id": last[2],
            "updated_at": now,
        }
        for key, last in states.items()
        if last is not None
    ]
    if state_rows:
        stmt = dialect_insert(conn.dialect.name)(pairing_state)
        stmt = stmt.on_conflict_do_update(
            index_elements=[pairing_state.c.connection_id, pairing_state.c.account_id, pairing_state.c.instrument_key],
            set_={k: stmt.excluded[k] for k in ("instrument", "last_executed_at", "last_execution_id", "updated_at")},
        )
        await conn.execute(stmt, state_rows)


async def remember_round_trips(
    conn: AsyncConnection, connection_id: str, account_id: str, trips: Sequence[tuple[str, Trade]]
) -> None:
    """Record which executions, instrument and closing time each round trip has.

    A round trip already recorded takes the instrument and closing time given (a correction may
    move its closing execution in time or to another instrument; its id stays).
    """
    if not trips:
        return
    if conn.dialect.name == "sqlite":
        time = lite.time_text
        await lite.insert_rows(
            await lite.driver_of(conn),
            "INSERT INTO round_trips (connection_id, account_id, broker_trade_id, instrument_key, "
            "opening_execution_id, closing_execution_id, closed_at)",
            "ON CONFLICT (connection_id, account_id, broker_trade_id) DO UPDATE SET "
            "instrument_key = excluded.instrument_key, closed_at = excluded.closed_at",
            (connection_id, account_id),
            [
                (
                    trip.broker_trade_id,
                    key,
                    trip.raw["opening_execution_id"],
                    trip.raw["closing_execution_id"],
                    time(trip.closed_at),  # type: ignore[arg-type]  # a round trip is closed
                )
                for key, trip in trips
            ],
        )
        return
    stmt = dialect_insert(conn.dialect.name)(round_trips)
    stmt = stmt.on_conflict_do_update(
        index_elements=[round_trips.c.connection_id, round_trips.c.account_id, round_trips.c.broker_trade_id],
        set_={"instrument_key": stmt.excluded.instrument_key, "closed_at": stmt.excluded.closed_at},
    )
    await conn.execute(
        stmt,
        [
            {
                "connection_id": connection_id,
                "account_id": account_id,
                "broker_trade_id": trip.broker_trade_id,
                "instrument_key": key,
                "opening_execution_id": trip.raw["opening_execution_id"],
                "closing_execution_id": trip.raw["closing_execution_id"],
                "closed_at": trip.closed_at,
            }
            for key, trip in trips
        ],
    )


async def forget_round_trips(
    conn: AsyncConnection, connection_id: str, account_id: str, ids: Sequence[str], now: dt.datetime
) -> int:
    if not ids:
        return 0
    for chunk in chunks(ids):
        c = round_trips.c
        await conn.execute(
            delete(round_trips).where(
                c.connection_id == connection_id, c.account_id == account_id, c.broker_trade_id.in_(chunk)
            )
        )
    tombstones = [
        TradeCancellation(account_id=account_id, broker_trade_id=trade_id, cancelled_at=now, reason=REPAIRED)
        for trade_id in ids
    ]
    return await record_cancellations(
        conn, connection_id=connection_id, account_id=account_id, cancellations=tombstones, now=now
    )


async def revive_round_trips(conn: AsyncConnection, connection_id: str, account_id: str, ids: Sequence[str]) -> None:
    """A round trip that re-pairing brings back loses the tombstone re-pairing gave it."""
    c = trade_cancellations.c
    for chunk in chunks(ids):
        await conn.execute(
            delete(trade_cancellations).where(
                c.connection_id == connection_id,
                c.account_id == account_id,
                c.broker_trade_id.in_(chunk),
                c.reason == REPAIRED,
            )
        )
