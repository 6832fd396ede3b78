"""What the store hands back: plain frozen records, never a secret."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import attrs

from brokersync.models import Direction, Trade

__all__ = [
    "AccountInfo",
    "ConnectionInfo",
    "ConnectionStatus",
    "RunStatus",
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
    """A trade as stored: the normalized fields, where it came from, and when it was seen."""

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
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False)

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
