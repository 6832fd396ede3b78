"""Property: whatever the request pattern, the limiter never grants more than the limit in a window."""

from __future__ import annotations

import asyncio

from brokersync import BrokerRateLimitError, RateLimit
from brokersync._ratelimit import MemoryBackend, RateLimiter
from brokersync.testing import FakeClock
from hypothesis import given, settings
from hypothesis import strategies as st


@settings(max_examples=150, deadline=None)
@given(
    limit=st.integers(min_value=1, max_value=6),
    window=st.sampled_from([0.5, 1.0, 3.0]),
    steps=st.lists(
        st.tuples(st.floats(min_value=0, max_value=2, allow_nan=False), st.integers(min_value=1, max_value=3)),
        max_size=60,
    ),
)
def test_no_window_ever_holds_more_than_the_limit_and_refusals_are_honest(limit, window, steps):
    clock = FakeClock(monotonic_start=1_000.0)
    limiter = RateLimiter(
        broker="prop",
        limits=[RateLimit(max_requests=limit, window_seconds=window)],
        backend=MemoryBackend(clock=clock.monotonic),
    )
    granted: list[float] = []

    async def run() -> None:
        for gap, burst in steps:
            clock.advance(gap)
            for _ in range(burst):
                in_window = [t for t in granted if t > clock.monotonic() - window]
                refusal: BrokerRateLimitError | None = None
                try:
                    await limiter.check_limit()
                except BrokerRateLimitError as exc:
                    refusal = exc
                if refusal is None:
                    assert len(in_window) < limit
                    granted.append(clock.monotonic())
                else:
                    # Refused only when the window is really full, and told exactly when a slot frees.
                    assert len(in_window) >= limit
                    assert refusal.retry_after is not None
                    assert abs(in_window[-limit] + window - clock.monotonic() - refusal.retry_after) < 1e-9

    asyncio.run(run())
    for index, t in enumerate(granted):
        assert sum(1 for u in granted[: index + 1] if u > t - window) <= limit
