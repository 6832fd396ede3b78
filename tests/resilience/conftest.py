"""Fixtures for the resilience tests: injected time that sleeps by advancing a clock."""

from __future__ import annotations

import pytest


class FakeTime:
    """A clock and an async sleep that advances it: waits are recorded, never slept."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture(scope="session")
def redis_url():
    """A real Redis (BROKERSYNC_TEST_REDIS_URL or an embedded server) for the whole session."""
    from tests._redis import redis_server

    with redis_server() as url:
        yield url


@pytest.fixture
def log_records():
    """brokersync's log records (message + extra) while the test runs."""
    from loguru import logger

    records: list[dict] = []
    logger.enable("brokersync")
    sink = logger.add(lambda m: records.append(m.record), level="DEBUG", format="{message}")
    yield records
    logger.remove(sink)
    logger.disable("brokersync")
