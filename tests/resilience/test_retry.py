from __future__ import annotations

import pytest
from brokersync import (
    BrokerAuthError,
    BrokerNetworkError,
    BrokerRateLimitError,
    BrokerServerError,
    BrokerUnavailableError,
    RetryPolicy,
)
from brokersync._metrics import RequestMetrics
from brokersync._retry import MIN_DELAY, RetryContext, retry_delays, with_retry

pytestmark = pytest.mark.anyio

POLICY = RetryPolicy(max_retries=3, initial_delay=1.0, max_delay=30.0, multiplier=2.0, jitter=0.2, timeout=600)


class Script:
    """Raises the queued errors one per call, then returns "ok"."""

    def __init__(self, *errors):
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def _ctx(fake_time, rnd=0.5, **kwargs):
    return RetryContext(broker="sim", sleep=fake_time.sleep, clock=fake_time.monotonic, random=lambda: rnd, **kwargs)


def test_delays_follow_the_policy_exponent_and_cap():
    delays = retry_delays(RetryPolicy(initial_delay=1.0, multiplier=3.0, max_delay=20.0))
    assert [next(delays) for _ in range(5)] == [1.0, 3.0, 9.0, 20.0, 20.0]


async def test_503_three_times_then_200_waits_exponentially(fake_time):
    fn = Script(*[BrokerServerError("503", status_code=503) for _ in range(3)])
    metrics = RequestMetrics()
    assert await with_retry(fn, POLICY, _ctx(fake_time, metrics=metrics)) == "ok"
    assert fn.calls == 4
    assert fake_time.sleeps == [1.0, 2.0, 4.0]  # random()=0.5 is the jitter midpoint
    assert metrics.retries == 3
    assert metrics.rate_limit_waits == 0


@pytest.mark.parametrize(("rnd", "first"), [(0.0, 0.8), (0.999999, 1.2)], ids=["low", "high"])
async def test_jitter_spreads_computed_delays_by_the_policy_fraction(fake_time, rnd, first):
    fn = Script(BrokerNetworkError("reset"))
    await with_retry(fn, POLICY, _ctx(fake_time, rnd=rnd))
    assert fake_time.sleeps == [pytest.approx(first, abs=1e-5)]


async def test_gives_up_after_max_retries_with_the_last_error(fake_time):
    errors = [BrokerServerError(f"503 #{i}", status_code=503) for i in range(5)]
    fn = Script(*errors)
    with pytest.raises(BrokerServerError, match="#3"):
        await with_retry(fn, POLICY, _ctx(fake_time))
    assert fn.calls == 4
    assert len(fake_time.sleeps) == 3


async def test_auth_errors_are_never_retried(fake_time):
    fn = Script(BrokerAuthError("401 bad token"))
    with pytest.raises(BrokerAuthError):
        await with_retry(fn, POLICY, _ctx(fake_time))
    assert fn.calls == 1
    assert fake_time.sleeps == []


async def test_unknown_plugin_errors_are_not_retried(fake_time):
    fn = Script(KeyError("fills"))
    with pytest.raises(KeyError):
        await with_retry(fn, POLICY, _ctx(fake_time))
    assert fn.calls == 1


async def test_retry_after_wins_over_the_computed_delay_and_jitter_never_shortens_it(fake_time):
    for rnd in (0.0, 0.5, 0.999):
        fake_time.sleeps.clear()
        fn = Script(BrokerRateLimitError("429", retry_after=7.0), BrokerRateLimitError("429", retry_after=0.5))
        metrics = RequestMetrics()
        assert await with_retry(fn, POLICY, _ctx(fake_time, rnd=rnd, metrics=metrics)) == "ok"
        first, second = fake_time.sleeps
        assert 7.0 <= first <= 8.0  # the computed delay (1 s) is ignored; at most +1 s of spread
        assert 0.5 <= second <= 0.6
        assert metrics.rate_limit_waits == 2
        assert metrics.rate_limit_wait_seconds == pytest.approx(first + second)


@pytest.mark.parametrize("retry_after", [0.0, None], ids=["retry-after-0-or-past", "no-header"])
async def test_retry_after_zero_is_not_a_hot_loop(fake_time, retry_after):
    fn = Script(*[BrokerRateLimitError("429", retry_after=retry_after) for _ in range(3)])
    await with_retry(fn, POLICY, _ctx(fake_time, rnd=0.0))
    assert fake_time.sleeps == [pytest.approx(0.8), pytest.approx(1.6), pytest.approx(3.2)]
    assert min(fake_time.sleeps) >= MIN_DELAY


async def test_zero_initial_delay_still_waits_the_minimum(fake_time):
    fn = Script(BrokerRateLimitError("429", retry_after=0.0))
    await with_retry(fn, RetryPolicy(initial_delay=0), _ctx(fake_time))
    assert fake_time.sleeps == [MIN_DELAY]


async def test_huge_retry_after_ends_with_a_clear_error_instead_of_sleeping(fake_time):
    lockout = BrokerRateLimitError("429", retry_after=3600.0, broker="tradovate", status_code=429)
    fn = Script(lockout)
    with pytest.raises(BrokerRateLimitError) as info:
        await with_retry(fn, POLICY, _ctx(fake_time, operation="GET /fill/list"))
    assert fn.calls == 1
    assert fake_time.sleeps == []
    error = info.value
    assert error.retry_after == 3600.0
    assert error.status_code == 429
    assert error.__cause__ is lockout
    assert "3600 s" in error.message and "max_retry_after=120 s" in error.message
    assert "GET /fill/list" in error.message


async def test_overall_timeout_stops_before_a_wait_that_would_cross_it(fake_time):
    policy = RetryPolicy(max_retries=10, initial_delay=4.0, multiplier=2.0, jitter=0, timeout=20.0)
    fn = Script(*[BrokerNetworkError(f"down {i}") for i in range(10)])
    with pytest.raises(BrokerNetworkError, match="down 2"):
        await with_retry(fn, policy, _ctx(fake_time))
    assert fake_time.sleeps == [4.0, 8.0]  # 4 + 8 + 16 would pass 20 s
    assert fn.calls == 3


async def test_giveup_predicate_stops_a_retryable_error(fake_time):
    fn = Script(BrokerUnavailableError("circuit open", retry_after=30))
    ctx = _ctx(fake_time, giveup=lambda exc: isinstance(exc, BrokerUnavailableError))
    with pytest.raises(BrokerUnavailableError):
        await with_retry(fn, POLICY, ctx)
    assert fn.calls == 1


async def test_success_on_first_attempt_does_not_sleep(fake_time):
    fn = Script()
    metrics = RequestMetrics()
    assert await with_retry(fn, POLICY, _ctx(fake_time, metrics=metrics)) == "ok"
    assert fake_time.sleeps == []
    assert metrics.retries == 0
