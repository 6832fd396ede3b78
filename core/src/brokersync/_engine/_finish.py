"""Finishing a sync: the result, the audit row, the connection's status and the lease, in one transaction.

A failure is classified and redacted before it is stored; an auth failure marks the connection
``needs_reauth``. If recording fails (the database may be what failed), ``_start`` still gives
the lease back.
"""

from __future__ import annotations

import json
import time
from typing import Any

from brokersync._engine._context import RunContext
from brokersync._engine._job import JobOutcome
from brokersync._engine._parts import EngineParts
from brokersync._redact import redact
from brokersync._store import warnings_json
from brokersync.errors import ErrorType, classify_error
from brokersync.results import ConnectionStatus, RunStatus, SyncResult

__all__ = ["record_failure", "record_interrupted", "record_success"]


def _result(
    parts: EngineParts,
    ctx: RunContext,
    status: RunStatus,
    outcome: JobOutcome | None,
    error: BaseException | None = None,
) -> SyncResult:
    metrics = ctx.metrics
    return SyncResult(
        connection_id=ctx.row.id,
        run_id=ctx.run_id,
        broker=ctx.row.broker,
        trigger=ctx.trigger,
        status=status,
        started_at=ctx.started_at,
        finished_at=parts.clock(),
        imported=outcome.counts.imported if outcome else 0,
        skipped=outcome.counts.skipped if outcome else 0,
        updated=outcome.counts.updated if outcome else 0,
        cancelled=outcome.cancelled if outcome else 0,
        errors=outcome.errors if outcome else (),
        error_count=outcome.error_count if outcome else 0,
        duration_ms=int((time.perf_counter() - ctx.perf_start) * 1000),
        requests=metrics.requests,
        retries=metrics.retries,
        rate_limit_waits=metrics.rate_limit_waits,
        rate_limit_wait_seconds=metrics.rate_limit_wait_seconds,
        accounts=outcome.accounts if outcome else 0,
        error=classify_error(error) if error is not None else None,
        warnings=outcome.warnings if outcome else (),
        warning_count=outcome.warning_count if outcome else 0,
    )


async def _finish(
    parts: EngineParts, ctx: RunContext, result: SyncResult, *, error_type: str | None, error_message: str | None
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
        "warnings": warnings_json(result.warnings, result.warning_count),
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
    await parts.store.finish_sync(ctx.run_id, run_values, ctx.row.id, values, holder=parts.holder)
    ctx.lease.released = True


async def record_success(parts: EngineParts, ctx: RunContext, outcome: JobOutcome) -> SyncResult:
    """Record a finished run (``partial`` when records were invalid) and return its result."""
    status = RunStatus.PARTIAL if outcome.error_count else RunStatus.SUCCEEDED
    result = _result(parts, ctx, status, outcome)
    await _finish(parts, ctx, result, error_type=None, error_message=None)
    return result


async def record_interrupted(
    parts: EngineParts, ctx: RunContext, reason: BaseException, stored: JobOutcome | None
) -> SyncResult:
    """Record a run stopped before it finished (cancelled, Ctrl-C, a stop signal) as ``interrupted``.

    Not a failure of the broker: no error type, and the counts are what the run committed (every
    stored batch stays stored; the next sync continues from the last committed cursor).
    """
    result = _result(parts, ctx, RunStatus.INTERRUPTED, stored)
    why = str(reason).strip()
    by = f" by {why}" if why.startswith("SIG") else ""  # the CLI cancels with the signal's name
    kept = result.imported + result.updated
    message = (
        f"the sync was stopped{by} before it finished; "
        f"the {kept} new or changed trades it stored are kept and the next sync continues from there"
    )
    try:
        await _finish(parts, ctx, result, error_type=None, error_message=redact(message))
    except Exception as exc:  # recorded by the next sync of the connection instead
        parts.log.error("could not record the interrupted run {r}: {e}", r=ctx.run_id, e=type(exc).__name__)  # noqa: TRY400 - no traceback: it may quote SQL with values
    parts.log.warning("sync of connection {c} interrupted: {m}", c=ctx.row.id, m=message)
    return result


async def record_failure(
    parts: EngineParts, ctx: RunContext, error: BaseException, stored: JobOutcome | None = None
) -> SyncResult:
    """Record a failed run (classified, redacted) with what it stored before failing, and return its
    result; never raises a database error."""
    result = _result(parts, ctx, RunStatus.FAILED, stored, error)
    assert result.error is not None
    detail = str(result.error.technical_details.get("message", ""))
    # The user message already quotes our own errors' text; add the technical one only when it says more.
    message = redact(
        result.error.user_message if detail in result.error.user_message else f"{result.error.user_message} {detail}"
    )
    try:
        await _finish(parts, ctx, result, error_type=result.error.type.value, error_message=message[:2000])
    except Exception as exc:  # the database may be what failed; the run stays "running" until the next sync
        parts.log.error("could not record the failed run {r}: {e}", r=ctx.run_id, e=type(exc).__name__)  # noqa: TRY400 - no traceback: it may quote SQL with values
    parts.log.warning("sync of connection {c} failed: {m}", c=ctx.row.id, m=message, error_type=result.error.type.value)
    return result
