"""SyncQueue in one process: keys dedupe jobs, workers map sync outcomes to job outcomes, nothing secret leaks.

Real Redis, real database (SQLite and PostgreSQL), the fake broker over httpx.MockTransport.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import attrs
import fakebroker
import httpx
import pytest
import redis.asyncio as aioredis
from brokersync import BrokerSync, ConfigurationError, ConnectionStatus, SyncQueue
from queue_support import TRADES_PER_CONNECTION

# saq calls redis-py commands that redis 8 marks deprecated (setex); harmless, but pytest makes warnings errors.
pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore:Call to deprecated:DeprecationWarning")]


async def drain(queue: SyncQueue, engine: BrokerSync, *, until_done: str | None = None, **options: Any) -> Any:
    """Run a burst worker until the queue is empty (and, with ``until_done``, that job has finished).

    A burst worker stops as soon as it sees no queued job; a retry re-queued a moment later (on a
    busy machine) would be left behind, so ``until_done`` runs bursts again until the job ends.
    """
    total = await queue.run_worker(engine, burst=True, poll=0.2, **options)
    for _ in range(20):
        job = await queue.job(until_done) if until_done else None
        if job is None or job.status in ("complete", "failed"):
            return total
        more = await queue.run_worker(engine, burst=True, poll=0.2, **options)
        total = attrs.evolve(
            total,
            complete=total.complete + more.complete,
            failed=total.failed + more.failed,
            retried=total.retried + more.retried,
            aborted=total.aborted + more.aborted,
        )
    raise AssertionError(f"job {until_done} did not finish: {job}")


async def stored_trade_ids(engine: BrokerSync, connection_id: str) -> set[tuple[str, str]]:
    return {(t.account_id, t.broker_trade_id) async for t in engine.iter_trades(connection_id=connection_id)}


async def test_enqueue_twice_gives_one_job(queue: SyncQueue, engine: BrokerSync, connect: Callable[..., Any]) -> None:
    connection_id = await connect()
    assert await queue.enqueue(connection_id, "u1") is True
    assert await queue.enqueue(connection_id, "u1") is False  # same key while queued: refused
    assert await queue.counts() == {"queued": 1, "active": 0, "scheduled": 0}
    job = await queue.job(connection_id)
    assert job is not None and job.status == "queued" and job.attempts == 0

    stats = await drain(queue, engine)

    assert stats.complete == 1 and stats.failed == 0
    runs = await engine.list_runs(connection_id=connection_id)
    assert [r.trigger.value for r in runs] == ["scheduled"]  # synced once, as a scheduled sync
    # Finished jobs no longer block their key: the next tick queues the connection again.
    assert await queue.enqueue(connection_id, "u1") is True


async def test_worker_syncs_exactly_the_brokers_trades(
    queue: SyncQueue, engine: BrokerSync, connect: Callable[..., Any], api: fakebroker.FakeBrokerApi
) -> None:
    ids = [await connect("u1"), await connect("u2"), await connect("u3")]
    assert await queue.enqueue_all(engine) == dict.fromkeys(ids, True)
    assert await queue.enqueue_all(engine) == dict.fromkeys(ids, False)

    stats = await drain(queue, engine, concurrency=2)

    assert stats.complete == 3
    expected = set(api.expected())
    for connection_id in ids:
        assert await stored_trade_ids(engine, connection_id) == expected
        job = await queue.job(connection_id)
        assert job is not None and job.status == "complete" and job.outcome == "synced"
        assert job.result is not None
        assert job.result["imported"] == TRADES_PER_CONNECTION and job.result["status"] == "succeeded"
        assert (job.result["cancelled"], job.result["warning_count"]) == (0, 0)
        assert job.result["run_id"] == (await engine.list_runs(connection_id=connection_id))[0].id


async def test_enqueue_all_leaves_out_connections_that_need_reauth(
    queue: SyncQueue, engine: BrokerSync, connect: Callable[..., Any]
) -> None:
    active, stale = await connect("u1"), await connect("u2")
    await engine.store.update_connection(stale, status=ConnectionStatus.NEEDS_REAUTH.value)
    assert await queue.enqueue_all(engine) == {active: True}


async def test_held_lease_means_skipped_without_error(
    queue: SyncQueue,
    make_engine: Callable[..., BrokerSync],
    engine: BrokerSync,
    connect: Callable[..., Any],
    api: fakebroker.FakeBrokerApi,
    tmp_path: Any,
) -> None:
    connection_id = await connect()
    other = make_engine()  # another process's engine: its own lease holder
    api.hold_file = tmp_path / "release"
    seen = asyncio.Event()
    api.on_trades = seen.set
    running = asyncio.ensure_future(other.sync_broker_trades(connection_id, "u1"))
    await asyncio.wait_for(seen.wait(), 10)  # the other sync holds the lease and is fetching trades

    await queue.enqueue(connection_id, "u1")
    stats = await drain(queue, engine)

    job = await queue.job(connection_id)
    assert job is not None and job.status == "complete" and job.outcome == "skipped"
    assert job.error is None and job.attempts == 1 and stats.failed == 0
    api.hold_file.touch()
    result = await asyncio.wait_for(running, 20)
    assert result.imported == TRADES_PER_CONNECTION  # the holder finished its sync undisturbed
    assert len(await engine.list_runs(connection_id=connection_id)) == 1  # the skipped job made no run


async def test_rejected_credentials_are_done_without_retry(
    queue: SyncQueue, engine: BrokerSync, connect: Callable[..., Any], api: fakebroker.FakeBrokerApi
) -> None:
    connection_id = await connect()
    api.password = "changed-at-the-broker"
    api.tokens.clear()  # the broker revoked every session
    api.refresh_tokens.clear()
    await queue.enqueue(connection_id, "u1")
    auth_calls = api.auth_calls

    await drain(queue, engine)

    job = await queue.job(connection_id)
    assert job is not None and job.status == "complete" and job.outcome == "needs_reauth" and job.attempts == 1
    assert api.auth_calls == auth_calls + 1  # one login attempt, no retry hammering the broker
    assert (await engine.get_connection(connection_id, "u1")).status is ConnectionStatus.NEEDS_REAUTH
    # A job queued for it anyway (e.g. by id) is done at once, without asking the broker.
    await queue.enqueue(connection_id, "u1")
    await drain(queue, engine)
    job = await queue.job(connection_id)
    assert job is not None and job.outcome == "needs_reauth" and api.auth_calls == auth_calls + 1


async def test_retryable_failures_retry_a_bounded_number_of_times(
    queue: SyncQueue, engine: BrokerSync, connect: Callable[..., Any], api: fakebroker.FakeBrokerApi
) -> None:
    connection_id = await connect()
    api.fail_trades_for = {"ACC-2"}  # the broker answers 500 for this account's trades
    await queue.enqueue(connection_id, "u1")

    stats = await drain(queue, engine, until_done=connection_id)

    job = await queue.job(connection_id)
    assert job is not None and job.status == "failed" and job.attempts == queue.retries == 2
    assert stats.retried == 1 and stats.failed == 1
    assert job.error is not None and "BrokerServerError" in job.error
    runs = await engine.list_runs(connection_id=connection_id)
    assert [r.status.value for r in runs] == ["failed", "failed"]  # one audited run per attempt

    api.fail_trades_for = set()  # the broker recovers; the next tick syncs it
    assert await queue.enqueue(connection_id, "u1") is True
    await drain(queue, engine)
    job = await queue.job(connection_id)
    assert job is not None and job.outcome == "synced"
    assert await stored_trade_ids(engine, connection_id) == set(api.expected())


async def test_non_retryable_failure_fails_at_once(
    queue: SyncQueue, engine: BrokerSync, connect: Callable[..., Any], api: fakebroker.FakeBrokerApi
) -> None:
    connection_id = await connect()
    fakebroker.unregister()  # the worker's deployment lacks the broker's plugin: a configuration error
    try:
        await queue.enqueue(connection_id, "u1")
        stats = await drain(queue, engine)
    finally:
        fakebroker.register()
    job = await queue.job(connection_id)
    assert job is not None and job.status == "failed" and job.attempts == 1 and stats.retried == 0
    assert job.error is not None and "ConfigurationError" in job.error


async def test_redis_holds_no_credential_or_token(
    queue: SyncQueue,
    engine: BrokerSync,
    connect: Callable[..., Any],
    api: fakebroker.FakeBrokerApi,
    redis_url: str,
) -> None:
    good, failing, reauth = await connect("u1"), await connect("u2"), await connect("u3")
    await queue.enqueue_all(engine)
    await drain(queue, engine)  # every token of these syncs is now issued
    api.fail_trades_for = {"ACC-1"}
    await queue.enqueue(failing, "u2")
    # Until its retries are spent: a retry left queued would run after the password change below
    # and end as needs_reauth instead of failed.
    await drain(queue, engine, until_done=failing)
    api.password = "another-Secret-9d8c7b"
    api.tokens.clear()
    api.refresh_tokens.clear()
    await queue.enqueue(reauth, "u3")
    await drain(queue, engine, until_done=reauth)

    outcomes = {c: (await queue.job(c)) for c in (good, failing, reauth)}
    assert [j.outcome if j else None for j in outcomes.values()] == ["synced", None, "needs_reauth"]
    secrets = {fakebroker.PASSWORD, "another-Secret-9d8c7b", *api.issued}
    assert len(api.issued) >= 6
    client = aioredis.from_url(redis_url)
    try:
        dump = []
        async for key in client.scan_iter(match="saq:*"):
            kind = (await client.type(key)).decode()
            if kind == "string":
                dump.append(await client.get(key) or b"")
            elif kind == "list":
                dump += await client.lrange(key, 0, -1)
            elif kind == "zset":
                dump += await client.zrange(key, 0, -1)
            dump.append(key)
    finally:
        await client.aclose()
    text = b"\n".join(dump).decode()
    assert good in text and "BrokerServerError" in text  # the scan saw the jobs, results and errors
    leaked = sorted(s for s in secrets if s in text)
    assert leaked == []


async def test_configuration_errors_are_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BROKERSYNC_QUEUE_URL", raising=False)
    with pytest.raises(ConfigurationError, match="BROKERSYNC_QUEUE_URL"):
        SyncQueue()
    with pytest.raises(ConfigurationError, match="Redis"):
        SyncQueue("postgresql://ops:pw@db/brokersync")
    with pytest.raises(ValueError, match="retries"):
        SyncQueue("redis://127.0.0.1:1/0", retries=0)
    queue = SyncQueue("redis://:hunter2-secret@127.0.0.1:1/0", name="q")
    assert "hunter2" not in repr(queue)
    await queue.aclose()
    with pytest.raises(ValueError, match="connection_id"):
        await SyncQueue("redis://127.0.0.1:1/0").enqueue("", "u1")


async def test_a_brokers_retry_after_postpones_the_retry(
    queue: SyncQueue,
    make_engine: Callable[..., BrokerSync],
    engine: BrokerSync,
    connect: Callable[..., Any],
    api: fakebroker.FakeBrokerApi,
) -> None:
    connection_id = await connect()

    async def throttled(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/trades":  # the broker keeps throttling this login
            return httpx.Response(429, headers={"Retry-After": "900"}, json={"error": "slow down"})
        return await api.handle(request)

    worker_engine = make_engine(transports={fakebroker.KEY: httpx.MockTransport(throttled)})
    await queue.enqueue(connection_id, "u1")

    stats = await drain(queue, worker_engine)

    assert (stats.complete, stats.failed, stats.retried) == (0, 0, 1)
    job = await queue.job(connection_id)
    assert job is not None and (job.status, job.attempts) == ("queued", 1)
    assert job.error is not None and "BrokerRateLimitError" in job.error
    # Not due again before the broker's 900 s: it waits in the schedule, no worker may take it now.
    assert await queue.counts() == {"queued": 0, "active": 0, "scheduled": 1}
    assert await queue.enqueue(connection_id, "u1") is False  # and the next tick does not double it
