"""Running a started sync: open the secrets, make the broker facade, keep the token, run the job.

Every outcome is recorded by :mod:`brokersync._engine._finish` (success, partial, failure,
cancellation) in the transaction that gives the lease back.
"""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError

from brokersync._engine._context import RunContext
from brokersync._engine._finish import record_failure, record_interrupted, record_success
from brokersync._engine._job import JobOutcome, SyncJob
from brokersync._engine._parts import EngineParts
from brokersync._engine._tokens import TokenKeeper
from brokersync._store import wrap_store_errors
from brokersync.models import AuthResult
from brokersync.results import SyncResult

__all__ = ["run_started"]


async def run_started(parts: EngineParts, ctx: RunContext) -> tuple[SyncResult, BaseException | None]:
    """Do the work of a started run and record its outcome: the result, and the error to raise."""
    row = ctx.row
    outcome: JobOutcome | None = None
    job: SyncJob | None = None
    try:
        credentials_data = parts.secrets.open_credentials(row)
        cached = parts.secrets.open_token(row)
        lock = parts.token_locks.for_connection(row.id)
        async with parts.brokers.facade(row.broker, row.environment, row.id, ctx.metrics) as facade:
            credentials = facade.metadata.validate_credentials(credentials_data)

            async def save(auth: AuthResult) -> None:
                await parts.store.update_connection(
                    row.id,
                    token=parts.secrets.seal_token(row.id, auth),
                    token_expires_at=auth.expires_at,
                    updated_at=parts.clock(),
                )

            tokens = TokenKeeper(
                broker=facade,
                credentials=credentials,
                cached=cached,
                save=save,
                lock=lock,
                margin=parts.settings.token_refresh_margin,
                clock=parts.clock,
            )
            job = SyncJob(
                store=parts.store,
                broker=facade,
                tokens=tokens,
                ctx=ctx,
                settings=parts.settings,
                holder=parts.holder,
                clock=parts.clock,
            )
            # What the plugin reports with ctx.warn (and the core with the same context) joins the run.
            facade.context.on_warning = job.warn
            outcome = await job.run()
    except Exception as exc:
        error: BaseException = exc
        if isinstance(exc, SQLAlchemyError):
            error = wrap_store_errors(exc, f"syncing connection {row.id}")
        return await record_failure(parts, ctx, error, job.progress() if job else None), error
    except BaseException as exc:  # cancelled or interrupted: record it with what was stored, then let it propagate
        await record_interrupted(parts, ctx, exc, job.progress() if job else None)
        raise
    return await record_success(parts, ctx, outcome), None
