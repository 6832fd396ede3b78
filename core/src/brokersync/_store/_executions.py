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

This module decides; its parts do the I/O: ``_execution_rows`` (executions and their busts),
``_pairing_reads`` (lookups), ``_pairing_writes`` (lots, pairing state, round-trip sources and their
tombstones), ``_instruments`` (instruments as JSON); ``_positions`` reads the open lots back.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence

import attrs
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from brokersync._pairing import Fill, OpenLot, PairingMethod, fill_of, fill_order, pair_fills
from brokersync._store._cancellations import BatchCounts
from brokersync._store._execution_rows import (
    ToWrite,
    execution_fingerprint,
    record_execution_tombstones,
    write_executions,
)
from brokersync._store._instruments import instrument_json, instrument_of
from brokersync._store._pairing_reads import (
    live_fills,
    open_lots_of,
    pairing_method,
    pairing_states,
    stored_executions,
    stored_round_trips,
    tombstoned,
)
from brokersync._store._pairing_writes import (
    LastPaired,
    forget_round_trips,
    remember_round_trips,
    replace_lots,
    revive_round_trips,
)
from brokersync._store._schema import (
    execution_cancellations,
    executions,
    open_lots,
    pairing_state,
    position_snapshots,
    round_trips,
)
from brokersync._store._types import utc_text
from brokersync._store._upsert import upsert_trades
from brokersync.models import Execution, ExecutionCancellation, Trade

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
    full: set[str] = set()
    fresh: dict[str, list[Fill]] = defaultdict(list)
    todo: list[ToWrite] = []
    moved = False  # a correction moved an execution to another instrument
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
        else:  # a correction: re-pair where it was and where it is now
            todo.append((e, text, key, executed, fp))
            full.update((previous[1], key))
            moved = moved or previous[1] != key
    if new_busts:  # a stored execution busted now: re-pair its instrument without it
        busted = await stored_executions(conn, connection_id, account_id, new_busts)
        full.update(instrument_key for _, instrument_key in busted.values())
    await write_executions(conn, connection_id, todo, now)
    if not pair or not (fresh or full):
        return BatchCounts(0, skipped, 0, 0)

    method = await pairing_method(conn, connection_id)
    states = await pairing_states(conn, connection_id, account_id, list(fresh))
    for key, new in fresh.items():
        state = states.get(key)
        if state is not None and min(map(fill_order, new)) <= state:
            full.add(key)  # a late execution: it comes before what was paired already
    work = _Work()
    incremental = [key for key in fresh if key not in full]
    lots_before = await open_lots_of(conn, connection_id, account_id, incremental) if incremental else {}
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
    last: dict[str, LastPaired | None] = attrs.Factory(dict)
    gone: list[str] = attrs.Factory(list)
    revived: list[str] = attrs.Factory(list)


async def _repair(
    conn: AsyncConnection, connection_id: str, account_id: str, key: str, method: PairingMethod, work: _Work
) -> None:
    """Re-pair one instrument from its first live execution (from scratch)."""
    fills, last_instrument = await live_fills(conn, connection_id, account_id, key)
    fills.sort(key=fill_order)  # already in this order from the database (linear on sorted input)
    trips, left = pair_fills(fills, [], method)
    before = await stored_round_trips(conn, connection_id, account_id, key)
    after = {trip.broker_trade_id for trip in trips}
    work.gone.extend(sorted(before - after))
    work.revived.extend(sorted(after - before))
    work.trips.extend((key, trip) for trip in trips)
    work.lots[key] = left
    if fills and last_instrument is not None:
        work.last[key] = (instrument_json(instrument_of(last_instrument)), fills[-1][0], fills[-1][1])
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
    cancelled = await forget_round_trips(conn, connection_id, account_id, work.gone, now)
    if work.revived:
        await revive_round_trips(conn, connection_id, account_id, work.revived)
    counts = await upsert_trades(
        conn, connection_id=connection_id, account_id=account_id, batch=[trip for _, trip in work.trips], now=now
    )
    await remember_round_trips(conn, connection_id, account_id, work.trips)
    await replace_lots(conn, connection_id, account_id, work.lots, work.last, now)
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
