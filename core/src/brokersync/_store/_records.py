"""What the store hands back: plain frozen records, never a secret."""

from __future__ import annotations

import datetime as dt
import enum
import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

import attrs

from brokersync.models import Direction, Trade

if TYPE_CHECKING:
    from sqlalchemy.engine import Row

__all__ = [
    "AccountInfo",
    "ConnectionInfo",
    "ConnectionRow",
    "ConnectionStatus",
    "RunStatus",
    "StoredCancellation",
    "StoredTrade",
    "SyncRunInfo",
    "SyncTrigger",
]


class ConnectionStatus(enum.StrEnum):
    """Where a connection stands."""

    ACTIVE = "active"  # synced on schedule
    NEEDS_REAUTH = "needs_reauth"  # the broker rejected the credentials: the user must reconnect
    DISABLED = "disabled"  # disconnected by the user: secrets deleted, trades kept


class SyncTrigger(enum.StrEnum):
    """Who started a sync."""

    MANUAL = "manual"  # all history (or from ``since``)
    SCHEDULED = "scheduled"  # incremental from each account's watermark minus the lookback


class RunStatus(enum.StrEnum):
    """The outcome of a sync run, as its audit row records it."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"  # finished, but some records were invalid and not stored
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # the process died mid-run; found and closed by the next sync


class ConnectionRow(NamedTuple):
    """The columns of a connection the engine needs to sync it, ciphertexts included (engine only)."""

    id: str
    user_id: str
    broker: str
    environment: str
    status: str
    credentials: str | None
    token: str | None


@attrs.frozen(kw_only=True)
class AccountInfo:
    """A broker account under a connection, with its sync position."""

    connection_id: str
    account_id: str
    name: str | None
    currency: str | None
    type: str | None
    watermark: dt.datetime | None = None
    cursor: str | None = None


@attrs.frozen(kw_only=True)
class ConnectionInfo:
    """A stored connection, without its secrets."""

    id: str
    user_id: str
    broker: str
    environment: str
    status: ConnectionStatus
    created_at: dt.datetime
    updated_at: dt.datetime
    token_expires_at: dt.datetime | None = None
    last_sync_at: dt.datetime | None = None
    last_sync_status: RunStatus | None = None
    last_error: str | None = None
    accounts: tuple[AccountInfo, ...] = ()


@attrs.frozen(kw_only=True)
class StoredTrade:
    """A trade as stored: the normalized fields, where it came from, and when it was seen.

    ``cancelled_at`` and ``cancel_reason`` are set when the broker cancelled (busted) the trade;
    listings leave such trades out unless asked to include them.
    """

    connection_id: str
    account_id: str
    broker_trade_id: str
    symbol: str
    direction: Direction
    opened_at: dt.datetime
    closed_at: dt.datetime | None
    entry_price: Decimal
    exit_price: Decimal | None
    quantity: Decimal
    realized_pnl: Decimal | None
    fees: Decimal
    currency: str
    first_seen_at: dt.datetime
    updated_at: dt.datetime
    cancelled_at: dt.datetime | None = None
    cancel_reason: str | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False)

    @property
    def is_cancelled(self) -> bool:
        """Whether the broker cancelled this trade (it has a tombstone)."""
        return self.cancelled_at is not None

    def to_trade(self) -> Trade:
        """The normalized :class:`~brokersync.Trade`."""
        return Trade(
            broker_trade_id=self.broker_trade_id,
            account_id=self.account_id,
            symbol=self.symbol,
            direction=self.direction,
            opened_at=self.opened_at,
            closed_at=self.closed_at,
            entry_price=self.entry_price,
            exit_price=self.exit_price,
            quantity=self.quantity,
            realized_pnl=self.realized_pnl,
            fees=self.fees,
            currency=self.currency,
            raw=self.raw,
        )


@attrs.frozen(kw_only=True)
class SyncRunInfo:
    """One row of the audit trail (``sync_runs``). Holds no secret."""

    id: str
    connection_id: str
    user_id: str
    broker: str
    trigger: SyncTrigger
    status: RunStatus
    started_at: dt.datetime
    finished_at: dt.datetime | None
    duration_ms: int | None
    imported: int
    skipped: int
    updated: int
    error_count: int
    retries: int
    rate_limit_waits: int
    rate_limit_wait_ms: int
    error_type: str | None
    error_message: str | None
    record_errors: tuple[Mapping[str, Any], ...] = ()
    cancelled: int = 0  # tombstones newly recorded by the run
    requests: int | None = None  # HTTP requests sent to the broker (None: recorded before brokersync knew)


# -- rows to records (the store's SELECT results) ---------------------------------------------------


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
    )


@attrs.frozen(kw_only=True)
class StoredCancellation:
    """A tombstone: the broker cancelled (busted) one of its trades.

    ``trade_stored`` says whether the cancelled trade itself is stored: a broker may report a
    cancellation of a trade brokersync never received (outside the synced window, or not reported
    yet), and such tombstones show up only here, not in trade listings.
    """

    connection_id: str
    account_id: str
    broker_trade_id: str
    cancelled_at: dt.datetime
    reason: str | None
    recorded_at: dt.datetime
    trade_stored: bool


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


def stored_trade(row: Row[Any]) -> StoredTrade:
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
        raw=json.loads(row.raw) if row.raw else {},
    )
