"""brokersync.testing.FakeClock: one virtual time for wall clock, monotonic seconds and sleep."""

from __future__ import annotations

import datetime as dt

import pytest
from brokersync.testing import FakeClock

pytestmark = pytest.mark.anyio

START = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def test_wall_and_monotonic_move_together() -> None:
    clock = FakeClock(START, monotonic_start=10.0)
    clock.advance(1.5, minutes=1)
    assert clock() == clock.now == START + dt.timedelta(seconds=61.5)
    assert clock.monotonic() == 71.5
    clock.now = START  # a jump back in wall time moves monotonic the same way
    assert clock.monotonic() == 10.0


async def test_sleep_records_and_advances_without_waiting() -> None:
    clock = FakeClock(START)
    seen: list[tuple[float, float]] = []
    clock.on_sleep = lambda now, wait: seen.append((now, wait))
    await clock.sleep(2.0)
    await clock.sleep(-1.0)  # a negative wait is recorded, time does not go back
    assert clock.sleeps == [2.0, -1.0]
    assert clock.now == START + dt.timedelta(seconds=2)
    assert clock.timestamp() == START.timestamp() + 2
    assert seen == [(START.timestamp(), 2.0), (START.timestamp() + 2, -1.0)]


def test_a_naive_start_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        FakeClock(dt.datetime(2025, 1, 1))
