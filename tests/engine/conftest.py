"""Fixtures for the engine tests: a real database (SQLite file or PostgreSQL), a fake broker, a clock."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
for path in (HERE, HERE.parent):  # fakebroker.py and tests/_postgres.py, also for worker subprocesses
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import brokersync  # noqa: E402
import fakebroker  # noqa: E402
from _postgres import fresh_database  # noqa: E402
from engine_fixtures import EngineFactory, clock, engine, keys, make_engine, registered_fakebroker  # noqa: E402
from engine_support import START, Clock  # noqa: E402


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'brokersync.db'}"
    return fresh_database()


@pytest.fixture
def api(clock: Clock) -> fakebroker.FakeBrokerApi:
    return fakebroker.FakeBrokerApi(accounts={"ACC-1": 25, "ACC-2": 10}, clock=clock)


__all__ = [
    "START",
    "EngineFactory",
    "brokersync",
    "clock",
    "engine",
    "keys",
    "make_engine",
    "registered_fakebroker",
]
