"""Fixtures for the scheduler tests: a real SQLite engine syncing the sim broker, and injected time."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from brokersync import BrokerSync, Vault
from brokersync.testing import FakeClock
from brokersync_sim import SimAPI

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:  # tests/_postgres.py: a real PostgreSQL (env URL or embedded server)
    sys.path.insert(0, str(TESTS))

from _postgres import fresh_database  # noqa: E402

START = dt.datetime(2026, 2, 2, 9, 0, tzinfo=dt.UTC)
PASSWORD = "sim-password"


class FakeTime(FakeClock):
    """brokersync's FakeClock on one timeline for the scheduler (monotonic from 0) and the engine (UTC).

    ``sleep`` advances the timeline at once (the sim's latency, the engine's waits) and yields to
    the event loop. The scheduler gets ``idle_sleep``, which first waits until ``busy()`` is false:
    time only moves while no sync runs, as if syncs took no time next to the intervals, so
    schedules are exact. ``on_sleep`` lets a test act at a given moment (e.g. request a stop).
    """

    def __init__(self) -> None:
        super().__init__(START, monotonic_start=0.0)
        self.busy: Callable[[], bool] = lambda: False

    async def sleep(self, seconds: float) -> None:
        await super().sleep(seconds)
        await asyncio.sleep(0)

    async def idle_sleep(self, seconds: float) -> None:
        while self.busy():
            await asyncio.sleep(0.002)  # real time: wait for the syncs in flight to finish
        await self.sleep(seconds)


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def sim(fake_time: FakeTime) -> SimAPI:
    return SimAPI(seed=11, accounts=2, trades_per_account=300, clock=fake_time, sleep=fake_time.sleep)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'brokersync.db'}"
    return fresh_database("sched")


@pytest.fixture
async def engine(db_url: str, sim: SimAPI, fake_time: FakeTime) -> AsyncIterator[BrokerSync]:
    engine = BrokerSync(
        db_url,
        encryption_keys=Vault.generate_key("k1"),
        transports={"sim": sim.transport()},
        clock=fake_time,
        # The engine keeps real sleep: its rate limiter counts on the real monotonic clock.
    )
    await engine.upgrade_database()
    yield engine
    await engine.aclose()


@pytest.fixture
def connect(engine: BrokerSync) -> Callable[..., Any]:
    """Connect a sim user for a brokersync user; returns the connection id."""

    async def connect(username: str, user_id: str = "u1") -> str:
        result = await engine.connect_broker(user_id, "sim", {"username": username, "password": PASSWORD})
        return result.connection_id

    return connect
