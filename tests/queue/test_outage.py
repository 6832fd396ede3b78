"""Redis going away: a running worker waits it out and carries on; the CLI says so without a traceback."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import fakebroker
import pytest
from _redis import EmbeddedRedis
from brokersync import BrokerSync, SyncQueue
from brokersync._cli import cli
from click.testing import CliRunner

# saq calls redis-py commands that redis 8 marks deprecated (setex); harmless, but pytest makes warnings errors.
pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore:Call to deprecated:DeprecationWarning")]


@pytest.mark.integration
async def test_a_running_worker_survives_a_redis_outage(
    engine: BrokerSync, connect: Callable[..., Any], api: fakebroker.FakeBrokerApi, queue_name: str
) -> None:
    connection_id = await connect()
    with EmbeddedRedis() as redis_server:
        async with SyncQueue(redis_server.url, name=queue_name) as queue:
            worker = asyncio.ensure_future(queue.run_worker(engine, poll=0.2))
            await asyncio.sleep(0.5)  # real time: let the worker start and poll the (empty) queue
            redis_server.stop()  # the outage: Redis is gone, with everything it held
            await asyncio.sleep(1.5)  # the worker's dequeues fail meanwhile
            assert not worker.done()  # it did not crash
            redis_server.start()  # back on the same port, empty

            async with SyncQueue(redis_server.url, name=queue_name) as producer:
                assert await producer.enqueue(connection_id, "u1") is True
                with anyio_deadline(30):
                    while (job := await producer.job(connection_id)) is None or job.status != "complete":
                        await asyncio.sleep(0.1)
            assert job.outcome == "synced"
            assert await engine.count_trades(connection_id=connection_id) == len(api.expected())
            worker.cancel()  # like a stop signal: saq's worker stops cleanly and reports
            stats = await worker
            assert (stats.complete, stats.failed) == (1, 0)


def anyio_deadline(seconds: float) -> Any:
    import anyio

    return anyio.fail_after(seconds)


def test_cli_reports_an_unreachable_queue(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BROKERSYNC_QUEUE_URL", "BROKERSYNC_ENCRYPTION_KEYS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BROKERSYNC_DATA_DIR", str(tmp_path))
    with EmbeddedRedis() as stopped:
        url = stopped.url.replace("redis://", "redis://:queue-Secret-4@")
    result = CliRunner().invoke(
        cli, ["enqueue", "some-id", "--queue-url", url, "--database-url", f"sqlite:///{tmp_path / 'db.sqlite'}"]
    )
    # The connection id is looked up first: an unknown one is a usage error even with Redis down.
    assert result.exit_code == 2
    result = CliRunner().invoke(
        cli, ["worker", "--queue-url", url, "--database-url", f"sqlite:///{tmp_path / 'db.sqlite'}"]
    )
    assert result.exit_code == 1
    assert "the job queue's Redis cannot be reached" in result.stderr
    assert "queue-Secret-4" not in result.output and "Traceback" not in result.output
