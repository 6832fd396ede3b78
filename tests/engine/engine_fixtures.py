"""Engine fixtures shared by the engine and job-queue tests (their conftests re-export them).

Each conftest defines its own ``db_url`` (database name) and ``api`` (fake broker shape); these
build engines on top of them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import fakebroker
import pytest
from brokersync import BrokerSync, Vault
from engine_support import START, Clock, engine_factory

__all__ = ["EngineFactory", "clock", "engine", "keys", "make_engine", "registered_fakebroker"]

EngineFactory = Callable[..., BrokerSync]


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def keys() -> str:
    return Vault.generate_key("k1")


@pytest.fixture(autouse=True)
def registered_fakebroker() -> Iterator[None]:
    fakebroker.register()
    yield
    fakebroker.unregister()


@pytest.fixture
async def make_engine(
    db_url: str, keys: str, api: fakebroker.FakeBrokerApi, clock: Clock
) -> AsyncIterator[EngineFactory]:
    """Engines on the test database; each is its own connection pool and lease holder, like a process."""
    async with engine_factory(db_url, keys=keys, transports={fakebroker.KEY: api.transport()}, clock=clock) as make:
        yield make


@pytest.fixture
async def engine(make_engine: EngineFactory) -> BrokerSync:
    engine = make_engine()
    await engine.upgrade_database()
    return engine
