"""The store's rows turned into the public records of :mod:`brokersync.results`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from brokersync._store._run_warnings import warnings_from_json
from brokersync.models import Direction
from brokersync.results import (
    AccountInfo,
    ConnectionInfo,
    ConnectionStatus,
    RecordSource,
    RunStatus,
    StoredCancellation,
    StoredTrade,
    SyncRunInfo,
    SyncTrigger,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Row

__all__ = ["ConnectionRow", "connection_info", "run_info", "stored_cancellation", "stored_trade"]


class ConnectionRow(NamedTuple):
    """The columns of a connection the engine needs to sync it, ciphertexts included (engine only)."""

    id: str
    user_id: str
    broker: str
    environment: str
    status: str
    credentials: str | None
    token: str | None


def connection_info(row: Row[Any], account_rows: Sequence[AccountInfo] = ()) -> ConnectionInfo:
    return ConnectionInfo(
        id=row.id,
        user_id=row.user_id,
        broker=row.broker,
        environment=row.environment,
        status=ConnectionStatus(row.status),
        created_at=row.created_at,
        updated_at=row.updated_at,
        token_expires_at=row.token_expires_at,
        last_sync_at=row.last_sync_at,
        last_sync_status=RunStatus(row.last_sync_status) if row.last_sync_status else None,
        last_error=row.last_error,
        accounts=tuple(account_rows),
    )


def run_info(row: Row[Any]) -> SyncRunInfo:
    return SyncRunInfo(
        id=row.id,
        connection_id=row.connection_id,
        user_id=row.user_id,
        broker=row.broker,
        trigger=SyncTrigger(row.trigger),
        status=RunStatus(row.status),
        started_at=row.started_at,
        finished_at=row.finished_at,
        duration_ms=row.duration_ms,
        imported=row.imported,
        skipped=row.skipped,
        updated=row.updated,
        error_count=row.error_count,
        retries=row.retries,
        rate_limit_waits=row.rate_limit_waits,
        rate_limit_wait_ms=row.rate_limit_wait_ms,
        error_type=row.error_type,
        error_message=row.error_message,
        record_errors=tuple(json.loads(row.record_errors)) if row.record_errors else (),
        cancelled=row.cancelled or 0,
        requests=row.requests,
        **_warnings(row),
    )


def _warnings(row: Row[Any]) -> dict[str, Any]:
    warnings, count = warnings_from_json(row.warnings)
    return {"warnings": warnings, "warning_count": count}


def stored_cancellation(row: Row[Any]) -> StoredCancellation:
    return StoredCancellation(
        connection_id=row.connection_id,
        account_id=row.account_id,
        broker_trade_id=row.broker_trade_id,
        cancelled_at=row.cancelled_at,
        reason=row.reason,
        recorded_at=row.recorded_at,
        trade_stored=bool(row.trade_stored),
    )


def _execution_source(text: str | None) -> RecordSource:
    """The source of a paired round trip's execution, from its raw's ``brokersync_source`` as JSON text ('' = none)."""
    return RecordSource.of_raw({"brokersync_source": json.loads(text)} if text else None)


def stored_trade(row: Row[Any]) -> StoredTrade:
    """A trades row as a ``StoredTrade``; a listing's row may carry its executions' sources (see ``_trades``)."""
    raw = json.loads(row.raw) if row.raw else {}
    closing = getattr(row, "closing_source", None)  # NULL: not a paired round trip (or not asked)
    return StoredTrade(
        connection_id=row.connection_id,
        account_id=row.account_id,
        broker_trade_id=row.broker_trade_id,
        symbol=row.symbol,
        direction=Direction(row.direction),
        opened_at=row.opened_at,
        closed_at=row.closed_at,
        entry_price=row.entry_price,
        exit_price=row.exit_price,
        quantity=row.quantity,
        realized_pnl=row.realized_pnl,
        fees=row.fees,
        currency=row.currency,
        first_seen_at=row.first_seen_at,
        updated_at=row.updated_at,
        cancelled_at=getattr(row, "cancelled_at", None),
        cancel_reason=getattr(row, "cancel_reason", None),
        raw=raw,
        source=RecordSource.of_raw(raw) if closing is None else _execution_source(closing),
        opening_source=None if closing is None else _execution_source(getattr(row, "opening_source", None)),
    )
