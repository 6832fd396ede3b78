"""``brokersync scheduler``: sync on an interval in the foreground until SIGINT/SIGTERM/SIGHUP."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import TYPE_CHECKING, Any

import click

from brokersync._cli._engine import base_url_option, base_urls, parse_pairs
from brokersync._cli._signals import lease_ttl_option

if TYPE_CHECKING:
    from brokersync._engine import BrokerSync
    from brokersync._scheduler import ConnectionSchedule, ScheduledRun


def _describe(run: ScheduledRun) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%H:%M:%S")
    if run.abandoned:
        return f"{stamp} {run.job}: abandoned at shutdown (its lease was released)"
    if run.error is not None:
        return f"{stamp} {run.job}: not synced: {run.error.technical_details.get('message', run.error.user_message)}"
    failed = [r for r in run.results if not r.ok]
    text = (
        f"{stamp} {run.job}: {len(run.results)} synced ({len(failed)} failed), "
        f"{sum(r.imported for r in run.results)} imported, {sum(r.updated for r in run.results)} updated, "
        f"{sum(r.skipped for r in run.results)} unchanged, {sum(r.retries for r in run.results)} retries"
    )
    for result in failed:
        message = result.error.user_message if result.error else "failed"
        text += f"\n  {result.connection_id} ({result.broker}): {message}"
    return text


def _as_json(run: ScheduledRun) -> str:
    return json.dumps(
        {
            "job": run.job,
            "abandoned": run.abandoned,
            "error": run.error.user_message if run.error else None,
            "results": [
                {
                    "connection_id": r.connection_id,
                    "status": r.status.value,
                    "imported": r.imported,
                    "updated": r.updated,
                    "skipped": r.skipped,
                    "errors": r.error_count,
                    "retries": r.retries,
                    "rate_limit_waits": r.rate_limit_waits,
                    "duration_ms": r.duration_ms,
                }
                for r in run.results
            ],
        }
    )


async def _schedules(engine: BrokerSync, specs: list[tuple[str, str]]) -> list[ConnectionSchedule]:
    from brokersync._cli._engine import resolve_connection
    from brokersync._scheduler import ConnectionSchedule
    from brokersync.errors import BrokerSyncError

    owners = {c.id: c.user_id for c in await engine.list_connections()}
    schedules = []
    for given, seconds in specs:
        try:
            connection_id = await resolve_connection(engine, given, None)
        except BrokerSyncError as exc:
            raise click.BadParameter(str(exc), param_hint="--connection") from None
        try:
            schedules.append(
                ConnectionSchedule(connection_id=connection_id, user_id=owners[connection_id], interval=float(seconds))
            )
        except ValueError as exc:
            raise click.BadParameter(f"{connection_id}={seconds}: {exc}", param_hint="--connection") from None
    return schedules


@click.command()
@click.option(
    "--database-url",
    envvar="BROKERSYNC_DATABASE_URL",
    help="Database URL (default: a SQLite file in the data directory). Env: BROKERSYNC_DATABASE_URL.",
)
@click.option(
    "--interval",
    type=float,
    default=300.0,
    show_default=True,
    help="Seconds between syncs of every active connection; 0 turns that off (use --connection).",
)
@click.option(
    "--connection",
    "connection_specs",
    multiple=True,
    metavar="ID=SECONDS",
    help="Also sync this connection on its own interval (repeatable).",
)
@click.option("--concurrency", type=click.IntRange(min=1), help="Connections synced at once (default: the engine's).")
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="On SIGINT/SIGTERM/SIGHUP, seconds to let syncs in flight finish before abandoning them.",
)
@click.option(
    "--once", is_flag=True, help="Run every job once, then exit (status 1 if a sync failed or was abandoned)."
)
@lease_ttl_option
@base_url_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per run.")
def scheduler(
    database_url: str | None,
    interval: float,
    connection_specs: tuple[str, ...],
    concurrency: int | None,
    grace: float,
    once: bool,
    lease_ttl: dt.timedelta | None,
    base_url_specs: tuple[str, ...],
    as_json: bool,
) -> None:
    """Sync every active connection on an interval, in this process, until SIGINT/SIGTERM/SIGHUP.

    A stop signal lets syncs in flight finish (up to --grace seconds); a second one abandons them.
    Abandoned syncs roll back their open batch and release their connection, so another process
    can take over at once.
    """
    specs = parse_pairs(connection_specs, "--connection", "ID=SECONDS")
    urls = base_urls(base_url_specs)
    if interval < 0:
        raise click.BadParameter("must be >= 0", param_hint="--interval")
    if interval == 0 and not specs:
        raise click.UsageError("nothing to schedule: give --interval > 0 or at least one --connection ID=SECONDS")

    from brokersync._engine import BrokerSync
    from brokersync._scheduler import Scheduler
    from brokersync.errors import BrokerSyncError, ConfigurationError, VaultError

    def report(run: ScheduledRun) -> None:
        click.echo(_as_json(run) if as_json else _describe(run))

    async def main() -> Any:
        async with BrokerSync(database_url or None, base_urls=urls, lease_ttl=lease_ttl) as engine:
            schedules = await _schedules(engine, specs)
            runner = Scheduler(
                engine,
                interval=interval or None,
                schedules=schedules,
                concurrency=concurrency,
                grace=grace,
                on_run=report,
            )
            remove = runner.install_signal_handlers()
            try:
                if not as_json:
                    every = f"every {interval:g} s" if interval else "on per-connection schedules only"
                    click.echo(f"scheduler started: all active connections {every}; Ctrl-C or SIGTERM stops it")
                stats = await runner.run(max_runs=len(schedules) + (1 if interval else 0) if once else None)
            finally:
                remove()
            return stats

    try:
        stats = asyncio.run(main())
    except (ConfigurationError, VaultError) as exc:
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(2) from None
    except BrokerSyncError as exc:
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(1) from None
    if not as_json:
        click.echo(
            f"scheduler stopped: {stats.runs} runs, {stats.syncs} syncs ({stats.failed_syncs} failed), "
            f"{stats.imported} imported, {stats.updated} updated, {stats.abandoned} abandoned"
        )
    if once and (stats.failed_syncs or stats.run_errors or stats.abandoned):
        raise SystemExit(1)
