"""Writing executions (new ones and corrections, by fingerprint) and the tombstones of busted executions."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from brokersync._store import _pairing_sqlite as lite
from brokersync._store._fingerprints import canonical_decimal
from brokersync._store._instruments import instrument_json, json_default
from brokersync._store._pairing_reads import tombstoned
from brokersync._store._schema import execution_cancellations, executions
from brokersync._store._types import utc_text
from brokersync._store._upsert import dialect_insert
from brokersync.models import Execution, ExecutionCancellation

__all__ = [
    "ToWrite",
    "execution_fingerprint",
    "record_execution_tombstones",
    "start_executions",
    "write_executions",
]


def execution_fingerprint(e: Execution, instrument: str, executed: str) -> str:
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
        "raw": json.dumps(dict(e.raw), default=json_default, separators=(",", ":")),
        "fingerprint": execution_fingerprint(e, instrument, utc_text(e.executed_at)),
        "first_seen_at": now,
        "updated_at": now,
    }


# (execution, instrument JSON, instrument key, executed_at as utc_text, fingerprint): one to write
ToWrite = tuple[Execution, str, str, str, str]

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


async def write_executions(conn: AsyncConnection, connection_id: str, todo: list[ToWrite], now: dt.datetime) -> None:
    await lite.finish(await start_executions(conn, connection_id, todo, now))


async def start_executions(
    conn: AsyncConnection, connection_id: str, todo: list[ToWrite], now: dt.datetime
) -> list[asyncio.Future[Any]]:
    """Write ``todo``; on SQLite only queue the statements (the caller computes meanwhile, then
    passes the result to ``_pairing_sqlite.finish``)."""
    if not todo:
        return []
    if conn.dialect.name != "sqlite":
        await _upsert_executions(conn, [_execution_row(item[0], connection_id, now) for item in todo])
        return []
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
            json.dumps(dict(e.raw), default=json_default, separators=(",", ":")),
            fp,
        )
        for e, instrument, key, executed, fp in todo
    ]
    now_text = lite.time_text(now)
    return await lite.queue_rows(
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


async def record_execution_tombstones(
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
    stored = await tombstoned(conn, connection_id, account_id, list(first))
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
                    "raw": json.dumps(dict(b.raw), default=json_default, separators=(",", ":")),
                    "recorded_at": now,
                }
                for b in new
            ],
        )
    return [b.broker_execution_id for b in new]
