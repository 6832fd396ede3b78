"""Fixtures for the resilience tests: injected time (brokersync.testing.FakeClock) that sleeps by advancing."""

from __future__ import annotations

import datetime as dt

import pytest
from brokersync.testing import FakeClock


@pytest.fixture
def fake_time() -> FakeClock:
    # Resilience reads seconds for both its windows and Retry-After dates: start at a real epoch.
    return FakeClock(dt.datetime.fromtimestamp(1_700_000_000, tz=dt.UTC))


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
