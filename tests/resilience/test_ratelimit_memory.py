from __future__ import annotations

import datetime as dt

import pytest
from brokersync import BrokerRateLimitError, RateLimit
from brokersync._ratelimit import MemoryBackend, RateLimiter, parse_rate_limit_headers

pytestmark = pytest.mark.anyio


def _limiter(fake_time, *limits, account_id=None, backend=None):
    return RateLimiter(
        broker="sim",
        limits=limits,
        backend=backend or MemoryBackend(clock=fake_time.monotonic),
        account_id=account_id,
        sleep=fake_time.sleep,
    )


async def test_sliding_window_waits_exactly_until_the_oldest_request_leaves(fake_time):
    limiter = _limiter(fake_time, RateLimit(max_requests=3, window_seconds=10))
    start = fake_time.monotonic()
    for _ in range(3):
        assert await limiter.acquire() == 0.0
        fake_time.advance(1)
    assert await limiter.acquire() == pytest.approx(7.0)  # first request at t=0 leaves at t=10
    assert fake_time.monotonic() == pytest.approx(start + 10)
    assert fake_time.sleeps == [pytest.approx(7.0)]
    # The window slides: the second request (t=1) leaves at t=11.
    assert await limiter.acquire() == pytest.approx(1.0)


async def test_check_limit_never_waits_and_says_when(fake_time):
    limiter = _limiter(fake_time, RateLimit(max_requests=2, window_seconds=60))
    await limiter.check_limit()
    fake_time.advance(15)
    await limiter.check_limit()
    with pytest.raises(BrokerRateLimitError) as info:
        await limiter.check_limit()
    assert info.value.retry_after == pytest.approx(45.0)
    assert "'sim'" in info.value.message and "45.0 s" in info.value.message
    assert fake_time.sleeps == []


async def test_status_reports_current_max_and_a_utc_reset(fake_time):
    limiter = _limiter(fake_time, RateLimit(max_requests=5, window_seconds=60))
    first = fake_time.monotonic()
    for _ in range(2):
        await limiter.acquire()
        fake_time.advance(5)
    current, maximum, reset_at = await limiter.status()
    assert (current, maximum) == (2, 5)
    assert reset_at == dt.datetime.fromtimestamp(first + 60, tz=dt.UTC)
    assert reset_at.utcoffset() == dt.timedelta(0)


async def test_every_window_must_have_room_and_a_refusal_takes_nothing(fake_time):
    limiter = _limiter(
        fake_time, RateLimit(max_requests=2, window_seconds=1), RateLimit(max_requests=3, window_seconds=60)
    )
    for _ in range(2):
        await limiter.acquire()
    assert await limiter.acquire() == pytest.approx(1.0)  # the per-second window
    assert await limiter.acquire() == pytest.approx(59.0)  # now the per-minute window is full
    # t=60: both t=0 requests left the minute window; it holds t=1 and t=60.
    assert tuple(await limiter.status())[:2] == (2, 3)


async def test_limits_with_the_same_window_never_count_a_request_twice(fake_time):
    limiter = _limiter(
        fake_time,
        RateLimit(max_requests=2, window_seconds=10),
        RateLimit(max_requests=2, window_seconds=10, scope="account"),  # no account: counted broker-wide
        RateLimit(max_requests=2, window_seconds=10),  # declared twice
    )
    await limiter.check_limit()
    await limiter.check_limit()  # each window holds one request, not two
    with pytest.raises(BrokerRateLimitError):
        await limiter.check_limit()


async def test_cost_takes_several_slots(fake_time):
    limiter = _limiter(fake_time, RateLimit(max_requests=4, window_seconds=10))
    await limiter.acquire(cost=3)
    with pytest.raises(BrokerRateLimitError):
        await limiter.check_limit(cost=2)
    await limiter.check_limit(cost=1)


@pytest.mark.parametrize("cost", [5, 0, -1, 1.5], ids=["never-fits", "zero", "negative", "float"])
async def test_a_cost_that_can_never_be_granted_is_a_value_error(fake_time, cost):
    limiter = _limiter(fake_time, RateLimit(max_requests=4, window_seconds=10))
    with pytest.raises(ValueError, match="cost"):
        await limiter.acquire(cost=cost)
    assert fake_time.sleeps == []


async def test_account_scope_keeps_accounts_apart_and_broker_scope_is_shared(fake_time):
    backend = MemoryBackend(clock=fake_time.monotonic)
    per_account = RateLimit(max_requests=1, window_seconds=10, scope="account")
    a = _limiter(fake_time, per_account, account_id="A", backend=backend)
    b = _limiter(fake_time, per_account, account_id="B", backend=backend)
    await a.check_limit()
    await b.check_limit()  # another account: its own window
    with pytest.raises(BrokerRateLimitError):
        await a.check_limit()
    shared = RateLimit(max_requests=1, window_seconds=10)
    c = _limiter(fake_time, shared, account_id="C", backend=backend)
    d = _limiter(fake_time, shared, account_id="D", backend=backend)
    await c.check_limit()
    with pytest.raises(BrokerRateLimitError):
        await d.check_limit()


async def test_named_limit_classes_add_to_the_default_limits(fake_time):
    limiter = _limiter(
        fake_time,
        RateLimit(max_requests=10, window_seconds=60),
        RateLimit(max_requests=1, window_seconds=60, name="auth"),
    )
    await limiter.check_limit(name="auth")
    with pytest.raises(BrokerRateLimitError):
        await limiter.check_limit(name="auth")
    await limiter.check_limit()  # other endpoints are still free
    assert (await limiter.status()).current == 2  # the auth request counted in the default window too
    with pytest.raises(ValueError, match="no rate limit named 'reporting'"):
        await limiter.acquire(name="reporting")


async def test_pause_holds_every_limiter_of_the_key_and_max_wait_refuses_long_waits(fake_time):
    backend = MemoryBackend(clock=fake_time.monotonic)
    one = _limiter(fake_time, RateLimit(max_requests=100, window_seconds=1), backend=backend)
    other = _limiter(fake_time, RateLimit(max_requests=100, window_seconds=1), backend=backend)
    await one.pause(30)
    current, maximum, reset_at = await other.status()
    assert (current, maximum) == (100, 100)
    assert reset_at == dt.datetime.fromtimestamp(fake_time.monotonic() + 30, tz=dt.UTC)
    with pytest.raises(BrokerRateLimitError) as info:
        await other.acquire(max_wait=10)
    assert info.value.retry_after == pytest.approx(30)
    assert "paused" in info.value.message
    assert await other.acquire() == pytest.approx(30)
    await one.pause(0)  # nothing to do
    assert await one.acquire() == 0.0


async def test_limiter_without_limits_still_honours_pauses(fake_time):
    limiter = _limiter(fake_time)
    assert tuple(await limiter.status())[:2] == (0, 0)
    assert await limiter.acquire() == 0.0
    await limiter.pause(5)
    assert await limiter.acquire() == pytest.approx(5)


async def test_headers_with_nothing_remaining_pause_until_the_reset(fake_time):
    limiter = _limiter(fake_time, RateLimit(max_requests=100, window_seconds=60))
    await limiter.observe({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "12"}, now=fake_time.monotonic())
    assert await limiter.acquire() == pytest.approx(12)


async def test_headers_with_few_remaining_spread_them_until_the_reset(fake_time):
    limiter = _limiter(fake_time, RateLimit(max_requests=100, window_seconds=60))
    await limiter.observe({"RateLimit-Limit": "100", "RateLimit-Remaining": "2", "RateLimit-Reset": "10"}, now=0)
    waits = [await limiter.acquire() for _ in range(4)]
    assert waits == [0.0, pytest.approx(5.0), pytest.approx(5.0), 0.0]  # after the reset: full speed


async def test_headers_with_plenty_remaining_change_nothing(fake_time):
    limiter = _limiter(fake_time, RateLimit(max_requests=100, window_seconds=60))
    await limiter.observe({"RateLimit": "limit=100, remaining=50, reset=30"}, now=fake_time.monotonic())
    assert [await limiter.acquire() for _ in range(10)] == [0.0] * 10


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-RateLimit-Remaining": "3", "X-RateLimit-Reset": "20"}, (3, 20.0, None)),
        ({"x-ratelimit-remaining": "3", "x-ratelimit-reset": "1000000030"}, (3, 30.0, None)),
        ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1000000005000"}, (0, 5.0, None)),
        ({"RateLimit": "limit=10, remaining=4, reset=7"}, (4, 7.0, 10)),
        ({"RateLimit": '"default";r=1;t=9'}, (1, 9.0, None)),
        ({"X-RateLimit-Remaining": "1"}, None),
        ({"X-RateLimit-Remaining": "soon", "X-RateLimit-Reset": "3"}, None),
        ({}, None),
    ],
    ids=["x-delta", "x-epoch", "x-epoch-ms", "ietf-dict", "ietf-rt", "no-reset", "garbage", "none"],
)
def test_rate_limit_headers_are_read_in_every_common_dialect(headers, expected):
    info = parse_rate_limit_headers(headers, now=1_000_000_000)
    assert (None if info is None else (info.remaining, info.reset, info.limit)) == expected


def test_a_limit_that_is_not_a_rate_limit_object_is_a_type_error():
    with pytest.raises(TypeError, match="RateLimit objects"):
        RateLimiter(broker="sim", limits=[{"max_requests": 1}], backend=MemoryBackend())


async def test_a_sleep_that_does_not_move_the_clock_is_an_error_not_a_spin(fake_time):
    async def sleep_without_time(seconds):
        fake_time.sleeps.append(seconds)

    limiter = RateLimiter(
        broker="sim",
        limits=[RateLimit(max_requests=1, window_seconds=10)],
        backend=MemoryBackend(clock=fake_time.monotonic),
        sleep=sleep_without_time,
    )
    await limiter.acquire()
    with pytest.raises(RuntimeError, match="inject the clock and the sleep together"):
        await limiter.acquire()
    assert len(fake_time.sleeps) == 5
