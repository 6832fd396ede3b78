"""``brokersync worker`` and ``brokersync enqueue``: sync jobs on a Redis queue (the ``queue`` extra)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from brokersync._cli._engine import base_url_option, base_urls

if TYPE_CHECKING:
    from brokersync._engine import BrokerSync
    from brokersync._queue import SyncQueue

T = TypeVar("T")


def _require_queue_extra() -> None:
    try:
        import redis.asyncio  # noqa: F401
        import saq  # noqa: F401
    except ImportError:
        click.echo("Error: the job queue needs saq: pip install 'brokersync[queue]'", err=True)
        raise SystemExit(2) from None


def _queue_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option(
        "--database-url",
        envvar="BROKERSYNC_DATABASE_URL",
        help="Database URL (default: a SQLite file in the data directory). Env: BROKERSYNC_DATABASE_URL.",
    )(func)
    func = click.option(
        "--queue-name",
        default="brokersync",
        show_default=True,
        help="The queue's name in Redis (deployments sharing one Redis use different names).",
    )(func)
    return click.option(
        "--queue-url",
        envvar="BROKERSYNC_QUEUE_URL",
        help="Redis URL of the job queue, e.g. redis://localhost:6379/0. Env: BROKERSYNC_QUEUE_URL.",
    )(func)


def _run(
    work: Callable[[SyncQueue, BrokerSync], Awaitable[T]],
    *,
    queue_url: str | None,
    queue_name: str,
    database_url: str | None,
    limiter_url: str | None = None,
    base_urls: dict[str, str] | None = None,
) -> T:
    from redis.exceptions import RedisError

    from brokersync._engine import BrokerSync
    from brokersync._queue import SyncQueue
    from brokersync.errors import BrokerSyncError, ConfigurationError, ConnectionNotFoundError, VaultError

    async def main() -> T:
        queue = SyncQueue(queue_url or None, name=queue_name)
        try:
            async with BrokerSync(database_url or None, redis_url=limiter_url, base_urls=base_urls) as engine:
                return await work(queue, engine)
        finally:
            await queue.aclose()

    try:
        return asyncio.run(main())
    except (ConfigurationError, ConnectionNotFoundError, VaultError) as exc:
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(2) from None
    except BrokerSyncError as exc:
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(1) from None
    except (RedisError, OSError) as exc:  # only the type: redis-py's messages name the host
        click.echo(f"Error: the job queue's Redis cannot be reached ({type(exc).__name__})", err=True)
        raise SystemExit(1) from None


@click.command()
@_queue_options
@click.option("--concurrency", type=click.IntRange(min=1), default=4, show_default=True, help="Jobs run at once.")
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="On SIGINT/SIGTERM, seconds to let jobs in flight finish before they are cancelled and requeued.",
)
@click.option("--burst", is_flag=True, help="Exit once the queue is empty (status 1 if a job failed).")
@click.option(
    "--limiter-url",
    help="Redis for the rate limits every worker shares (default: the queue's Redis).",
)
@click.option("--local-limits", is_flag=True, help="Keep rate limits in this process instead of Redis.")
@base_url_option
@click.option("--json", "as_json", is_flag=True, help="Print the final job counts as JSON.")
def worker(
    queue_url: str | None,
    queue_name: str,
    database_url: str | None,
    concurrency: int,
    grace: float,
    burst: bool,
    limiter_url: str | None,
    local_limits: bool,
    base_url_specs: tuple[str, ...],
    as_json: bool,
) -> None:
    """Run queued sync jobs (one per connection) until SIGINT/SIGTERM.

    Start as many workers as you like, on any machine that reaches the database and Redis: each
    connection is synced by one of them at a time, and they share the brokers' rate limits. A stop
    signal lets jobs in flight finish (up to --grace seconds), then cancels them: their open batch
    rolls back, the connection's lease is released and the job goes back on the queue.
    """
    _require_queue_extra()
    urls = base_urls(base_url_specs)
    if local_limits and limiter_url:
        raise click.UsageError("give --limiter-url or --local-limits, not both")

    async def work(queue: SyncQueue, engine: BrokerSync) -> Any:
        if not as_json:
            click.echo(f"worker started on queue {queue.name!r}: {concurrency} at once; Ctrl-C or SIGTERM stops it")
        return await queue.run_worker(engine, concurrency=concurrency, grace=grace, burst=burst)

    from brokersync._queue import QUEUE_URL_ENV

    shared = None if local_limits else (limiter_url or queue_url or os.environ.get(QUEUE_URL_ENV) or None)
    stats = _run(
        work,
        queue_url=queue_url,
        queue_name=queue_name,
        database_url=database_url,
        limiter_url=shared,
        base_urls=urls,
    )
    if as_json:
        click.echo(
            json.dumps(
                {"complete": stats.complete, "failed": stats.failed, "retried": stats.retried, "aborted": stats.aborted}
            )
        )
    else:
        click.echo(
            f"worker stopped: {stats.complete} complete, {stats.failed} failed, "
            f"{stats.retried} retried, {stats.aborted} aborted"
        )
    if burst and stats.failed:
        raise SystemExit(1)


@click.command()
@click.argument("connection_ids", nargs=-1, metavar="[CONNECTION_ID]...")
@click.option("--all", "enqueue_all", is_flag=True, help="Queue every active connection.")
@_queue_options
@click.option(
    "--json", "as_json", is_flag=True, help="Print JSON: connection id -> queued now (false: already queued)."
)
def enqueue(
    connection_ids: tuple[str, ...],
    enqueue_all: bool,
    queue_url: str | None,
    queue_name: str,
    database_url: str | None,
    as_json: bool,
) -> None:
    """Queue a sync of the given connections, or of every active one with --all.

    A connection whose job is already queued or running is not queued twice. Run this from cron (or
    any scheduler) and `brokersync worker` processes do the syncing.
    """
    _require_queue_extra()
    if bool(connection_ids) == enqueue_all:
        raise click.UsageError("give CONNECTION_ID(s) or --all")

    async def work(queue: SyncQueue, engine: BrokerSync) -> dict[str, bool]:
        if enqueue_all:
            return await queue.enqueue_all(engine)
        from brokersync._cli._engine import resolve_connection

        owners = {c.id: c.user_id for c in await engine.list_connections()}
        full_ids = [await resolve_connection(engine, c, None) for c in connection_ids]
        return {c: await queue.enqueue(c, owners[c]) for c in full_ids}

    outcome = _run(work, queue_url=queue_url, queue_name=queue_name, database_url=database_url)
    if as_json:
        click.echo(json.dumps(outcome))
        return
    for connection_id, queued in outcome.items():
        click.echo(f"{connection_id}: {'queued' if queued else 'already queued or running'}")
    click.echo(f"{sum(outcome.values())} queued, {len(outcome) - sum(outcome.values())} already queued")
