"""What brokersync hands back: statuses, stored records and the results of the engine's operations.

Plain frozen records that hold no secret. The store builds them from its rows and the engine
returns them; both import this module, which imports neither.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Awaitable, Mapping
from decimal import Decimal
from typing import Any, Protocol

import attrs

from brokersync._record_source import RecordSource
from brokersync._sync_warning import MAX_WARNINGS, SyncWarning
from brokersync.errors import ErrorClassification
from brokersync.models import Account, Direction, Instrument, Trade

__all__ = [
    "MAX_WARNINGS",
    "AccountInfo",
    "ConnectResult",
    "ConnectionInfo",
    "ConnectionStatus",
    "EngineStatus",
    "ImportProgress",
    "ImportResult",
    "LeaseInfo",
    "ProgressCallback",
    "QueuedSync",
    "RecordSource",
    "RunStatus",
    "StoredCancellation",
    "StoredPosition",
    "StoredTrade",
    "SyncProgress",
    "SyncRecordError",
    "SyncResult",
    "SyncRunInfo",
    "SyncTrigger",
    "SyncWarning",
    "WorkerStats",
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
    IMPORT = "import"  # an export file imported with ``brokersync import`` (one run per file)


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
    """A trade as stored: the normalized fields, where it came from, and when it was seen.

    ``cancelled_at`` and ``cancel_reason`` are set when the broker cancelled (busted) the trade;
    listings leave such trades out unless asked to include them.

    ``source`` says where the trade came from (see :class:`RecordSource`): for a round trip the
    broker reported, its own record's; for a round trip brokersync paired from executions, the
    closing execution's, with the opening execution's in ``opening_source`` (``None`` for a
    reported round trip). Trades listed by the engine carry both; built without them, ``source``
    is read from ``raw``.
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
    source: RecordSource = attrs.field(repr=False)
    opening_source: RecordSource | None = attrs.field(default=None, repr=False)

    @source.default
    def _source_of_raw(self) -> RecordSource:
        return RecordSource.of_raw(self.raw)

    @property
    def is_cancelled(self) -> bool:
        """Whether the broker cancelled this trade (it has a tombstone)."""
        return self.cancelled_at is not None

    def to_trade(self) -> Trade:
        """Return the normalized :class:`~brokersync.Trade`."""
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
    warnings: tuple[SyncWarning, ...] = ()  # the first MAX_WARNINGS data-quality warnings, redacted
    warning_count: int = 0  # every warning of the run, those not kept included


@attrs.frozen(kw_only=True)
class LeaseInfo:
    """Who holds a connection's sync lease (``sync_leases``), and how recently it showed it is alive.

    Attributes:
        connection_id: The connection being synced.
        holder: The process that syncs it (``host:pid:nonce``).
        run_id: Its audit row.
        acquired_at: When it took the lease.
        expires_at: When the lease lapses unless renewed; after that any sync may take it over.
        heartbeat_at: The holder's last renewal (``None`` for a lease taken before brokersync
            recorded heartbeats).
        fresh: Whether the heartbeat is recent enough that the holder is taken to be alive
            (``brokersync unlock`` refuses then).
    """

    connection_id: str
    holder: str
    run_id: str | None
    acquired_at: dt.datetime
    expires_at: dt.datetime
    heartbeat_at: dt.datetime | None
    fresh: bool


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


@attrs.frozen(kw_only=True)
class StoredPosition:
    """One open position of an account, as :meth:`BrokerSync.positions <brokersync.BrokerSync.positions>` lists it.

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
        warnings: The run's first :data:`MAX_WARNINGS` data-quality warnings (redacted); they
            change no status.
        warning_count: How many warnings the run had in total (more than ``len(warnings)`` when
            some were not kept).
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
    warnings: tuple[SyncWarning, ...] = ()
    warning_count: int = 0

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


@attrs.frozen(kw_only=True)
class QueuedSync:
    """A connection's job as the queue holds it.

    Attributes:
        connection_id: The connection (also the job's key).
        status: saq's status: ``queued``, ``active``, ``complete``, ``failed`` or ``aborted``.
        attempts: How many times a worker started it.
        outcome: For a complete job: ``synced``, ``skipped``, ``needs_reauth``, ``not_found`` or
            ``disabled``; otherwise ``None``.
        result: What the worker returned (counts, run id; see :class:`SyncQueue`).
        error: Why the last attempt failed (redacted), if it did.
    """

    connection_id: str
    status: str
    attempts: int
    outcome: str | None = None
    result: Mapping[str, Any] | None = None
    error: str | None = None


@attrs.frozen(kw_only=True)
class WorkerStats:
    """What one worker did before it stopped (counted by this process only)."""

    complete: int
    failed: int
    retried: int
    aborted: int


class ProgressCallback(Protocol):
    """Called (sync or async) with a :class:`SyncProgress` after each stored batch of a sync."""

    def __call__(self, progress: SyncProgress, /) -> Awaitable[None] | None:
        """Receive the totals so far; may be a coroutine function."""


@attrs.frozen(kw_only=True)
class ImportProgress:
    """Passed to ``on_progress`` while a file is imported: ``phase`` is ``check`` (the first pass) or ``store``."""

    file: str
    phase: str
    bytes_done: int
    bytes_total: int


@attrs.frozen(kw_only=True)
class ImportResult:
    """The outcome of importing one export file (also recorded as a ``sync_runs`` row with trigger ``import``).

    Attributes:
        file: The file's name.
        sha256: The SHA-256 of the file (each stored record keeps it, with the line it came from).
        format: The format it was read as (e.g. ``"ibkr-flex-xml"``).
        connection_id: The connection it was imported into.
        broker: The broker key.
        run_id: The audit row (``None`` for a dry run).
        dry_run: Nothing was stored: the counts say what the file holds.
        rows: Valid executions and round trips in the file.
        imported: New round trips stored (executions are paired into round trips first).
        skipped: Records already stored unchanged (a re-import imports nothing).
        updated: Stored records the file changed.
        cancelled: Records the file cancelled.
        problems: The malformed rows, as ``line N: reason`` (at most 100).
        problem_count: How many rows were malformed in total.
        invalid: Records refused by validation, plus the malformed rows.
        accounts: The broker accounts the file holds.
        status: ``succeeded``, or ``partial`` when rows were refused.
    """

    file: str
    sha256: str
    format: str
    connection_id: str
    broker: str
    run_id: str | None
    dry_run: bool
    rows: int
    imported: int = 0
    skipped: int = 0
    updated: int = 0
    cancelled: int = 0
    problems: tuple[str, ...] = ()
    problem_count: int = 0
    invalid: int = 0
    accounts: tuple[str, ...] = ()
    status: RunStatus | None = None
