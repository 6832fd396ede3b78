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
   - otherwise (a late execution, a correction, a bust) the instrument is re-paired from the
     earliest execution the change affects (``_pairing_repair``): the late execution, the
     corrected execution where it was and where it is now, the busted one. Round trips closed
     before that point are neither read nor written; of the others, those whose values change
     are updated, those that no longer exist get a tombstone (``trade_cancellations``, reason
     :data:`REPAIRED`), and a round trip that comes back loses that tombstone.
3. The page's executions that carry the broker's own realized P&L (``broker_realized_pnl``) and
   whose round trips were derived in step 2 are checked against them (``_pairing_check``); the
   mismatches come back as ``BatchCounts.warnings``.

Round trips are ordinary ``trades`` rows, so listings, exports, audit and counts treat them like
reported trades; ``round_trips`` records which executions and instrument each came from.

Counts: ``imported``/``updated`` count round trips written; ``skipped`` counts executions the
broker sent again unchanged; ``cancelled`` counts round trips that disappeared (new tombstones).

This module decides; its parts do the I/O: ``_execution_rows`` (executions and their busts),
``_pairing_reads`` (lookups), ``_pairing_repair`` (re-pairing from a point), ``_pairing_writes``
(lots, pairing state, round-trip sources and their tombstones), ``_instruments`` (instruments as
JSON); ``_positions`` reads the open lots back.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from brokersync._pairing import Fill, fill_of, fill_order, pair_fills
from brokersync._store import _pairing_sqlite as lite
from brokersync._store._cancellations import BatchCounts
from brokersync._store._execution_rows import (
    ToWrite,
    execution_fingerprint,
    record_execution_tombstones,
    start_executions,
    write_executions,
)
from brokersync._store._instruments import instrument_json
from brokersync._store._pairing_check import PnlCheck
from brokersync._store._pairing_reads import (
    open_lots_of,
    pairing_method,
    pairing_states,
    stored_executions,
    tombstoned,
)
from brokersync._store._pairing_repair import Pinned, Point, Work, add_counts, repair_from, trips_closed_by, write_work
from brokersync._store._pairing_writes import forget_round_trips
from brokersync._store._schema import (
    execution_cancellations,
    executions,
    open_lots,
    pairing_state,
    position_snapshots,
    round_trips,
)
from brokersync._store._types import utc_text
from brokersync.models import Execution, ExecutionCancellation

__all__ = ["delete_pairing", "repair_connection", "store_executions"]


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
    stored = await stored_executions(conn, connection_id, account_id, ids)
    new_busts = await record_execution_tombstones(conn, connection_id, account_id, busts, now) if busts else []
    dead = await tombstoned(conn, connection_id, account_id, ids) if ids else set()
    check = PnlCheck()  # the broker's realized P&L of the page's live executions, where it gives one
    for execution_id, e in latest.items():
        if e.broker_realized_pnl is not None and execution_id not in dead:
            check.figures[execution_id] = (e.broker_realized_pnl, e.quantity, e.open_close)
    points: dict[str, Point] = {}  # instrument key -> the earliest execution a change affects

    def affects(key: str, point: Point) -> None:
        known = points.get(key)
        if known is None or point < known:
            points[key] = point

    fresh: dict[str, list[Fill]] = defaultdict(list)
    todo: list[ToWrite] = []
    pinned = Pinned()
    described: dict[int, tuple[str, str]] = {}  # id(instrument) -> (JSON, pairing key): the page's objects
    for execution_id, e in latest.items():
        instrument = e.instrument
        known = described.get(id(instrument))
        if known is None:
            known = described[id(instrument)] = (instrument_json(instrument), instrument.pairing_key)
        text, key = known
        executed = utc_text(e.executed_at)
        fp = execution_fingerprint(e, text, executed)
        previous = stored.get(execution_id)
        if previous is None:
            todo.append((e, text, key, executed, fp))
            if execution_id not in dead:
                fresh[key].append(fill_of(e))
        elif previous[0] == fp:
            skipped += 1
        else:  # a correction: re-pair from where it was and from where it is now
            todo.append((e, text, key, executed, fp))
            was = (lite.utc(previous[2]), execution_id)
            affects(previous[1], was)
            affects(key, (e.executed_at, execution_id))
            pinned.corrected.add(execution_id)
            pinned.before |= await trips_closed_by(conn, connection_id, account_id, previous[1], was)
    if new_busts:  # a stored execution busted now: re-pair its instrument without it, from where it was
        busted = await stored_executions(conn, connection_id, account_id, new_busts)
        for execution_id, (_, key, executed) in busted.items():
            affects(key, (lite.utc(executed), execution_id))
    if not pair or not (fresh or points):
        await write_executions(conn, connection_id, todo, now)
        return BatchCounts(0, skipped, 0, 0)

    # what pairing reads does not depend on the page's executions: read it first, then write them
    # on SQLite's thread while this one pairs (see _pairing_sqlite.queue_rows)
    method = await pairing_method(conn, connection_id)
    states = await pairing_states(conn, connection_id, account_id, [key for key in fresh if key not in points])
    for key, new in fresh.items():
        state = states.get(key)
        first = min(map(fill_order, new))
        if key in points or (state is not None and first <= state):
            affects(key, first)  # a late execution: it comes before what was paired already
    work = Work()
    incremental = [key for key in fresh if key not in points]
    lots_before = await open_lots_of(conn, connection_id, account_id, incremental) if incremental else {}
    writing = await start_executions(conn, connection_id, todo, now)
    try:
        for key in incremental:
            fills = sorted(fresh[key], key=fill_order)
            trips, left = pair_fills(fills, lots_before.get(key, []), method)
            check.take(trips)
            work.trips.extend((key, trip) for trip in trips)
            work.lots[key] = left
            last = fills[-1]
            work.last[key] = (instrument_json(last[9]), last[0], last[1])
    finally:
        await lite.finish(writing)
    counts = await write_work(conn, connection_id, account_id, work, now)
    for key in sorted(points):
        more = await repair_from(conn, connection_id, account_id, key, points[key], method, now, pinned, check)
        counts = add_counts(counts, more)
    gone = sorted(pinned.before - pinned.after)  # closed by a corrected execution, and no more
    cancelled = await forget_round_trips(conn, connection_id, account_id, gone, now)
    # re-paired round trips that did not change are not news: only executions sent again count as skipped
    warnings = check.warnings(account_id) if check.trips else ()
    return BatchCounts(counts.imported, skipped, counts.updated, counts.cancelled + cancelled, warnings)


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
        for key in keys:
            counts = await repair_from(conn, connection_id, account_id, key, None, method, now, Pinned())
            changed += counts.imported + counts.updated + counts.cancelled
    return changed


async def delete_pairing(conn: AsyncConnection, connection_id: str) -> None:
    """Delete the connection's executions, tombstones, lots, pairing state, round-trip sources, snapshots."""
    for table in (executions, execution_cancellations, open_lots, pairing_state, round_trips, position_snapshots):
        await conn.execute(delete(table).where(table.c.connection_id == connection_id))
