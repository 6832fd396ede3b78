"""The embedded scheduler: sync on an interval in one asyncio process, stop cleanly on a signal.

:class:`Scheduler` runs jobs on their own intervals:

* the *all* job calls :meth:`BrokerSync.run_scheduled_sync` (every active connection, bounded
  concurrency, one failure never stops the others) every ``interval`` seconds;
* each :class:`ConnectionSchedule` syncs one connection on its own interval (a premium user every
  minute, say), with ``trigger="scheduled"``.

A job never overlaps itself: when a run takes longer than its interval, the next one starts as soon
as it ends. Two jobs touching the same connection at once are safe: the engine's lease lets one sync
run and the other reports "already running".

Shutdown (SIGINT/SIGTERM/SIGHUP, or :meth:`Scheduler.request_stop`): no new run starts; runs in flight get
``grace`` seconds to finish; then (or at once on a second signal) they are cancelled. Cancelling a
sync rolls back its open batch, and the engine gives the connection's lease back on the way out, so
the next process can sync it right away; the audit row is marked ``interrupted`` by the next run.

Time is injected (``clock`` = monotonic seconds, ``sleep``), so tests drive the scheduler exactly.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from brokersync._clocks import MonotonicClock
from brokersync._log import get_logger
from brokersync.errors import BrokerSyncError, ErrorClassification, classify_error

if TYPE_CHECKING:
    from brokersync._engine import BrokerSync
    from brokersync.results import SyncResult

__all__ = ["ConnectionSchedule", "ScheduledRun", "Scheduler", "SchedulerStats"]

Sleep = Callable[[float], Awaitable[None]]
ALL = "all"


def _positive_seconds(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(
            f"{type(instance).__name__}.{attribute.name} must be a positive number of seconds, got {value!r}"
        )


@attrs.frozen(kw_only=True)
class ConnectionSchedule:
    """Sync one connection every ``interval`` seconds, besides (or instead of) the all-connections job."""

    connection_id: str
    user_id: str
    interval: float = attrs.field(validator=_positive_seconds)


@attrs.frozen(kw_only=True)
class ScheduledRun:
    """What one run of a job produced.

    Attributes:
        job: ``"all"`` for the all-connections job, else the connection id.
        results: One result per connection synced.
        error: Why a single-connection run could not sync (e.g. already running, needs reauth).
        abandoned: The run was cancelled at shutdown before it finished.
    """

    job: str
    results: tuple[SyncResult, ...] = ()
    error: ErrorClassification | None = None
    abandoned: bool = False


@attrs.define
class SchedulerStats:
    """Totals since the scheduler started."""

    runs: int = 0
    syncs: int = 0
    failed_syncs: int = 0
    imported: int = 0
    updated: int = 0
    skipped: int = 0
    run_errors: int = 0
    abandoned: int = 0

    def add(self, run: ScheduledRun) -> None:
        """Count ``run`` in the totals."""
        self.runs += 1
        self.abandoned += run.abandoned
        self.run_errors += run.error is not None
        for result in run.results:
            self.syncs += 1
            self.failed_syncs += not result.ok
            self.imported += result.imported
            self.updated += result.updated
            self.skipped += result.skipped


@attrs.define(eq=False)
class _Job:
    name: str
    interval: float
    action: Callable[[], Awaitable[ScheduledRun]]
    next_due: float = 0.0


class Scheduler:
    """Run scheduled syncs until stopped. See the module docstring for the behaviour.

    Args:
        engine: The sync engine.
        interval: Seconds between runs of the all-connections job; ``None`` disables it (only
            ``schedules`` run).
        schedules: Per-connection schedules.
        concurrency: Connections the all-connections job syncs at once (default: the engine's).
        grace: Seconds runs in flight may take to finish after a stop request; ``None`` waits for
            them however long they take (a second stop request still abandons them).
        clock: Monotonic seconds (injected in tests).
        sleep: Awaitable sleep (injected in tests).
        on_run: Called (sync or async) with each finished :class:`ScheduledRun`.
        start_immediately: Run every job at start instead of after its first interval.
    """

    def __init__(
        self,
        engine: BrokerSync,
        *,
        interval: float | None = 300.0,
        schedules: Sequence[ConnectionSchedule] = (),
        concurrency: int | None = None,
        grace: float | None = 30.0,
        clock: MonotonicClock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        on_run: Callable[[ScheduledRun], Any] | None = None,
        start_immediately: bool = True,
    ) -> None:
        if interval is not None and (isinstance(interval, bool) or interval <= 0):
            raise ValueError(f"interval must be a positive number of seconds or None, got {interval!r}")
        if interval is None and not schedules:
            raise ValueError("nothing to schedule: give an interval for all connections or per-connection schedules")
        if grace is not None and grace < 0:
            raise ValueError(f"grace must be >= 0 seconds, got {grace!r}")
        if concurrency is not None and concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency!r}")
        self.engine = engine
        self.grace = grace
        self.concurrency = concurrency
        self.stats = SchedulerStats()
        self._clock = clock
        self._sleep = sleep
        self._on_run = on_run
        self._log = get_logger(component="scheduler")
        self._jobs: list[_Job] = []
        if interval is not None:
            self._jobs.append(_Job(name=ALL, interval=float(interval), action=self._run_all))
        seen: set[str] = set()
        for schedule in schedules:
            if schedule.connection_id in seen:
                raise ValueError(f"connection {schedule.connection_id} has more than one schedule")
            seen.add(schedule.connection_id)
            self._jobs.append(
                _Job(
                    name=schedule.connection_id,
                    interval=float(schedule.interval),
                    action=lambda s=schedule: self._run_one(s),  # type: ignore[misc]
                )
            )
        self._start_immediately = start_immediately
        self._stop: asyncio.Event | None = None
        self._abandon: asyncio.Event | None = None
        self._in_flight: dict[asyncio.Task[ScheduledRun], _Job] = {}

    # -- control -----------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop gracefully; a second call abandons the runs in flight at once."""
        if self._stop is None or self._abandon is None:
            raise RuntimeError("the scheduler is not running")
        if self._stop.is_set():
            self._abandon.set()
        self._stop.set()

    @property
    def in_flight(self) -> int:
        """How many runs are in progress right now."""
        return len(self._in_flight)

    @property
    def stopping(self) -> bool:
        """Whether a stop was requested."""
        return self._stop is not None and self._stop.is_set()

    def install_signal_handlers(self) -> Callable[[], None]:
        """Make SIGINT, SIGTERM and SIGHUP call :meth:`request_stop`; returns a function that undoes it.

        SIGHUP is what closing the terminal sends a scheduler started from it: it stops the same
        way (runs in flight finish within the grace period), never kills a sync mid-page.
        """
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if sig is None:  # pragma: no cover - Windows has no SIGHUP
                continue
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - Windows / not main thread
                continue
            installed.append(sig)

        def remove() -> None:
            for sig in installed:
                loop.remove_signal_handler(sig)

        return remove

    def _on_signal(self, sig: signal.Signals) -> None:
        how = "abandoning the runs in flight" if self.stopping else "finishing the runs in flight"
        self._log.warning("received {sig}: stopping, {how}", sig=sig.name, how=how)
        self.request_stop()

    # -- jobs --------------------------------------------------------------------------------------

    async def _run_all(self) -> ScheduledRun:
        results = await self.engine.run_scheduled_sync(self.concurrency)
        return ScheduledRun(job=ALL, results=tuple(results))

    async def _run_one(self, schedule: ConnectionSchedule) -> ScheduledRun:
        try:
            result = await self.engine.sync_broker_trades(schedule.connection_id, schedule.user_id, trigger="scheduled")
        except BrokerSyncError as exc:
            return ScheduledRun(job=schedule.connection_id, error=classify_error(exc))
        return ScheduledRun(job=schedule.connection_id, results=(result,))

    async def _finish(self, job: _Job, task: asyncio.Task[ScheduledRun]) -> None:
        try:
            run = task.result()
        except asyncio.CancelledError:
            run = ScheduledRun(job=job.name, abandoned=True)
        except Exception as exc:  # a database outage must not kill the scheduler: report, retry next time
            run = ScheduledRun(job=job.name, error=classify_error(exc))
        self.stats.add(run)
        self._log.info(
            "run {job}: {syncs} syncs, {imported} imported, {updated} updated{extra}",
            job=job.name,
            syncs=len(run.results),
            imported=sum(r.imported for r in run.results),
            updated=sum(r.updated for r in run.results),
            extra=" (abandoned)" if run.abandoned else f" error: {run.error.user_message}" if run.error else "",
        )
        if self._on_run is not None:
            outcome = self._on_run(run)
            if asyncio.iscoroutine(outcome):
                await outcome

    # -- the loop ----------------------------------------------------------------------------------

    async def run(self, *, max_runs: int | None = None) -> SchedulerStats:
        """Run until a stop is requested (or ``max_runs`` runs have started and finished).

        Returns:
            The totals; ``abandoned`` counts runs cancelled at shutdown.
        """
        self._stop = asyncio.Event()
        self._abandon = asyncio.Event()
        now = self._clock()
        for job in self._jobs:
            job.next_due = now if self._start_immediately else now + job.interval
        in_flight = self._in_flight
        started = 0
        stop_wait = asyncio.ensure_future(self._stop.wait())
        try:
            while not self._stop.is_set():
                now = self._clock()
                busy = set(in_flight.values())
                for job in self._jobs:
                    if job in busy or job.next_due > now or (max_runs is not None and started >= max_runs):
                        continue
                    in_flight[asyncio.ensure_future(job.action())] = job
                    job.next_due = max(job.next_due + job.interval, now)
                    started += 1
                if max_runs is not None and started >= max_runs and not in_flight:
                    break
                waiters: set[asyncio.Future[Any]] = {stop_wait, *in_flight}
                idle = [j.next_due for j in self._jobs if j not in set(in_flight.values())]
                sleeper = None
                if idle and (max_runs is None or started < max_runs):
                    sleeper = asyncio.ensure_future(self._sleep(max(0.0, min(idle) - now)))
                    waiters.add(sleeper)
                done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                if sleeper is not None and not sleeper.done():
                    sleeper.cancel()
                for task in [t for t in in_flight if t in done]:
                    await self._finish(in_flight.pop(task), task)
            await self._shutdown(in_flight)
        finally:
            stop_wait.cancel()
            for task in in_flight:  # only on an unexpected error: never leave syncs running
                task.cancel()
        return self.stats

    async def _shutdown(self, in_flight: dict[asyncio.Task[ScheduledRun], _Job]) -> None:
        if not in_flight:
            return
        assert self._abandon is not None
        self._log.warning("waiting up to {grace} s for {n} run(s) in flight", grace=self.grace, n=len(in_flight))
        abandon_wait = asyncio.ensure_future(self._abandon.wait())
        grace_over: asyncio.Future[Any] = (
            asyncio.get_running_loop().create_future()
            if self.grace is None
            else asyncio.ensure_future(self._sleep(self.grace))
        )
        try:
            while in_flight and not abandon_wait.done() and not grace_over.done():
                done, _ = await asyncio.wait(
                    {abandon_wait, grace_over, *in_flight}, return_when=asyncio.FIRST_COMPLETED
                )
                for task in [t for t in in_flight if t in done]:
                    await self._finish(in_flight.pop(task), task)
        finally:
            abandon_wait.cancel()
            grace_over.cancel()
        if in_flight:
            self._log.warning(
                "abandoning {n} run(s): their open batches roll back, leases are released", n=len(in_flight)
            )
            for task in in_flight:
                task.cancel()
            await asyncio.wait(set(in_flight))
            for task, job in list(in_flight.items()):
                await self._finish(job, task)
            in_flight.clear()
