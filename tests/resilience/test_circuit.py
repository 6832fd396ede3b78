from __future__ import annotations

import pytest
from brokersync import BrokerApiError, BrokerAuthError, BrokerServerError, BrokerUnavailableError, classify_error
from brokersync._circuit import CircuitBreaker, CircuitState
from brokersync.errors import BrokerNetworkError, BrokerRateLimitError, BrokerTimeoutError

pytestmark = pytest.mark.anyio


def _breaker(fake_time, threshold=3, reset=30.0):
    return CircuitBreaker(threshold, reset, broker="sim", clock=fake_time.monotonic)


async def _fail(exc):
    raise exc


async def test_opens_after_threshold_and_fails_fast_with_retry_after(fake_time):
    breaker = _breaker(fake_time)
    calls = 0

    async def down():
        nonlocal calls
        calls += 1
        raise BrokerServerError("503", broker="sim", status_code=503)

    for _ in range(3):
        with pytest.raises(BrokerServerError):
            await breaker.call(down)
    assert breaker.state is CircuitState.OPEN
    assert breaker.openings == 1
    fake_time.advance(10)
    with pytest.raises(BrokerUnavailableError) as info:
        await breaker.call(down)
    assert calls == 3  # failed fast: the broker was not called
    assert info.value.retry_after == pytest.approx(20.0)
    assert "20 s" in info.value.message and "'sim'" in info.value.message
    classification = classify_error(info.value)
    assert classification.retryable
    assert classification.retry_after == pytest.approx(20.0)


async def test_half_open_lets_one_probe_through_and_closes_on_success(fake_time):
    breaker = _breaker(fake_time)
    for _ in range(3):
        breaker.record(BrokerNetworkError("refused"))
    fake_time.advance(30)
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.before_call()  # the probe
    with pytest.raises(BrokerUnavailableError):
        breaker.before_call()  # a second caller while the probe is in flight fails fast
    assert breaker.record(None) is False
    assert breaker.state is CircuitState.CLOSED
    assert breaker.failures == 0
    breaker.before_call()


async def test_failed_probe_reopens_for_a_full_timeout(fake_time):
    breaker = _breaker(fake_time)
    for _ in range(3):
        breaker.record(BrokerTimeoutError("slow"))
    fake_time.advance(31)
    with pytest.raises(BrokerTimeoutError):
        await breaker.call(lambda: _fail(BrokerTimeoutError("still slow")))
    assert breaker.state is CircuitState.OPEN
    assert breaker.openings == 2
    assert breaker.retry_after == pytest.approx(30.0)


@pytest.mark.parametrize(
    "error",
    [
        BrokerAuthError("401"),
        BrokerApiError("404", status_code=404),
        BrokerRateLimitError("429", retry_after=5),
        ValueError("plugin bug"),
    ],
    ids=["auth", "4xx", "429", "plugin-bug"],
)
async def test_answers_from_a_working_broker_do_not_open_it(fake_time, error):
    breaker = _breaker(fake_time, threshold=2)
    breaker.record(BrokerServerError("500"))
    for _ in range(5):
        assert breaker.record(error) is False
    assert breaker.state is CircuitState.CLOSED
    assert breaker.failures == 0  # the answer reset the consecutive count


async def test_late_failure_of_a_call_started_before_opening_is_not_a_second_opening(fake_time):
    breaker = _breaker(fake_time, threshold=1)
    assert breaker.record(BrokerServerError("500")) is True
    assert breaker.record(BrokerServerError("500")) is False
    assert breaker.openings == 1


@pytest.mark.parametrize(("threshold", "reset"), [(0, 1.0), (1, 0), (1.5, 1.0), (True, 1.0)])
def test_bad_configuration_is_a_value_error(threshold, reset):
    with pytest.raises(ValueError, match="CircuitBreaker"):
        CircuitBreaker(threshold, reset)
