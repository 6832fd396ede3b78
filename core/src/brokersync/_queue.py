"""Scale-out: sync jobs on a saq queue in Redis, run by ``brokersync worker`` processes anywhere.

:class:`SyncQueue` puts one job per connection on the queue, with the **job key = the connection
id**: while a connection's job is queued or running, enqueueing it again is a no-op (saq refuses a
second job with a live key), so a cron tick that enqueues every active connection cannot pile up
work behind a slow broker. A job's payload is ids only (connection id, user id): credentials stay
encrypted in the database, where the worker's engine reads them.

A worker runs ``engine.sync_broker_trades(connection_id, user_id, trigger="scheduled")`` per job
and maps what happened to the job's outcome:

==========================  ================================================================
what happened               job
==========================  ================================================================
sync succeeded / partial    complete, ``outcome="synced"`` with the run's counts
lease held elsewhere        complete, ``outcome="skipped"``: another process is syncing it
needs re-authentication     complete, ``outcome="needs_reauth"``: no retry, the user must act
                            (also when the broker rejects the stored credentials in this run)
connection gone / disabled  complete, ``outcome="not_found"`` / ``"disabled"``
retryable failure           retried by saq up to ``retries`` attempts, exponential backoff with
                            jitter capped at ``max_retry_delay`` (a broker's ``Retry-After``
                            raises the delay); network, timeout, 429, 5xx, database errors
anything else               failed at once, no retry
worker stopped mid-job      the sync is cancelled (its open batch rolls back, the lease is
                            released), the job goes back on the queue for another worker
==========================  ================================================================

Job results and errors hold counts, ids and redacted classified messages: never a credential or
token. The store lease still guarantees one sync per connection across every process; the queue
only avoids wasted work. Only Redis queues are supported (saq's PostgreSQL queue needs psycopg,
which brokersync does not depend on).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from brokersync._log import get_logger
from brokersync._redact import redact
from brokersync.errors import (
    BrokerAuthError,
    BrokerSyncError,
    ConfigurationError,
    ConnectionNotFoundError,
    NeedsReauthError,
    SyncError,
    SyncInProgressError,
    SyncQueueError,
    classify_error,
)
from brokersync.results import QueuedSync, WorkerStats

if TYPE_CHECKING:
    import saq
    from saq.queue.redis import RedisQueue
    from saq.types import Context, PartialTimersDict

    from brokersync._engine import BrokerSync
    from brokersync.results import SyncResult

__all__ = ["QUEUE_URL_ENV", "QueuedSync", "SyncQueue", "WorkerStats"]

#: The environment variable naming the queue's Redis server.
QUEUE_URL_ENV = "BROKERSYNC_QUEUE_URL"
#: The name workers look the job function up by (stable across brokersync versions).
JOB_FUNCTION = "brokersync.sync_connection"
INSTALL_HINT = "pip install 'brokersync[queue]'"


def _require_saq() -> None:
    try:
        import saq  # noqa: F401
        from saq.queue.redis import RedisQueue  # noqa: F401
    except ImportError:
        raise ConfigurationError(f"the job queue needs saq and redis: {INSTALL_HINT}") from None


def _queue_url(url: str | None) -> str:
    url = url or os.environ.get(QUEUE_URL_ENV) or None
    if url is None:
        raise ConfigurationError(
            f"no job queue configured: set {QUEUE_URL_ENV} to a Redis URL (e.g. redis://localhost:6379/0)"
        )
    scheme = url.partition("://")[0].lower()
    if scheme in ("redis", "rediss", "unix"):
        return url
    if scheme.startswith("postgres"):
        raise ConfigurationError(
            f"{QUEUE_URL_ENV} must be a Redis URL: brokersync's job queue runs on Redis "
            "(saq's PostgreSQL queue needs psycopg, which brokersync does not install)"
        )
    raise ConfigurationError(f"{QUEUE_URL_ENV} must be a redis://, rediss:// or unix:// URL, got {scheme!r}://...")


def _positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} number, got {value!r}")


#: Seconds a worker pauses after failing to reach Redis, instead of retrying in a tight loop.
OUTAGE_PAUSE = 1.0


@functools.cache
def _queue_class() -> type[RedisQueue]:
    from redis.exceptions import RedisError
    from saq.queue.redis import RedisQueue

    class Queue(RedisQueue):
        """saq's Redis queue; a failed dequeue pauses before saq's worker loop tries again at once."""

        async def dequeue(self, timeout: float = 0.0, poll_interval: float = 0.0) -> saq.Job | None:
            try:
                return await super().dequeue(timeout, poll_interval)
            except (RedisError, OSError) as exc:
                get_logger(component="queue").warning(
                    "the job queue's Redis cannot be reached ({error}); retrying", error=type(exc).__name__
                )
                await asyncio.sleep(OUTAGE_PAUSE)
                raise

    return Queue


@functools.cache
def _worker_class() -> type[saq.Worker[Context]]:
    import saq

    class Worker(saq.Worker["Context"]):
        """saq's worker with two changes to its housekeeping loops.

        A stop cancels them instead of waiting out their sleeps (up to a minute). The first sweep
        (taking back jobs of dead workers) runs one period after start, not at once: at start it
        would race this worker's first dequeue, see a job not yet marked active, and run it twice.
        """

        async def upkeep(self) -> list[asyncio.Task[None]]:
            async def every(seconds: float, action: Callable[[], Awaitable[object]], *, delay: bool) -> None:
                if delay:
                    await asyncio.sleep(seconds)
                while not self.event.is_set():
                    try:
                        await action()
                    except Exception:  # saq's loops log and carry on, so do these
                        get_logger(component="queue").opt(exception=True).warning("queue housekeeping failed")
                    await asyncio.sleep(seconds)

            timers = self.timers
            return [
                asyncio.create_task(every(timers["abort"], lambda: self.abort(timers["abort"]), delay=False)),
                asyncio.create_task(every(timers["schedule"], self.schedule, delay=False)),
                asyncio.create_task(every(timers["sweep"], lambda: self.queue.sweep(timers["sweep"]), delay=True)),
                asyncio.create_task(
                    every(timers["worker_info"], lambda: self.worker_info(timers["worker_info"] + 1), delay=False)
                ),
            ]

        async def stop(self) -> None:
            self.event.set()
            upkeep = [task for task in self.tasks if task.get_name() != "process"]
            for task in upkeep:
                task.cancel()
                self.tasks.discard(task)
            await asyncio.gather(*upkeep, return_exceptions=True)
            await super().stop()

    return Worker


def _synced(result: SyncResult) -> dict[str, Any]:
    return {
        "outcome": "synced",
        "connection_id": result.connection_id,
        "run_id": result.run_id,
        "broker": result.broker,
        "status": result.status.value,
        "imported": result.imported,
        "skipped": result.skipped,
        "updated": result.updated,
        "cancelled": result.cancelled,
        "error_count": result.error_count,
        "warning_count": result.warning_count,
        "accounts": result.accounts,
        "requests": result.requests,
        "retries": result.retries,
        "rate_limit_waits": result.rate_limit_waits,
        "duration_ms": result.duration_ms,
    }


def _not_synced(outcome: str, connection_id: str, exc: BaseException) -> dict[str, Any]:
    return {"outcome": outcome, "connection_id": connection_id, "reason": redact(str(exc))[:500]}


class SyncQueue:
    """A saq job queue on Redis holding one sync job per connection (see the module docstring).

    Args:
        url: The queue's Redis URL; default ``BROKERSYNC_QUEUE_URL``.
        name: The queue's name (several deployments can share one Redis under different names).
        retries: Attempts per job in all, the first included (retryable failures only).
        retry_delay: Seconds before the first retry; doubled per attempt, with jitter.
        max_retry_delay: Cap on the retry delay in seconds.
        job_timeout: A job running longer than this many seconds is cancelled and retried.
        heartbeat: A running job reports every ``heartbeat / 3`` s; one silent for ``heartbeat`` s
            (its worker died) is taken back and retried by the next worker's sweep.
        result_ttl: Seconds a finished job (and its result) stays readable with :meth:`job`.

    Methods that talk to Redis raise redis-py's ``redis.exceptions.ConnectionError`` when it cannot
    be reached (a running worker instead logs, pauses and keeps trying).

    Raises:
        ConfigurationError: No URL, a URL that is not Redis, or saq is not installed.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        name: str = "brokersync",
        retries: int = 3,
        retry_delay: float = 30.0,
        max_retry_delay: float = 600.0,
        job_timeout: float = 6 * 3600.0,
        heartbeat: float = 60.0,
        result_ttl: float = 24 * 3600.0,
    ) -> None:
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 1:
            raise ValueError(f"retries must be at least 1 (the first attempt), got {retries!r}")
        _positive("retry_delay", retry_delay, allow_zero=True)
        _positive("max_retry_delay", max_retry_delay, allow_zero=True)
        _positive("job_timeout", job_timeout)
        _positive("heartbeat", heartbeat)
        _positive("result_ttl", result_ttl)
        if not name or not isinstance(name, str):
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        self.url = _queue_url(url)
        _require_saq()
        self.name = name
        self.retries = retries
        self.retry_delay = float(retry_delay)
        self.max_retry_delay = float(max_retry_delay)
        self.job_timeout = max(1, round(job_timeout))
        self.heartbeat = max(1, round(heartbeat))
        self.result_ttl = max(1, round(result_ttl))
        self.queue: RedisQueue = _queue_class().from_url(self.url, name=name)
        self._log = get_logger(component="queue")
        self._connected = False

    def __repr__(self) -> str:  # the URL may carry a Redis password: show only the queue's name
        return f"SyncQueue(name={self.name!r})"

    async def __aenter__(self) -> SyncQueue:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def connect(self) -> None:
        """Bind the queue to the running event loop (done by every method on first use)."""
        if not self._connected:
            await self.queue.connect()
            self._connected = True

    async def aclose(self) -> None:
        """Close the queue's Redis connections."""
        if not self._connected:
            return  # nothing was opened (every method connects first)
        await self.queue.disconnect()
        self._connected = False

    # -- producers ---------------------------------------------------------------------------------

    async def enqueue(self, connection_id: str, user_id: str) -> bool:
        """Queue a scheduled sync of one connection.

        Args:
            connection_id: The connection (the job's key).
            user_id: Its owner (the worker checks the connection belongs to this user).

        Returns:
            ``True`` if a job was queued; ``False`` if this connection already has a job queued or
            running (nothing changes).
        """
        for what, value in (("connection_id", connection_id), ("user_id", user_id)):
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{what} must be a non-empty string, got {value!r}")
        await self.connect()
        job = await self.queue.enqueue(
            JOB_FUNCTION,
            key=connection_id,
            timeout=self.job_timeout,
            heartbeat=self.heartbeat,
            retries=self.retries,
            retry_delay=self.retry_delay,
            retry_backoff=self.max_retry_delay if self.retry_delay else False,
            ttl=self.result_ttl,
            connection_id=connection_id,
            user_id=user_id,
        )
        return job is not None

    async def enqueue_all(self, engine: BrokerSync) -> dict[str, bool]:
        """Queue a sync of every active connection (what a cron job or scheduler tick does).

        Connections that need re-authentication or are disabled are left out.

        Returns:
            Connection id -> ``True`` if queued now, ``False`` if it already had a live job.
        """
        from brokersync.results import ConnectionStatus

        connections = await engine.list_connections(status=ConnectionStatus.ACTIVE)
        # Concurrent round trips; saq caps them at 20 in flight per queue.
        queued = await asyncio.gather(*(self.enqueue(info.id, info.user_id) for info in connections))
        return {info.id: was_queued for info, was_queued in zip(connections, queued, strict=True)}

    async def job(self, connection_id: str) -> QueuedSync | None:
        """The connection's current (or last finished, within ``result_ttl``) job, if any."""
        await self.connect()
        job = await self.queue.job(connection_id)
        if job is None:
            return None
        result = job.result if isinstance(job.result, dict) else None
        return QueuedSync(
            connection_id=connection_id,
            status=job.status.value,
            attempts=job.attempts,
            outcome=str(result["outcome"]) if result and "outcome" in result else None,
            result=result,
            error=job.error,
        )

    async def counts(self) -> dict[str, int]:
        """How many jobs are ``queued``, ``active`` and ``scheduled`` (waiting for a retry)."""
        await self.connect()
        queued = await self.queue.count("queued")
        active = await self.queue.count("active")
        incomplete = await self.queue.count("incomplete")
        return {"queued": queued, "active": active, "scheduled": max(0, incomplete - queued - active)}

    # -- workers -----------------------------------------------------------------------------------

    def worker(
        self,
        engine: BrokerSync,
        *,
        concurrency: int = 4,
        grace: float = 30.0,
        burst: bool = False,
        poll: float = 1.0,
    ) -> saq.Worker[Context]:
        """A saq worker that runs this queue's jobs with ``engine``; see :meth:`run_worker`."""

        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be a positive integer, got {concurrency!r}")
        _positive("grace", grace, allow_zero=True)
        _positive("poll", poll)

        async def sync_connection(ctx: Context, *, connection_id: str, user_id: str) -> dict[str, Any]:
            return await self._run_job(engine, ctx, connection_id, user_id)

        # Retries come due within a second; a dead worker's job is taken back within a heartbeat.
        timers: PartialTimersDict = {
            "schedule": 1,
            "worker_info": 10,
            "sweep": max(1, min(60, self.heartbeat)),
            "abort": 1,
        }
        return _worker_class()(
            self.queue,
            functions=[(JOB_FUNCTION, sync_connection)],
            concurrency=concurrency,
            # Idle workers wake up this often, so a stop never waits on an empty queue.
            dequeue_timeout=poll,
            burst=burst,
            shutdown_grace_period_s=round(grace) if grace else None,
            # A cancelled sync records its run and gives its lease back before the job is requeued.
            cancellation_hard_deadline_s=30.0,
            timers=timers,
        )

    async def run_worker(
        self,
        engine: BrokerSync,
        *,
        concurrency: int = 4,
        grace: float = 30.0,
        burst: bool = False,
        poll: float = 1.0,
    ) -> WorkerStats:
        """Run jobs until SIGINT/SIGTERM (or, with ``burst``, until the queue is empty).

        Args:
            engine: The engine that syncs (its ``redis_url`` makes the rate limits shared by every
                worker; its lease keeps one sync per connection).
            concurrency: Jobs run at once.
            grace: On a stop signal, seconds jobs in flight get to finish before they are
                cancelled and requeued.
            burst: Stop once the queue is empty.
            poll: Seconds an idle worker waits for a job before checking for a stop.

        Returns:
            What this worker did.
        """
        worker = self.worker(engine, concurrency=concurrency, grace=grace, burst=burst, poll=poll)
        await self.connect()
        await self.queue.redis.ping()  # fail fast when Redis is unreachable at start
        before = (self.queue.complete, self.queue.failed, self.queue.retried, self.queue.aborted)
        self._log.info("worker started on queue {name}, {n} at once", name=self.name, n=concurrency)
        await worker.start()
        complete, failed, retried, aborted = (
            self.queue.complete - before[0],
            self.queue.failed - before[1],
            self.queue.retried - before[2],
            self.queue.aborted - before[3],
        )
        self._log.info("worker stopped: {c} complete, {f} failed, {r} retried", c=complete, f=failed, r=retried)
        return WorkerStats(complete=complete, failed=failed, retried=retried, aborted=aborted)

    async def _heartbeat(self, job: saq.Job) -> None:
        while True:
            await asyncio.sleep(self.heartbeat / 3)
            with contextlib.suppress(Exception):  # a missed beat is harmless; the next one retries
                await job.update()

    async def _run_job(self, engine: BrokerSync, ctx: Context, connection_id: str, user_id: str) -> dict[str, Any]:
        job = ctx.get("job")
        beat = asyncio.ensure_future(self._heartbeat(job)) if job is not None else None
        try:
            result = await engine.sync_broker_trades(connection_id, user_id, trigger="scheduled")
        except SyncInProgressError as exc:
            return _not_synced("skipped", connection_id, exc)
        except (NeedsReauthError, BrokerAuthError) as exc:
            return _not_synced("needs_reauth", connection_id, exc)
        except ConnectionNotFoundError as exc:
            return _not_synced("not_found", connection_id, exc)
        except SyncError as exc:  # disconnected by its user
            return _not_synced("disabled", connection_id, exc)
        except Exception as exc:
            raise self._failure(job, connection_id, exc) from None
        finally:
            if beat is not None:
                beat.cancel()
                with contextlib.suppress(BaseException):
                    await beat
        return _synced(result)

    def _failure(self, job: saq.Job | None, connection_id: str, exc: Exception) -> SyncQueueError:
        classification = classify_error(exc)
        retryable = classification.retryable
        if job is not None:
            if not retryable:
                job.retries = job.attempts  # saq retries while retries > attempts: this was the last
            elif classification.retry_after and classification.retry_after > job.retry_delay:
                job.retry_delay = classification.retry_after  # the broker's Retry-After wins ...
                job.retry_backoff = False  # ... exactly, without jitter below it
        kind = type(exc).__name__ if isinstance(exc, BrokerSyncError) else classification.type.value
        message = classification.technical_details.get("message") or classification.user_message
        self._log.warning(
            "queued sync of {c} failed ({kind}, {again})",
            c=connection_id,
            kind=kind,
            again="will retry" if retryable else "no retry",
        )
        return SyncQueueError(redact(f"{kind}: {message}")[:1000])
