"""Fixtures for the engine tests: a real database (SQLite file or PostgreSQL), a fake broker, a clock."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

HERE = Path(__file__).parent
for path in (HERE, HERE.parent):  # fakebroker.py and tests/_postgres.py, also for worker subprocesses
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import brokersync  # noqa: E402
import fakebroker  # noqa: E402
from _postgres import fresh_database  # noqa: E402
from brokersync import BrokerSync, Vault  # noqa: E402
from engine_support import START, Clock, engine_factory  # noqa: E402


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'brokersync.db'}"
    return fresh_database()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def api(clock: Clock) -> fakebroker.FakeBrokerApi:
    return fakebroker.FakeBrokerApi(accounts={"ACC-1": 25, "ACC-2": 10}, clock=clock)


@pytest.fixture
def keys() -> str:
    return Vault.generate_key("k1")


@pytest.fixture(autouse=True)
def _plugin() -> object:
    fakebroker.register()
    yield
    fakebroker.unregister()


EngineFactory = Callable[..., BrokerSync]


@pytest.fixture
async def make_engine(
    db_url: str, keys: str, api: fakebroker.FakeBrokerApi, clock: Clock
) -> AsyncIterator[EngineFactory]:
    """Build engines on the test database (each one a separate connection pool, like a process)."""
    async with engine_factory(db_url, keys=keys, transports={fakebroker.KEY: api.transport()}, clock=clock) as make:
        yield make


@pytest.fixture
async def engine(make_engine: EngineFactory) -> BrokerSync:
    engine = make_engine()
    await engine.upgrade_database()
    return engine


__all__ = ["START", "brokersync"]
