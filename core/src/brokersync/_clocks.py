"""The two kinds of time brokersync reads, named by purpose.

* :data:`WallClock` answers "what time is it": a tz-aware UTC ``datetime`` (audit rows, token
  expiry, watermarks).
* :data:`MonotonicClock` answers "how long since": seconds that never go backwards (rate-limit
  windows, circuit breakers, retry budgets, the scheduler's ticks).

Tests inject both from one :class:`brokersync.testing.FakeClock`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable

__all__ = ["MonotonicClock", "Sleep", "WallClock", "utcnow"]

WallClock = Callable[[], dt.datetime]
MonotonicClock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


def utcnow() -> dt.datetime:
    """The current tz-aware UTC time (the default :data:`WallClock`)."""
    return dt.datetime.now(dt.UTC)
