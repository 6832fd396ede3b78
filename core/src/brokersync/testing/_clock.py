"""One virtual time for tests: a wall clock, monotonic seconds, and a sleep that moves both."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

__all__ = ["FakeClock"]

DEFAULT_START = dt.datetime(2025, 3, 3, 12, 0, tzinfo=dt.UTC)


class FakeClock:
    """A clock tests move by hand; nothing ever really sleeps.

    Hand it to brokersync wherever time is injected: as a wall clock (``clock=fake``, it is
    callable and returns a tz-aware UTC ``datetime``), as monotonic seconds
    (``clock=fake.monotonic`` for a limiter, circuit breaker, retry or scheduler) and as the sleep
    (``sleep=fake.sleep``, which records the wait and advances both at once)::

        fake = FakeClock()
        engine = BrokerSync(url, clock=fake, monotonic=fake.monotonic, sleep=fake.sleep)
        fake.advance(hours=2)  # tokens expire, windows pass

    Args:
        start: The wall-clock time at the start (tz-aware).
        monotonic_start: The monotonic reading at the start (default: ``start`` as a Unix
            timestamp, so code that reads seconds as wall time sees the same instant).

    Attributes:
        sleeps: Every wait passed to :meth:`sleep`, in order.
        on_sleep: Called with (monotonic seconds, wait) before each sleep advances the clock.
    """

    def __init__(self, start: dt.datetime = DEFAULT_START, *, monotonic_start: float | None = None) -> None:
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError("FakeClock needs a timezone-aware start")
        self._now = start.astimezone(dt.UTC)
        self._seconds = start.timestamp() if monotonic_start is None else float(monotonic_start)
        self.sleeps: list[float] = []
        self.on_sleep: Callable[[float, float], None] | None = None

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now.isoformat()}, monotonic={self._seconds})"

    def __call__(self) -> dt.datetime:
        """Return the current wall-clock time (the clock is a ``WallClock``)."""
        return self._now

    @property
    def now(self) -> dt.datetime:
        """The current wall-clock time; set it to jump (monotonic seconds follow)."""
        return self._now

    @now.setter
    def now(self, value: dt.datetime) -> None:
        self._seconds += (value - self._now).total_seconds()
        self._now = value

    def monotonic(self) -> float:
        """Return the current monotonic seconds."""
        return self._seconds

    def timestamp(self) -> float:
        """Return the current wall-clock time as a Unix timestamp."""
        return self._now.timestamp()

    def advance(self, seconds: float = 0.0, **delta: float) -> None:
        """Move time forward by ``seconds`` plus any :class:`datetime.timedelta` keywords (``hours=2``)."""
        extra = dt.timedelta(**delta)
        self._now += dt.timedelta(seconds=seconds) + extra
        self._seconds += seconds + extra.total_seconds()

    async def sleep(self, seconds: float) -> None:
        """Record the wait, then advance the clock by it (never sleeps, never yields)."""
        self.sleeps.append(seconds)
        if self.on_sleep is not None:
            self.on_sleep(self._seconds, seconds)
        self.advance(max(0.0, seconds))
