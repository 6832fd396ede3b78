"""The embedded scheduler on a real SQLite engine syncing the sim broker, with injected time."""

from __future__ import annotations

import asyncio
import collections
import itertools

import pytest
from brokersync import ConnectionSchedule, Scheduler

pytestmark = pytest.mark.anyio

TRADES = "GET /accounts/{id}/trades"


def make_scheduler(engine, fake_time, runs, **options):
    scheduler = Scheduler(engine, clock=fake_time.monotonic, sleep=fake_time.idle_sleep, on_run=runs.append, **options)
    fake_time.busy = lambda: scheduler.in_flight > 0
    return scheduler


async def test_every_active_connection_is_synced_on_each_interval(engine, connect, fake_time):
    await connect("alice")
    await connect("bob")
    runs = []
    stats = await make_scheduler(engine, fake_time, runs, interval=60).run(max_runs=3)

    assert [r.job for r in runs] == ["all", "all", "all"]
    assert [len(r.results) for r in runs] == [2, 2, 2]
    assert sum(r.imported for r in runs[0].results) == 1200  # 2 users x 2 accounts x 300 trades
    assert all(r.imported == 0 for run in runs[1:] for r in run.results), "a re-sync never imports twice"
    assert sum(r.updated for r in runs[1].results) > 0, "the broker's corrections arrive as updates"
    assert fake_time.sleeps == [60.0, 60.0]
    assert (stats.runs, stats.syncs, stats.failed_syncs, stats.imported) == (3, 6, 0, 1200)
    audit = await engine.list_runs(limit=None)
    assert len(audit) == 6
    assert {r.trigger.value for r in audit} == {"scheduled"}
    assert await engine.count_trades() == 1200


async def test_per_connection_schedules_run_on_their_own_intervals(engine, connect, fake_time):
    fast = await connect("alice")
    slow = await connect("bob")
    runs = []
    scheduler = make_scheduler(
        engine,
        fake_time,
        runs,
        interval=None,
        schedules=[
            ConnectionSchedule(connection_id=fast, user_id="u1", interval=10),
            ConnectionSchedule(connection_id=slow, user_id="u1", interval=30),
        ],
    )

    def stop_after_55_seconds(now: float, seconds: float) -> None:
        if now + seconds > 55:
            scheduler.request_stop()

    fake_time.on_sleep = stop_after_55_seconds
    stats = await scheduler.run()

    assert collections.Counter(r.job for r in runs) == {fast: 6, slow: 2}  # t=0..50 and t=0,30
    assert stats.failed_syncs == 0
    assert stats.abandoned == 0


async def test_a_run_longer_than_the_interval_never_overlaps_the_next(engine, connect, fake_time, sim):
    await connect("alice")
    sim.latency = 4.0  # each request takes 4 s of injected time: one sync takes longer than the interval
    runs = []
    stats = await make_scheduler(engine, fake_time, runs, interval=5).run(max_runs=3)

    assert stats.run_errors == 0
    assert stats.failed_syncs == 0
    audit = sorted(await engine.list_runs(limit=None), key=lambda r: r.started_at)
    assert len(audit) == 3
    for earlier, later in itertools.pairwise(audit):
        assert later.started_at >= earlier.finished_at
    assert (audit[1].started_at - audit[0].started_at).total_seconds() > 5


async def test_stop_lets_the_run_in_flight_finish(engine, connect, fake_time, sim):
    connection = await connect("alice")
    sim.latency = 1.0
    runs = []
    scheduler = make_scheduler(engine, fake_time, runs, interval=60, grace=None)

    def stop_mid_sync(now: float, seconds: float) -> None:
        if sim.stats.by_path[TRADES] == 1 and not scheduler.stopping:
            scheduler.request_stop()

    fake_time.on_sleep = stop_mid_sync
    stats = await scheduler.run()

    assert stats.abandoned == 0
    assert [len(r.results) for r in runs] == [1]
    assert runs[0].results[0].ok
    assert await engine.count_trades() == 600
    assert await engine.store.lease_holder(connection) is None


@pytest.mark.parametrize("how", ["grace-zero", "second-stop"])
async def test_an_abandoned_run_releases_its_lease_and_the_next_sync_completes(engine, connect, fake_time, sim, how):
    connection = await connect("alice")
    runs = []
    scheduler = make_scheduler(engine, fake_time, runs, interval=60, grace=0 if how == "grace-zero" else None)

    async def broker_hangs_on_the_second_account(seconds: float) -> None:
        if sim.stats.by_path[TRADES] == 1:  # the first account is stored; the broker stops answering
            scheduler.request_stop()
            if how == "second-stop":
                scheduler.request_stop()
            await asyncio.Event().wait()

    sim.latency, sim.sleep = 1.0, broker_hangs_on_the_second_account
    stats = await scheduler.run()

    assert stats.abandoned == 1
    assert runs[0].abandoned
    assert await engine.store.lease_holder(connection) is None, "an abandoned sync must give its lease back"
    assert await engine.count_trades() == 300
    sim.latency = 0.0
    result = await engine.sync_broker_trades(connection, "u1")
    assert result.ok
    assert await engine.count_trades() == 600, "nothing lost, nothing duplicated"


async def test_a_connection_that_cannot_sync_is_reported_and_the_others_keep_running(engine, connect, fake_time):
    good = await connect("alice")
    gone = await connect("bob")
    await engine.disconnect_broker(gone, "u1")
    runs = []
    stats = await make_scheduler(
        engine,
        fake_time,
        runs,
        interval=None,
        schedules=[
            ConnectionSchedule(connection_id=gone, user_id="u1", interval=10),
            ConnectionSchedule(connection_id=good, user_id="u1", interval=10),
        ],
    ).run(max_runs=4)

    by_job = collections.defaultdict(list)
    for run in runs:
        by_job[run.job].append(run)
    assert len(by_job[gone]) == 2
    assert all(r.error is not None and "disconnected" in r.error.technical_details["message"] for r in by_job[gone])
    assert len(by_job[good]) == 2
    assert all(r.results[0].ok for r in by_job[good])
    assert stats.run_errors == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"interval": 0}, "interval must be a positive"),
        ({"interval": None}, "nothing to schedule"),
        ({"grace": -1}, "grace must be"),
        ({"concurrency": 0}, "concurrency must be"),
    ],
    ids=["zero-interval", "nothing", "negative-grace", "zero-concurrency"],
)
async def test_bad_settings_are_refused_with_a_clear_message(engine, options, message):
    with pytest.raises(ValueError, match=message):
        Scheduler(engine, **options)


def test_a_connection_schedule_needs_a_positive_interval():
    with pytest.raises(ValueError, match="interval must be a positive number of seconds"):
        ConnectionSchedule(connection_id="c", user_id="u", interval=-5)


async def test_a_database_failure_is_reported_and_the_scheduler_keeps_going(engine, connect, fake_time):
    from sqlalchemy import text

    await connect("alice")
    runs = []

    async def rename(old: str, new: str) -> None:
        async with engine.store.engine.begin() as conn:
            await conn.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))

    async def outage_then_recovery(run) -> None:
        runs.append(run)
        if len(runs) == 1:
            await rename("connections", "connections_gone")  # the next run finds no connections table
        elif len(runs) == 2:
            await rename("connections_gone", "connections")

    scheduler = Scheduler(
        engine, interval=60, clock=fake_time.monotonic, sleep=fake_time.idle_sleep, on_run=outage_then_recovery
    )
    fake_time.busy = lambda: scheduler.in_flight > 0
    stats = await scheduler.run(max_runs=3)

    assert runs[0].results[0].ok
    assert runs[1].error is not None
    assert runs[1].error.technical_details["exception"] == "brokersync.errors.StoreError"
    assert "listing the connections to sync" in runs[1].error.technical_details["message"]
    assert runs[1].results == ()
    assert runs[2].results[0].ok, "the scheduler survived the outage and synced again"
    assert (stats.runs, stats.run_errors) == (3, 1)
