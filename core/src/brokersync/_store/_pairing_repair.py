"""Re-pairing one instrument from a point of its history (ADR 0010, amendment "re-pair from a point").

A late, corrected or busted execution changes nothing before the earliest execution it affects,
the *point* ``(executed_at, broker execution id)``. The pairing state just before the point is the
set of lots open there, and it is rebuilt from what is stored, without reading what closed before:

- the pieces of lots opened before the point and closed at or after it are the round trips whose
  opening execution comes before the point and whose closing execution (``round_trips.closed_at``,
  indexed) comes at or after it; each gives its quantity and its opening fee share (``raw``);
- the lots opened before the point and still open now are in ``open_lots``.

Per opening execution, the quantity open at the point is the sum of its pieces (closed later or
still open), its unassigned fee the sum of their opening fee shares (the shares add up exactly, all
in the opening execution's fee currency); price, direction, time, fee exponent and fee currency come
from the opening execution, which the change did not touch (it comes before the point). From there
the instrument's live executions at or after the point are paired again in slices of :data:`SLICE`
(memory holds a slice, not the history), and each slice is compared with the stored round trips
closed in the same range of the pairing order: those whose values changed are updated, those gone
get a tombstone, those back lose it. Round trips closed before the point are neither read nor
written.

A round trip whose closing execution was corrected may move to another range (the correction moved
the execution in time) or another instrument: those are compared over the whole page instead
(:class:`Pinned`), so a moved round trip is updated, never tombstoned and revived.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import attrs
from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from brokersync._pairing import Fill, OpenLot, PairingMethod, pair_fills
from brokersync._store._cancellations import BatchCounts
from brokersync._store._instruments import instrument_json, instrument_of
from brokersync._store._pairing_check import PnlCheck
from brokersync._store._pairing_reads import chunks
from brokersync._store._pairing_writes import (
    LastPaired,
    forget_round_trips,
    remember_round_trips,
    replace_lots,
    revive_round_trips,
)
from brokersync._store._schema import execution_cancellations, executions, open_lots, round_trips, trades
from brokersync._store._upsert import upsert_trades
from brokersync.models import ExecutionKind, Side, Trade

__all__ = ["SLICE", "Pinned", "Point", "Work", "add_counts", "repair_from", "trips_closed_by", "write_work"]

SLICE = 2048  # executions re-paired (and round trips compared) per step

# A position in an instrument's pairing order: (executed_at, broker execution id).
Point = tuple[dt.datetime, str]

_SIDE_DIRECTIONS = {side.value: side.direction for side in Side}
_EXPIRY = ExecutionKind.EXPIRY.value
_ZERO = Decimal(0)


@attrs.define
class Work:
    """Round trips to write: all derived (``trips``), which to record as sources (``remember``), which
    disappeared (``gone``) and which came back (``revived``); lots and pairing state per instrument."""

    trips: list[tuple[str, Trade]] = attrs.Factory(list)
    remember: list[tuple[str, Trade]] | None = None  # None: all of ``trips``
    gone: list[str] = attrs.Factory(list)
    revived: list[str] = attrs.Factory(list)
    lots: dict[str, Sequence[OpenLot]] = attrs.Factory(dict)
    last: dict[str, LastPaired | None] = attrs.Factory(dict)


@attrs.define
class Pinned:
    """Round trips closed by executions corrected in this page, compared over the whole page."""

    corrected: set[str] = attrs.Factory(set)  # the corrected executions' ids
    before: set[str] = attrs.Factory(set)  # round trips they closed before the page
    after: set[str] = attrs.Factory(set)  # round trips they close now


def add_counts(a: BatchCounts, b: BatchCounts) -> BatchCounts:
    return BatchCounts(a.imported + b.imported, a.skipped + b.skipped, a.updated + b.updated, a.cancelled + b.cancelled)


async def write_work(
    conn: AsyncConnection, connection_id: str, account_id: str, work: Work, now: dt.datetime
) -> BatchCounts:
    cancelled = await forget_round_trips(conn, connection_id, account_id, work.gone, now)
    if work.revived:
        await revive_round_trips(conn, connection_id, account_id, work.revived)
    counts = await upsert_trades(
        conn, connection_id=connection_id, account_id=account_id, batch=[trip for _, trip in work.trips], now=now
    )
    await remember_round_trips(conn, connection_id, account_id, work.trips if work.remember is None else work.remember)
    if work.lots:
        await replace_lots(conn, connection_id, account_id, work.lots, work.last, now)
    return BatchCounts(counts.imported, counts.skipped, counts.updated, cancelled)


# --- order conditions ---------------------------------------------------------------------------


def _from(time: Any, ident: Any, point: Point, *, inclusive: bool) -> ColumnElement[bool]:
    """``(time, ident) >= point`` (``>`` unless ``inclusive``), written so an index range applies."""
    t, i = point
    return and_(time >= t, or_(time > t, ident >= i if inclusive else ident > i))


def _until(time: Any, ident: Any, point: Point, *, inclusive: bool) -> ColumnElement[bool]:
    """``(time, ident) <= point`` (``<`` unless ``inclusive``)."""
    t, i = point
    return and_(time <= t, or_(time < t, ident <= i if inclusive else ident < i))


def _live(connection_id: str, account_id: str, key: str) -> list[ColumnElement[bool]]:
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
    return [c.connection_id == connection_id, c.account_id == account_id, c.instrument_key == key, ~busted]


# --- reads --------------------------------------------------------------------------------------


async def _lots_at(conn: AsyncConnection, connection_id: str, account_id: str, key: str, point: Point) -> list[OpenLot]:
    """The lots open just before ``point`` (oldest first), rebuilt as the module doc says."""
    rt, t = round_trips.c, trades.c
    pieces = (
        select(rt.opening_execution_id, t.quantity, t.raw)
        .select_from(
            round_trips.join(
                trades,
                and_(
                    t.connection_id == rt.connection_id,
                    t.account_id == rt.account_id,
                    t.broker_trade_id == rt.broker_trade_id,
                ),
            )
        )
        .where(
            rt.connection_id == connection_id,
            rt.account_id == account_id,
            rt.instrument_key == key,
            _from(rt.closed_at, rt.closing_execution_id, point, inclusive=True),
            _until(t.opened_at, rt.opening_execution_id, point, inclusive=False),
        )
    )
    quantity: dict[str, Decimal] = defaultdict(Decimal)
    fees: dict[str, Decimal] = defaultdict(Decimal)
    for opening, piece, raw in await conn.execute(pieces):
        quantity[opening] += piece
        fees[opening] += Decimal(json.loads(raw)["opening_fee"])
    o = open_lots.c
    still_open = select(o.broker_execution_id, o.quantity, o.fees).where(
        o.connection_id == connection_id,
        o.account_id == account_id,
        o.instrument_key == key,
        _until(o.opened_at, o.broker_execution_id, point, inclusive=False),
    )
    for opening, rest, rest_fees in await conn.execute(still_open):
        quantity[opening] += rest
        fees[opening] += rest_fees
    lots: list[OpenLot] = []
    c = executions.c
    for chunk in chunks(list(quantity)):
        query = select(c.broker_execution_id, c.side, c.price, c.executed_at, c.fees, c.kind, c.fee_currency).where(
            c.connection_id == connection_id, c.account_id == account_id, c.broker_execution_id.in_(chunk)
        )
        for opening, side, price, executed_at, opening_fees, kind, fee_currency in await conn.execute(query):
            exponent = opening_fees.as_tuple().exponent
            lots.append(
                [
                    opening,
                    _SIDE_DIRECTIONS[side],
                    quantity[opening],
                    _ZERO if kind == _EXPIRY else price,
                    executed_at,
                    fees[opening],
                    exponent,
                    fee_currency,
                ]
            )
    lots.sort(key=lambda lot: (lot[4], lot[0]))
    return lots


async def _fill_slice(
    conn: AsyncConnection, connection_id: str, account_id: str, key: str, lower: Point | None, inclusive: bool
) -> tuple[list[Fill], str | None]:
    """Up to :data:`SLICE` live executions from ``lower`` on, in pairing order; the last one's instrument JSON."""
    c = executions.c
    where = _live(connection_id, account_id, key)
    if lower is not None:
        where.append(_from(c.executed_at, c.broker_execution_id, lower, inclusive=inclusive))
    query = (
        select(
            c.broker_execution_id,
            c.instrument,
            c.side,
            c.quantity,
            c.price,
            c.executed_at,
            c.fees,
            c.fee_currency,
            c.kind,
        )
        .where(*where)
        .order_by(c.executed_at, c.broker_execution_id)
        .limit(SLICE)
    )
    rows = list(await conn.execute(query))
    described: dict[str, Any] = {}
    fills: list[Fill] = []
    for execution_id, text, side, quantity, price, executed_at, fees, fee_currency, kind in rows:
        instrument = described.get(text)
        if instrument is None:
            instrument = described[text] = instrument_of(text)
        fills.append(
            (
                executed_at,
                execution_id,
                _SIDE_DIRECTIONS[side],
                quantity,
                _ZERO if kind == _EXPIRY else price,
                fees,
                kind,
                fee_currency,
                account_id,
                instrument,
            )
        )
    return fills, rows[-1][1] if rows else None


async def _trips_in(
    conn: AsyncConnection,
    connection_id: str,
    account_id: str,
    key: str,
    lower: Point | None,
    inclusive: bool,
    upper: Point | None,
) -> list[tuple[str, str]]:
    """Stored round trips closed in ``[lower, upper]`` (``(lower, upper]`` unless ``inclusive``): (id, closing id)."""
    rt = round_trips.c
    where = [rt.connection_id == connection_id, rt.account_id == account_id, rt.instrument_key == key]
    if lower is not None:
        where.append(_from(rt.closed_at, rt.closing_execution_id, lower, inclusive=inclusive))
    if upper is not None:
        where.append(_until(rt.closed_at, rt.closing_execution_id, upper, inclusive=True))
    return [
        (row[0], row[1])
        for row in await conn.execute(select(rt.broker_trade_id, rt.closing_execution_id).where(*where))
    ]


async def trips_closed_by(
    conn: AsyncConnection, connection_id: str, account_id: str, key: str, point: Point
) -> set[str]:
    """Stored round trips of ``key`` whose closing execution is the one at ``point``."""
    rt = round_trips.c
    query = select(rt.broker_trade_id).where(
        rt.connection_id == connection_id,
        rt.account_id == account_id,
        rt.instrument_key == key,
        rt.closed_at == point[0],
        rt.closing_execution_id == point[1],
    )
    return {row[0] for row in await conn.execute(query)}


async def _last_before(
    conn: AsyncConnection, connection_id: str, account_id: str, key: str, point: Point
) -> LastPaired | None:
    c = executions.c
    query = (
        select(c.instrument, c.executed_at, c.broker_execution_id)
        .where(
            *_live(connection_id, account_id, key), _until(c.executed_at, c.broker_execution_id, point, inclusive=False)
        )
        .order_by(c.executed_at.desc(), c.broker_execution_id.desc())
        .limit(1)
    )
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    return (instrument_json(instrument_of(row[0])), row[1], row[2])


# --- the re-pair --------------------------------------------------------------------------------


async def repair_from(
    conn: AsyncConnection,
    connection_id: str,
    account_id: str,
    key: str,
    point: Point | None,
    method: PairingMethod,
    now: dt.datetime,
    pinned: Pinned,
    check: PnlCheck | None = None,
) -> BatchCounts:
    """Re-pair ``key`` from ``point`` (None: from its first execution) and write what changed.

    ``check`` keeps the round trips closed by the executions whose broker P&L it checks.
    """
    lots = await _lots_at(conn, connection_id, account_id, key, point) if point is not None else []
    lower, inclusive = point, True
    counts = BatchCounts(0, 0, 0, 0)
    last: LastPaired | None = None
    while True:
        fills, last_instrument = await _fill_slice(conn, connection_id, account_id, key, lower, inclusive)
        upper = (fills[-1][0], fills[-1][1]) if len(fills) == SLICE else None
        stored = await _trips_in(conn, connection_id, account_id, key, lower, inclusive, upper)
        before = {trip_id for trip_id, closing in stored if closing not in pinned.corrected}
        trips, queue = pair_fills(fills, lots, method)
        lots = list(queue)
        if check is not None:
            check.take(trips)
        remember: list[tuple[str, Trade]] = []  # sources to record: new ones, and every moved one
        revived: list[str] = []
        after: set[str] = set()
        for trip in trips:
            trip_id = trip.broker_trade_id
            if trip.raw["closing_execution_id"] in pinned.corrected:
                pinned.after.add(trip_id)
                known = trip_id in pinned.before
                remember.append((key, trip))  # its closing time or instrument may have moved
            else:
                after.add(trip_id)
                known = trip_id in before
                if not known:
                    remember.append((key, trip))
            if not known:
                revived.append(trip_id)
        work = Work(trips=[(key, trip) for trip in trips], remember=remember, revived=revived)
        work.gone = sorted(before - after)
        counts = add_counts(counts, await write_work(conn, connection_id, account_id, work, now))
        if fills and last_instrument is not None:
            last = (instrument_json(instrument_of(last_instrument)), fills[-1][0], fills[-1][1])
        if upper is None:
            break
        lower, inclusive = upper, False
    if last is None and point is not None:
        last = await _last_before(conn, connection_id, account_id, key, point)
    await replace_lots(conn, connection_id, account_id, {key: lots}, {key: last}, now)
    return counts
