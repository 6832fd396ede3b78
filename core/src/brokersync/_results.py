"""What the engine's operations return."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import attrs

from brokersync._store._records import ConnectionStatus, RunStatus, SyncTrigger
from brokersync.errors import ErrorClassification
from brokersync.models import Account

__all__ = ["ConnectResult", "EngineStatus", "SyncProgress", "SyncRecordError", "SyncResult"]


@attrs.frozen(kw_only=True)
class ConnectResult:
    """A new (or reconnected) connection and the broker accounts it gives access to."""

    connection_id: str
    user_id: str
    broker: str
    environment: str
    status: ConnectionStatus
    accounts: tuple[Account, ...]


@attrs.frozen(kw_only=True)
class SyncRecordError:
    """A record the broker sent that could not be normalized: counted, reported, never stored."""

    account_id: str
    broker_trade_id: str | None
    reason: str


@attrs.frozen(kw_only=True)
class SyncProgress:
    """Passed to ``on_progress`` after each stored batch; the counts are totals so far in the run."""

    connection_id: str
    account_id: str
    batches: int
    imported: int
    skipped: int
    updated: int
    errors: int
    cancelled: int = 0


@attrs.frozen(kw_only=True)
class SyncResult:
    """The outcome of one sync of one connection (also recorded in the ``sync_runs`` audit row).

    Attributes:
        connection_id: The connection synced.
        run_id: The audit row's id (``None`` when the sync could not start, e.g. already running).
        broker: The broker key.
        trigger: ``manual`` or ``scheduled``.
        status: ``succeeded``, ``partial`` (some records invalid), or ``failed``.
        imported: New trades stored.
        skipped: Trades the broker sent again unchanged (duplicates, not written).
        updated: Stored trades the broker changed (a correction, a close).
        cancelled: Trades the broker cancelled (busted) that got a new tombstone in this run (a
            cancellation reported again counts 0); they leave listings by default.
        errors: The invalid records (up to the engine's ``max_record_errors``), with reasons.
        error_count: How many records were invalid in total.
        duration_ms: Wall time of the run.
        requests: HTTP requests sent to the broker (retries included).
        retries: Requests repeated after a transient failure.
        rate_limit_waits: Times the run waited for a rate limit.
        rate_limit_wait_seconds: Time spent in those waits.
        accounts: How many accounts were synced.
        error: Why the run failed (``None`` unless ``status`` is ``failed``). Holds no secret.
    """

    connection_id: str
    run_id: str | None
    broker: str
    trigger: SyncTrigger
    status: RunStatus
    started_at: dt.datetime
    finished_at: dt.datetime
    imported: int = 0
    skipped: int = 0
    updated: int = 0
    cancelled: int = 0
    errors: tuple[SyncRecordError, ...] = ()
    error_count: int = 0
    duration_ms: int = 0
    requests: int = 0
    retries: int = 0
    rate_limit_waits: int = 0
    rate_limit_wait_seconds: float = 0.0
    accounts: int = 0
    error: ErrorClassification | None = None

    @property
    def ok(self) -> bool:
        """Whether the run finished (possibly with invalid records reported)."""
        return self.status in (RunStatus.SUCCEEDED, RunStatus.PARTIAL)


@attrs.frozen(kw_only=True)
class EngineStatus:
    """A health summary for ``brokersync status``."""

    database: str  # the URL, password hidden
    dialect: str
    schema_revision: str | None
    head_revision: str
    connections: Mapping[str, int]  # status -> count
    trades: int
    active_key_id: str | None
    last_runs: Mapping[str, int]  # status of the most recent run per connection -> count

    @property
    def schema_current(self) -> bool:
        """Whether the database schema is at the revision this brokersync ships."""
        return self.schema_revision == self.head_revision
