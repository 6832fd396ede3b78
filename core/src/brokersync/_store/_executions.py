"""Storing executions and pairing them into round trips, inside the caller's page transaction.

Per page (the caller's one transaction also stores the page's trades, cursor and watermark):

1. Executions are upserted by (connection, account, broker execution id). The same execution again
   changes nothing (counted ``skipped``); one whose normalized fields changed is a correction.
   A busted execution leaves a tombstone in ``execution_cancellations`` and stops counting (the
   tombstone may arrive before the execution).
2. Each instrument (``Instrument.pairing_key``) the page touches is paired:

   - incremental, when its new executions all come after the instrument's last paired execution
     (``pairing_state``) and none was corrected or busted: pairing continues from the persisted
     open lots, at a cost of O(new executions + open lots);
   - otherwise (a late execution, a correction, a bust) the instrument is re-paired from its
     first live execution (a full re-pair of that one instrument). Round trips whose values change
     are updated, round trips that no longer exist get a tombstone (``trade_cancellations``,
     reason :data:`REPAIRED`), and a round trip that comes back loses that tombstone.

Round trips are ordinary ``trades`` rows, so listings, exports, audit and counts treat them like
reported trades; ``round_trips`` records which executions and instrument each came from.

Counts: ``imported``/``updated`` count round trips written; ``skipped`` counts executions the
broker sent again unchanged; ``cancelled`` counts round trips that disappeared (new tombstones).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

import attrs
from sqlalchemy import and_, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from brokersync._pairing import Fill, OpenLot, PairingMethod, fill_of, fill_order, pair_fills
from brokersync._store import _pairing_sqlite as lite
from brokersync._store._cancellations import BatchCounts, record_cancellations
from brokersync._store._schema import (
    connections,
    execution_cancellations,
    executions,
    open_lots,
    pairing_state,
    position_snapshots,
    round_trips,
    trade_cancellations,
)
from brokersync._store._trades import canonical_decimal, dialect_insert, upsert_trades
from brokersync._store._types import utc_text
from brokersync.models import (
    Direction,
    Execution,
    ExecutionCancellation,
    ExecutionKind,
    Instrument,
    Position,
    Side,
    Trade,
    TradeCancellation,
)

__all__ = [
    "REPAIRED",
    "StoredPosition",
    "delete_pairing",
    "instrument_json",
    "pairing_method",
    "read_positions",
    "repair_connection",
    "replace_positions",
    "store_executions",
]

REPAIRED = "re-paired: its executions were corrected, busted or joined by a late fill"
_CHUNK = 400  # ids per IN (...) lookup: SQLite caps bound parameters per statement


@attrs.frozen(kw_only=True)
class StoredPosition:
    """One open position of an account, as :meth:`BrokerSync.positions` lists it.

    Attributes:
        connection_id: The connection.
        account_id: The broker account.
        instrument: What is held (``symbol`` is a shortcut to its symbol).
        quantity: Signed: positive long, negative short.
        average_price: The quantity-weighted entry price of the open lots (or the broker's figure).
        opened_at: When the oldest open lot was opened (or the broker's figure; may be ``None``).
        source: ``"lots"`` (derived from paired executions) or ``"broker snapshot"`` (reported by a
            broker that pairs by itself).
    """

    connection_id: str
    account_id: str
    instrument: Instrument
    quantity: Decimal
    average_price: Decimal
    opened_at: dt.datetime | None
    source: str  # "lots" | "broker snapshot"

    @property
    def symbol(self) -> str:
        """The instrument's symbol."""
        return self.instrument.symbol


# --- instruments as JSON -----------------------------------------------------------------------


@functools.lru_cache(maxsize=8192)
def instrument_json(instrument: Instrument) -> str:
    """The instrument as compact JSON (what ``executions.instrument`` stores)."""
    data = {
        "symbol": instrument.symbol,
        "asset_class": instrument.asset_class.value,
        "currency": instrument.currency,
        "multiplier": str(instrument.multiplier),
        "instrument_id": instrument.instrument_id,
        "underlying": instrument.underlying,
        "expiry": instrument.expiry.isoformat() if instrument.expiry else None,
        "strike": None if instrument.strike is None else str(instrument.strike),
        "right": instrument.right.value if instrument.right else None,
        "exchange": instrument.exchange,
    }
    return json.dumps({k: v for k, v in data.items() if v is not None}, sort_keys=True, separators=(",", ":"))


@functools.lru_cache(maxsize=8192)
def _instrument(text: str) -> Instrument:
    data = json.loads(text)
    for name in ("multiplier", "strike"):
        if name in data:
            data[name] = Decimal(data[name])
    return Instrument(**data)


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def _fingerprint(e: Execution, instrument: str, executed: str) -> str:
    text = "\x1f".join(
        (
            instrument,
            e.side.value,
            canonical_decimal(str(e.quantity)),
            canonical_decimal(str(e.price)),
            executed,
            canonical_decimal(str(e.fees)),
            e.fee_currency or "",
            e.kind.value,
            e.order_id or "",
            e.open_close.value if e.open_close else "",
        )
    )
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


# --- lookups -----------------------------------------------------------------------------------


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


async def _existing(
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
    for chunk in _chunks(ids):
        query = select(c.broker_execution_id, c.fingerprint, c.instrument_key).where(
            c.connection_id == connection_id, c.account_id == account_id, c.broker_execution_id.in_(chunk)
        )
        found.update((row[0], (row[1], row[2])) for row in await conn.execute(query))
    return found


async def _tombstoned(conn: AsyncConnection, connection_id: str, account_id: str, ids: Sequence[str]) -> set[str]:
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
    for chunk in _chunks(ids):
        query = select(c.broker_execution_id).where(
            c.connection_id == connection_id, c.account_id == account_id, c.broker_execution_id.in_(chunk)
        )
        found.update(row[0] for row in await conn.execute(query))
    return found


async def _states(
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
    for chunk in _chunks(keys):
        query = select(c.instrument_key, c.last_executed_at, c.last_execution_id).where(
            c.connection_id == connection_id, c.account_id == account_id, c.instrument_key.in_(chunk)
        )
        found.update((row[0], (row[1], row[2])) for row in await conn.execute(query))
    return found


_DIRECTIONS = {direction.value: direction for direction in Direction}


async def _lots(
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
    for chunk in _chunks(keys):
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
        _instrument(instrument),
    )


async def _live_fills(
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


# --- writing -----------------------------------------------------------------------------------


def _execution_row(e: Execution, connection_id: str, now: dt.datetime) -> dict[str, Any]:
    instrument = instrument_json(e.instrument)
    return {
        "connection_id": connection_id,
        "account_id": e.account_id,
        "broker_execution_id": e.broker_execution_id,
        "instrument_key": e.instrument.pairing_key,
        "instrument": instrument,
        "side": e.side.value,
        "quantity": e.quantity,
        "price": e.price,
        "executed_at": e.executed_at,
        "fees": e.fees,
        "fee_currency": e.fee_currency,
        "kind": e.kind.value,
        "order_id": e.order_id,
        "open_close": e.open_close.value if e.open_close else None,
        "raw": json.dumps(dict(e.raw), default=_json_default, separators=(",", ":")),
        "fingerprint": _fingerprint(e, instrument, utc_text(e.executed_at)),
        "first_seen_at": now,
        "updated_at": now,
    }


# (execution, instrument JSON, instrument key, executed_at as utc_text, fingerprint): one to write
_ToWrite = tuple[Execution, str, str, str, str]

_SQLITE_EXECUTIONS = (
    "INSERT INTO executions (connection_id, account_id, first_seen_at, updated_at, broker_execution_id, "
    "instrument_key, instrument, side, quantity, price, executed_at, fees, fee_currency, kind, order_id, "
    "open_close, raw, fingerprint)"
)
# only new executions and corrections (another fingerprint) are written: the WHERE changes nothing
# for them, and makes a padding copy of a row a no-op
_SQLITE_EXECUTIONS_CONFLICT = (
    "ON CONFLICT (connection_id, account_id, broker_execution_id) DO UPDATE SET "
    + ", ".join(
        f"{name} = excluded.{name}"
        for name in (
            "instrument_key",
            "instrument",
            "side",
            "quantity",
            "price",
            "executed_at",
            "fees",
            "fee_currency",
            "kind",
            "order_id",
            "open_close",
            "raw",
            "fingerprint",
            "updated_at",
        )
    )
    + " WHERE executions.fingerprint <> excluded.fingerprint"
)


async def _write_executions(conn: AsyncConnection, connection_id: str, todo: list[_ToWrite], now: dt.datetime) -> None:
    if not todo:
        return
    if conn.dialect.name != "sqlite":
        await _upsert_executions(conn, [_execution_row(item[0], connection_id, now) for item in todo])
        return
    text = lite.money_text
    rows = [
        (
            e.broker_execution_id,
            key,
            instrument,
            e.side.value,
            text(e.quantity),
            text(e.price),
            executed,
            text(e.fees),
            e.fee_currency,
            e.kind.value,
            e.order_id,
            e.open_close.value if e.open_close else None,
            json.dumps(dict(e.raw), default=_json_default, separators=(",", ":")),
            fp,
        )
        for e, instrument, key, executed, fp in todo
    ]
    now_text = lite.time_text(now)
    await lite.insert_rows(
        await lite.driver_of(conn),
        _SQLITE_EXECUTIONS,
        _SQLITE_EXECUTIONS_CONFLICT,
        (connection_id, todo[0][0].account_id, now_text, now_text),
        rows,
    )


async def _upsert_executions(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    stmt = dialect_insert(conn.dialect.name)(executions)
    keep = ("connection_id", "account_id", "broker_execution_id", "first_seen_at")
    stmt = stmt.on_conflict_do_update(
        index_elements=[executions.c.connection_id, executions.c.account_id, executions.c.broker_execution_id],
        set_={name: stmt.excluded[name] for name in rows[0] if name not in keep},
    )
    await conn.execute(stmt, rows)


async def _record_tombstones(
    conn: AsyncConnection, connection_id: str, account_id: str, busts: Sequence[ExecutionCancellation], now: dt.datetime
) -> list[str]:
    """Store the execution tombstones not stored yet; return their ids (first report wins)."""
    first: dict[str, ExecutionCancellation] = {}
    for bust in busts:
        if bust.account_id != account_id:
            raise ValueError(
                f"cancellation of execution {bust.broker_execution_id!r} belongs to account "
                f"{bust.account_id!r}, not {account_id!r}"
            )
        first.setdefault(bust.broker_execution_id, bust)
    stored = await _tombstoned(conn, connection_id, account_id, list(first))
    new = [b for execution_id, b in first.items() if execution_id not in stored]
    if new:
        await conn.execute(
            execution_cancellations.insert(),
            [
                {
                    "connection_id": connection_id,
                    "account_id": account_id,
                    "broker_execution_id": b.broker_execution_id,
                    "cancelled_at": b.cancelled_at,
                    "reason": b.reason,
                    "raw": json.dumps(dict(b.raw), default=_json_default, separators=(",", ":")),
                    "recorded_at": now,
                }
                for b in new
            ],
        )
    return [b.broker_execution_id for b in new]


# the last paired execution of an instrument: (its instrument JSON, executed_at, broker execution id)
_Last = tuple[str, dt.datetime, str]


async def _replace_lots_sqlite(
    conn: AsyncConnection,
    connection_id: str,
    account_id: str,
    lots: dict[str, Sequence[OpenLot]],
    states: dict[str, _Last | None],
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
        (key, lot[0], position, lot[1].value, text(lot[2]), text(lot[3]), time(lot[4]), text(lot[5]), lot[6])
        for key, key_lots in lots.items()
        for position, lot in enumerate(key_lots)
    ]
    # a lot's opening execution opens one lot, and the instruments' lots were deleted above: the
    # DO NOTHING only meets the padding copies of a row
    await lite.insert_rows(
        driver,
        "INSERT INTO open_lots (connection_id, account_id, instrument_key, broker_execution_id, position, direction, "
        "quantity, price, opened_at, fees, fee_quantum)",
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


async def _replace_lots(
    conn: AsyncConnection,
    connection_id: str,
    account_id: str,
    lots: dict[str, Sequence[OpenLot]],
    states: dict[str, _Last | None],
    now: dt.datetime,
) -> None:
    if conn.dialect.name == "sqlite":
        await _replace_lots_sqlite(conn, connection_id, account_id, lots, states, now)
        return
    keys = list(lots)
    for chunk in _chunks(keys):
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


async def _stored_round_trips(conn: AsyncConnection, connection_id: str, account_id: str, key: str) -> set[str]:
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


async def _remember_round_trips(
    conn: AsyncConnection, connection_id: str, account_id: str, trips: Sequence[tuple[str, Trade]]
) -> None:
    if not trips:
        return
    if conn.dialect.name == "sqlite":
        await lite.insert_rows(
            await lite.driver_of(conn),
            "INSERT INTO round_trips (connection_id, account_id, broker_trade_id, instrument_key, "
            "opening_execution_id, closing_execution_id)",
            "ON CONFLICT (connection_id, account_id, broker_trade_id) DO NOTHING",
            (connection_id, account_id),
            [
                (trip.broker_trade_id, key, trip.raw["opening_execution_id"], trip.raw["closing_execution_id"])
                for key, trip in trips
            ],
        )
        return
    stmt = dialect_insert(conn.dialect.name)(round_trips).on_conflict_do_nothing(
        index_elements=[round_trips.c.connection_id, round_trips.c.account_id, round_trips.c.broker_trade_id]
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
            }
            for key, trip in trips
        ],
    )


async def _forget_round_trips(
    conn: AsyncConnection, connection_id: str, account_id: str, ids: Sequence[str], now: dt.datetime
) -> int:
    if not ids:
        return 0
    for chunk in _chunks(ids):
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


async def _revive_round_trips(conn: AsyncConnection, connection_id: str, account_id: str, ids: Sequence[str]) -> None:
    """A round trip that re-pairing brings back loses the tombstone re-pairing gave it."""
    c = trade_cancellations.c
    for chunk in _chunks(ids):
        await conn.execute(
            delete(trade_cancellations).where(
                c.connection_id == connection_id,
                c.account_id == account_id,
                c.broker_trade_id.in_(chunk),
                c.reason == REPAIRED,
            )
        )


async def store_executions(
    conn: AsyncConnection,
    *,
    connection_id: str,
    account_id: str,
    batch: Sequence[Execution],
    busts: Sequence[ExecutionCancellation],
    now: dt.datetime,
    pair: bool = True,
) -> BatchCounts:
    """Store a page's executions and busts, and (``pair``) pair what they touch; see the module doc."""
    latest: dict[str, Execution] = {}
    for e in batch:
        if e.account_id != account_id:
            raise ValueError(
                f"execution {e.broker_execution_id!r} belongs to account {e.account_id!r}, not {account_id!r}"
            )
        latest[e.broker_execution_id] = e
    skipped = len(batch) - len(latest)
    ids = list(latest)
    stored = await _existing(conn, connection_id, account_id, ids)
    new_busts = await _record_tombstones(conn, connection_id, account_id, busts, now) if busts else []
    dead = await _tombstoned(conn, connection_id, account_id, ids) if ids else set()
    full: set[str] = set()
    fresh: dict[str, list[Fill]] = defaultdict(list)
    todo: list[_ToWrite] = []
    moved = False  # a correction moved an execution to another instrument
    described: dict[int, tuple[str, str]] = {}  # id(instrument) -> (JSON, pairing key): the page's objects
    for execution_id, e in latest.items():
        instrument = e.instrument
        known = described.get(id(instrument))
        if known is None:
            known = described[id(instrument)] = (instrument_json(instrument), instrument.pairing_key)
        text, key = known
        executed = utc_text(e.executed_at)
        fp = _fingerprint(e, text, executed)
        previous = stored.get(execution_id)
        if previous is None:
            todo.append((e, text, key, executed, fp))
            if execution_id not in dead:
                fresh[key].append(fill_of(e))
        elif previous[0] == fp:
            skipped += 1
        else:  # a correction: re-pair where it was and where it is now
            todo.append((e, text, key, executed, fp))
            full.update((previous[1], key))
            moved = moved or previous[1] != key
    if new_busts:  # a stored execution busted now: re-pair its instrument without it
        busted = await _existing(conn, connection_id, account_id, new_busts)
        full.update(instrument_key for _, instrument_key in busted.values())
    await _write_executions(conn, connection_id, todo, now)
    if not pair or not (fresh or full):
        return BatchCounts(0, skipped, 0, 0)

    method = await pairing_method(conn, connection_id)
    states = await _states(conn, connection_id, account_id, list(fresh))
    for key, new in fresh.items():
        state = states.get(key)
        if state is not None and min(map(fill_order, new)) <= state:
            full.add(key)  # a late execution: it comes before what was paired already
    work = _Work()
    incremental = [key for key in fresh if key not in full]
    lots_before = await _lots(conn, connection_id, account_id, incremental) if incremental else {}
    for key in incremental:
        fills = sorted(fresh[key], key=fill_order)
        trips, left = pair_fills(fills, lots_before.get(key, []), method)
        work.trips.extend((key, trip) for trip in trips)
        work.lots[key] = left
        last = fills[-1]
        work.last[key] = (instrument_json(last[9]), last[0], last[1])
    if moved:
        # a round trip may move between instruments: one write of everything (its tombstone and revival)
        for key in sorted(full):
            await _repair(conn, connection_id, account_id, key, method, work)
        counts = await _write(conn, connection_id, account_id, work, now)
    else:
        counts = await _write(conn, connection_id, account_id, work, now)
        counts = await _repair_each(conn, connection_id, account_id, sorted(full), method, now, counts)
    # re-paired round trips that did not change are not news: only executions sent again count as skipped
    return BatchCounts(counts.imported, skipped, counts.updated, counts.cancelled)


@attrs.define
class _Work:
    """What pairing a page produced, written out by :func:`_write`."""

    trips: list[tuple[str, Trade]] = attrs.Factory(list)
    lots: dict[str, Sequence[OpenLot]] = attrs.Factory(dict)
    last: dict[str, _Last | None] = attrs.Factory(dict)
    gone: list[str] = attrs.Factory(list)
    revived: list[str] = attrs.Factory(list)


async def _repair(
    conn: AsyncConnection, connection_id: str, account_id: str, key: str, method: PairingMethod, work: _Work
) -> None:
    """Re-pair one instrument from its first live execution (from scratch)."""
    fills, last_instrument = await _live_fills(conn, connection_id, account_id, key)
    fills.sort(key=fill_order)  # already in this order from the database (linear on sorted input)
    trips, left = pair_fills(fills, [], method)
    before = await _stored_round_trips(conn, connection_id, account_id, key)
    after = {trip.broker_trade_id for trip in trips}
    work.gone.extend(sorted(before - after))
    work.revived.extend(sorted(after - before))
    work.trips.extend((key, trip) for trip in trips)
    work.lots[key] = left
    if fills and last_instrument is not None:
        work.last[key] = (instrument_json(_instrument(last_instrument)), fills[-1][0], fills[-1][1])
    else:
        work.last[key] = None


async def _repair_each(
    conn: AsyncConnection,
    connection_id: str,
    account_id: str,
    keys: Sequence[str],
    method: PairingMethod,
    now: dt.datetime,
    counts: BatchCounts,
) -> BatchCounts:
    """Re-pair and write one instrument at a time: memory holds one instrument's round trips, not all.

    Only when no execution changed instrument: then every round trip's two executions are in one
    instrument before and after, the instruments' round trips are disjoint, and writing them one
    instrument at a time ends in the same rows and counts as one write of them all.
    """
    for key in keys:
        work = _Work()
        await _repair(conn, connection_id, account_id, key, method, work)
        more = await _write(conn, connection_id, account_id, work, now)
        counts = BatchCounts(
            counts.imported + more.imported,
            counts.skipped + more.skipped,
            counts.updated + more.updated,
            counts.cancelled + more.cancelled,
        )
    return counts


async def _write(
    conn: AsyncConnection, connection_id: str, account_id: str, work: _Work, now: dt.datetime
) -> BatchCounts:
    cancelled = await _forget_round_trips(conn, connection_id, account_id, work.gone, now)
    if work.revived:
        await _revive_round_trips(conn, connection_id, account_id, work.revived)
    counts = await upsert_trades(
        conn, connection_id=connection_id, account_id=account_id, batch=[trip for _, trip in work.trips], now=now
    )
    await _remember_round_trips(conn, connection_id, account_id, work.trips)
    await _replace_lots(conn, connection_id, account_id, work.lots, work.last, now)
    return BatchCounts(counts.imported, counts.skipped, counts.updated, cancelled)


async def repair_connection(conn: AsyncConnection, *, connection_id: str, now: dt.datetime) -> int:
    """Re-pair every instrument of the connection (after its pairing method changed); return the changes."""
    method = await pairing_method(conn, connection_id)
    c = executions.c
    query = (
        select(c.account_id, c.instrument_key)
        .where(c.connection_id == connection_id)
        .distinct()
        .order_by(c.account_id, c.instrument_key)
    )
    by_account: dict[str, list[str]] = defaultdict(list)
    for account_id, key in await conn.execute(query):
        by_account[account_id].append(key)
    changed = 0
    for account_id, keys in by_account.items():
        counts = await _repair_each(conn, connection_id, account_id, keys, method, now, BatchCounts(0, 0, 0, 0))
        changed += counts.imported + counts.updated + counts.cancelled
    return changed


async def delete_pairing(conn: AsyncConnection, connection_id: str) -> None:
    """Delete the connection's executions, tombstones, lots, pairing state, round-trip sources, snapshots."""
    for table in (executions, execution_cancellations, open_lots, pairing_state, round_trips, position_snapshots):
        await conn.execute(delete(table).where(table.c.connection_id == connection_id))


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
                    "raw": json.dumps(dict(p.raw), default=_json_default, separators=(",", ":")),
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
                instrument=_instrument(lots[0].instrument),
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
                instrument=_instrument(row.instrument),
                quantity=row.quantity,
                average_price=row.average_price,
                opened_at=row.opened_at,
                source="broker snapshot",
            )
        )
    return result
