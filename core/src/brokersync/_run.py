"""The bookkeeping of one sync run: lease, audit row, outcome, connection status.

:class:`SyncRunner` wraps a :class:`~brokersync._sync.SyncJob` (the work) for
:class:`~brokersync.BrokerSync` (the API): it takes the connection's lease, opens the audit row
(committed at once with the lease, so a crash leaves a trace that the next run marks
``interrupted``), runs the job, records success or failure (classified, redacted) and marks the
connection ``needs_reauth`` on an auth failure in the same transaction that gives the lease back
(and if recording fails, still gives the lease back).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy.exc import SQLAlchemyError

from brokersync._redact import redact
from brokersync._results import SyncResult
from brokersync._store import ConnectionStatus, RunStatus, SyncTrigger, wrap_store_errors
from brokersync._sync import JobOutcome, ProgressCallback, SyncJob, TokenKeeper
from brokersync.errors import (
    BrokerSyncError,
    ErrorType,
    NeedsReauthError,
    SyncError,
    SyncInProgressError,
    classify_error,
)
from brokersync.models import AuthResult

if TYPE_CHECKING:
    from brokersync._engine import BrokerSync
    from brokersync._metrics import RequestMetrics
    from brokersync._store import ConnectionInfo, ConnectionRow

__all__ = ["SyncRunner"]


def _run_id() -> str:
    # Time-ordered (nanoseconds, then random): runs sort newest first even within one clock tick.
    return f"{time.time_ns():016x}-{uuid.uuid4().hex[:19]}"


@attrs.define
class _Lease:
    released: bool = False  # set once the run's final transaction gave the lease back


class SyncRunner:
    """Runs syncs for one engine (see the module docstring)."""

    def __init__(self, engine: BrokerSync) -> None:
        self._engine = engine

    async def sync(
        self,
        connection_id: str,
        user_id: str,
        trigger: SyncTrigger,
        since: dt.datetime | None,
        on_progress: ProgressCallback | None,
    ) -> tuple[SyncResult, BaseException | None]:
        if since is not None and (since.tzinfo is None or since.utcoffset() is None):
            raise ValueError("since must be a timezone-aware datetime")
        row = await self._engine._own_row(connection_id, user_id)
        if row.status == ConnectionStatus.NEEDS_REAUTH.value:
            raise NeedsReauthError(
                f"connection {connection_id} ({row.broker}) needs new credentials: reconnect it before syncing"
            )
        if row.status == ConnectionStatus.DISABLED.value:
            raise SyncError(f"connection {connection_id} ({row.broker}) is disconnected: reconnect it to sync again")
        run_id = _run_id()
        started_at = self._engine._clock()
        # Lease, stale-run check and the audit row in one transaction (one commit, not three).
        if not await self._engine._store.begin_run(
            connection_id,
            holder=self._engine.holder,
            run_id=run_id,
            now=started_at,
            ttl=self._engine.settings.lease_ttl,
            run={
                "id": run_id,
                "connection_id": connection_id,
                "user_id": row.user_id,
                "broker": row.broker,
                "trigger": trigger.value,
                "status": RunStatus.RUNNING.value,
                "started_at": started_at,
                "imported": 0,
                "skipped": 0,
                "updated": 0,
                "cancelled": 0,
                "error_count": 0,
                "retries": 0,
                "rate_limit_waits": 0,
                "rate_limit_wait_ms": 0,
                "holder": self._engine.holder,
            },
        ):
            current = await self._engine._store.lease_holder(connection_id)
            who = f" by {current[0]} (lease until {current[1].isoformat()})" if current else ""
            raise SyncInProgressError(f"connection {connection_id} is already being synced{who}; try again later")
        lease = _Lease()
        try:
            return await self._run(row, run_id, trigger, since, started_at, on_progress, lease)
        finally:
            if not lease.released:  # the run's outcome could not be recorded: still give the lease back
                try:
                    await self._engine._store.release_lease(connection_id, holder=self._engine.holder)
                except SQLAlchemyError as exc:  # the lease expires by itself; do not hide the run's outcome
                    self._engine._log.warning(
                        "could not release the lease of {c}: {e}", c=connection_id, e=type(exc).__name__
                    )

    async def sync_each(
        self, infos: Sequence[ConnectionInfo], *, concurrency: int, on_progress: ProgressCallback | None = None
    ) -> list[SyncResult]:
        """Scheduled (incremental) syncs of ``infos``, at most ``concurrency`` at once, one result
        each in order: a connection that fails, or cannot start (already running), never stops the
        others; its result has ``status == "failed"`` and the ``error``."""
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        gate = asyncio.Semaphore(concurrency)
        clock = self._engine._clock

        async def one(info: ConnectionInfo) -> SyncResult:
            async with gate:
                started = clock()
                try:
                    result, _error = await self.sync(info.id, info.user_id, SyncTrigger.SCHEDULED, None, on_progress)
                except (BrokerSyncError, SQLAlchemyError, OSError) as exc:
                    error = wrap_store_errors(exc, "syncing") if isinstance(exc, SQLAlchemyError) else exc
                    return SyncResult(
                        connection_id=info.id,
                        run_id=None,
                        broker=info.broker,
                        trigger=SyncTrigger.SCHEDULED,
                        status=RunStatus.FAILED,
                        started_at=started,
                        finished_at=clock(),
                        error=classify_error(error),
                    )
                return result

        return list(await asyncio.gather(*(one(info) for info in infos)))

    async def _run(
        self,
        row: ConnectionRow,
        run_id: str,
        trigger: SyncTrigger,
        since: dt.datetime | None,
        started_at: dt.datetime,
        on_progress: ProgressCallback | None,
        lease: _Lease,
    ) -> tuple[SyncResult, BaseException | None]:
        from brokersync._metrics import RequestMetrics

        connection_id = row.id
        perf = time.perf_counter()
        metrics = RequestMetrics()
        lock = self._engine._token_locks.setdefault(connection_id, asyncio.Lock())
        outcome: JobOutcome | None = None
        try:
            credentials_data = self._engine._open_credentials(row)
            cached = self._engine._open_token(row)
            async with self._engine._broker(row.broker, row.environment, connection_id, metrics) as facade:
                credentials = facade.metadata.validate_credentials(credentials_data)

                async def save(auth: AuthResult) -> None:
                    await self._engine._store.update_connection(
                        connection_id,
                        token=self._engine._seal_token(connection_id, auth),
                        token_expires_at=auth.expires_at,
                        updated_at=self._engine._clock(),
                    )

                tokens = TokenKeeper(
                    broker=facade,
                    credentials=credentials,
                    cached=cached,
                    save=save,
                    lock=lock,
                    margin=self._engine.settings.token_refresh_margin,
                    clock=self._engine._clock,
                )
                job = SyncJob(
                    store=self._engine._store,
                    broker=facade,
                    tokens=tokens,
                    connection_id=connection_id,
                    trigger=trigger,
                    since=since,
                    started_at=started_at,
                    lookback=self._engine.settings.lookback,
                    settle=self._engine.settings.settle,
                    lease=(self._engine.holder, self._engine.settings.lease_ttl),
                    clock=self._engine._clock,
                    on_progress=on_progress,
                    max_record_errors=self._engine.settings.max_record_errors,
                )
                outcome = await job.run()
        except Exception as exc:
            error: BaseException = exc
            if isinstance(exc, SQLAlchemyError):
                error = wrap_store_errors(exc, f"syncing connection {connection_id}")
            return await self._record_failure(row, run_id, trigger, started_at, perf, metrics, error, lease), error
        except BaseException as exc:  # cancelled or interrupted: record it, then let it propagate
            await self._record_failure(row, run_id, trigger, started_at, perf, metrics, exc, lease)
            raise
        status = RunStatus.PARTIAL if outcome.error_count else RunStatus.SUCCEEDED
        result = self._result(row, run_id, trigger, started_at, perf, metrics, status, outcome)
        await self._finish(row, result, lease, error_type=None, error_message=None)
        return result, None

    def _result(
        self,
        row: ConnectionRow,
        run_id: str,
        trigger: SyncTrigger,
        started_at: dt.datetime,
        perf: float,
        metrics: RequestMetrics,
        status: RunStatus,
        outcome: JobOutcome | None,
        error: BaseException | None = None,
    ) -> SyncResult:
        return SyncResult(
            connection_id=row.id,
            run_id=run_id,
            broker=row.broker,
            trigger=trigger,
            status=status,
            started_at=started_at,
            finished_at=self._engine._clock(),
            imported=outcome.counts.imported if outcome else 0,
            skipped=outcome.counts.skipped if outcome else 0,
            updated=outcome.counts.updated if outcome else 0,
            cancelled=outcome.cancelled if outcome else 0,
            errors=outcome.errors if outcome else (),
            error_count=outcome.error_count if outcome else 0,
            duration_ms=int((time.perf_counter() - perf) * 1000),
            requests=metrics.requests,
            retries=metrics.retries,
            rate_limit_waits=metrics.rate_limit_waits,
            rate_limit_wait_seconds=metrics.rate_limit_wait_seconds,
            accounts=outcome.accounts if outcome else 0,
            error=classify_error(error) if error is not None else None,
        )

    async def _finish(
        self,
        row: ConnectionRow,
        result: SyncResult,
        lease: _Lease,
        *,
        error_type: str | None,
        error_message: str | None,
    ) -> None:
        record_errors = [
            {"account_id": e.account_id, "broker_trade_id": e.broker_trade_id, "reason": redact(e.reason)}
            for e in result.errors
        ]
        run_values = {
            "status": result.status.value,
            "finished_at": result.finished_at,
            "duration_ms": result.duration_ms,
            "imported": result.imported,
            "skipped": result.skipped,
            "updated": result.updated,
            "cancelled": result.cancelled,
            "error_count": result.error_count,
            "requests": result.requests,
            "retries": result.retries,
            "rate_limit_waits": result.rate_limit_waits,
            "rate_limit_wait_ms": int(result.rate_limit_wait_seconds * 1000),
            "error_type": error_type,
            "error_message": error_message,
            "record_errors": json.dumps(record_errors) if record_errors else None,
        }
        values: dict[str, Any] = {
            "last_sync_at": result.finished_at,
            "last_sync_status": result.status.value,
            "last_error": error_message,
            "updated_at": result.finished_at,
        }
        if error_type == ErrorType.AUTH.value:
            values["status"] = ConnectionStatus.NEEDS_REAUTH.value
        # Audit row, connection status and lease release in one transaction (one commit, not three).
        await self._engine._store.finish_sync(
            str(result.run_id), run_values, row.id, values, holder=self._engine.holder
        )
        lease.released = True

    async def _record_failure(
        self,
        row: ConnectionRow,
        run_id: str,
        trigger: SyncTrigger,
        started_at: dt.datetime,
        perf: float,
        metrics: RequestMetrics,
        error: BaseException,
        lease: _Lease,
    ) -> SyncResult:
        result = self._result(row, run_id, trigger, started_at, perf, metrics, RunStatus.FAILED, None, error)
        assert result.error is not None
        detail = str(result.error.technical_details.get("message", ""))
        # The user message already quotes our own errors' text; add the technical one only when it says more.
        message = redact(
            result.error.user_message
            if detail in result.error.user_message
            else f"{result.error.user_message} {detail}"
        )
        try:
            await self._finish(row, result, lease, error_type=result.error.type.value, error_message=message[:2000])
        except Exception as exc:  # the database may be what failed; the run stays "running" until the next sync
            self._engine._log.error("could not record the failed run {r}: {e}", r=run_id, e=type(exc).__name__)
        self._engine._log.warning(
            "sync of connection {c} failed: {m}", c=row.id, m=message, error_type=result.error.type.value
        )
        return result
