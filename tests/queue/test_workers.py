"""Queue workers as separate processes on one database and one Redis: exactly-once syncs, SIGTERM recovery."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import fakebroker
import pytest
from brokersync import BrokerSync, SyncQueue
from queue_support import TRADES_PER_CONNECTION

# saq calls redis-py commands that redis 8 marks deprecated (setex); harmless, but pytest makes warnings errors.
pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore:Call to deprecated:DeprecationWarning")]

WORKER = Path(__file__).with_name("queue_worker.py")
TIMEOUT = 120  # seconds; only catches a hang


def start_worker(
    db_url: str, keys: str, redis_url: str, queue_name: str, mode: str, *, grace: float = 30, hold: Path | None = None
) -> subprocess.Popen[str]:
    args = [sys.executable, str(WORKER), db_url, keys, redis_url, queue_name, mode, str(grace)]
    if hold is not None:
        args.append(str(hold))
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


async def wait_for_line(process: subprocess.Popen[str], prefix: str) -> str:
    """Read the worker's stdout until a line starts with ``prefix``."""
    assert process.stdout is not None
    with anyio.fail_after(TIMEOUT):
        while True:
            line = await anyio.to_thread.run_sync(process.stdout.readline)
            if not line:
                raise AssertionError(f"worker exited before printing {prefix!r}: {process.stderr.read()}")  # type: ignore[union-attr]
            if line.startswith(prefix):
                return line.strip()


async def finish(process: subprocess.Popen[str]) -> str:
    out, err = await anyio.to_thread.run_sync(lambda: process.communicate(timeout=TIMEOUT))
    assert process.returncode == 0, err
    return out


async def stored_trade_ids(engine: BrokerSync, connection_id: str) -> set[tuple[str, str]]:
    return {(t.account_id, t.broker_trade_id) async for t in engine.iter_trades(connection_id=connection_id)}


@pytest.mark.slow
async def test_two_worker_processes_sync_every_connection_exactly_once(
    engine: BrokerSync,
    connect: Callable[..., Any],
    queue: SyncQueue,
    api: fakebroker.FakeBrokerApi,
    db_url: str,
    keys: str,
    redis_url: str,
    queue_name: str,
) -> None:
    ids = [await connect(f"user-{n}") for n in range(8)]
    assert await queue.enqueue_all(engine) == dict.fromkeys(ids, True)

    workers = [start_worker(db_url, keys, redis_url, queue_name, "burst") for _ in range(2)]
    outputs = [await finish(worker) for worker in workers]

    stats = [line.split()[1:] for out in outputs for line in out.splitlines() if line.startswith("stats ")]
    assert sum(int(s[0]) for s in stats) == len(ids) and all(s[1:] == ["0", "0", "0"] for s in stats)
    assert await queue.counts() == {"queued": 0, "active": 0, "scheduled": 0}
    expected = set(api.expected())
    for connection_id in ids:
        job = await queue.job(connection_id)
        assert job is not None and (job.status, job.outcome, job.attempts) == ("complete", "synced", 1)
        runs = await engine.list_runs(connection_id=connection_id)
        assert [(r.status.value, r.imported) for r in runs] == [("succeeded", TRADES_PER_CONNECTION)]
        assert await stored_trade_ids(engine, connection_id) == expected
    assert api.trade_queries == []  # every sync ran in the worker processes, none in this one


@pytest.mark.slow
async def test_sigterm_mid_job_releases_the_lease_and_requeues_the_job(
    engine: BrokerSync,
    connect: Callable[..., Any],
    queue: SyncQueue,
    api: fakebroker.FakeBrokerApi,
    db_url: str,
    keys: str,
    redis_url: str,
    queue_name: str,
    tmp_path: Path,
) -> None:
    connection_id = await connect()
    await queue.enqueue(connection_id, "u1")
    # The worker's broker never answers trade requests (the hold file is never created).
    worker = start_worker(db_url, keys, redis_url, queue_name, "serve", grace=0, hold=tmp_path / "never")
    await wait_for_line(worker, "started")
    job = await queue.job(connection_id)
    assert job is not None and job.status == "active"
    assert await engine.store.lease_holder(connection_id) is not None  # the worker is syncing it

    worker.send_signal(signal.SIGTERM)
    out = await finish(worker)

    assert "stats 0 0 1 0" in out  # nothing completed; the job was put back once
    assert await engine.store.lease_holder(connection_id) is None  # released on the way out
    job = await queue.job(connection_id)
    assert job is not None and (job.status, job.attempts) == ("queued", 1)
    runs = await engine.list_runs(connection_id=connection_id)
    assert [r.status.value for r in runs] == ["interrupted"]  # stopped, not failed: in the audit trail as such

    # Another worker picks the job up and syncs the connection completely.
    stats = await queue.run_worker(engine, burst=True, poll=0.2)
    assert stats.complete == 1
    job = await queue.job(connection_id)
    assert job is not None and (job.status, job.outcome, job.attempts) == ("complete", "synced", 2)
    assert await stored_trade_ids(engine, connection_id) == set(api.expected())


@pytest.mark.slow
async def test_sigterm_lets_a_job_in_flight_finish_within_the_grace_period(
    engine: BrokerSync,
    connect: Callable[..., Any],
    queue: SyncQueue,
    api: fakebroker.FakeBrokerApi,
    db_url: str,
    keys: str,
    redis_url: str,
    queue_name: str,
    tmp_path: Path,
) -> None:
    connection_id = await connect()
    await queue.enqueue(connection_id, "u1")
    hold = tmp_path / "release"
    worker = start_worker(db_url, keys, redis_url, queue_name, "serve", grace=60, hold=hold)
    await wait_for_line(worker, "started")

    worker.send_signal(signal.SIGTERM)  # stop requested while the sync waits for the broker ...
    hold.touch()  # ... which then answers: the job finishes inside the grace period
    out = await finish(worker)

    assert "stats 1 0 0 0" in out
    job = await queue.job(connection_id)
    assert job is not None and (job.status, job.outcome, job.attempts) == ("complete", "synced", 1)
    assert await stored_trade_ids(engine, connection_id) == set(api.expected())
    assert await engine.store.lease_holder(connection_id) is None
