"""The core HTTP client with the resilience layer, against fake broker APIs (httpx.MockTransport)."""

from __future__ import annotations

import email.utils
import inspect
import json

import brokersync
import httpx
import pytest
from brokersync import (
    BrokerApiError,
    BrokerAuthError,
    BrokerMetadata,
    BrokerNetworkError,
    BrokerRateLimitError,
    BrokerRegistry,
    BrokerServerError,
    BrokerSyncError,
    BrokerTimeoutError,
    BrokerUnavailableError,
    CredentialField,
    RateLimit,
    RetryPolicy,
    hookimpl,
)
from brokersync._circuit import CircuitState
from brokersync._http import BrokerHttpClient
from brokersync._metrics import RequestMetrics
from brokersync._resilience import Resilience, get_default_resilience, set_default_resilience

pytestmark = pytest.mark.anyio

BASE = "https://api.fake.test/v1"
POLICY = RetryPolicy(max_retries=3, initial_delay=1.0, multiplier=2.0, jitter=0.0, max_retry_after=120.0)


def _metadata(**overrides):
    values = {
        "key": "fake",
        "name": "Fake",
        "auth_type": "token",
        "credential_fields": [CredentialField(name="token", secret=True)],
        "environments": {"live": BASE},
        "rate_limits": [RateLimit(max_requests=100, window_seconds=10)],
        "retry": POLICY,
    }
    values.update(overrides)
    return BrokerMetadata(**values)


class Plugin:
    metadata = _metadata()

    @hookimpl
    def broker_metadata(self):
        return self.metadata

    @hookimpl
    async def authenticate(self, ctx, credentials):
        return brokersync.AuthResult(access_token=credentials["token"])

    @hookimpl
    async def get_accounts(self, ctx, auth):
        return []

    @hookimpl
    async def get_trades(self, ctx, auth, account, since, cursor):
        return []

    @hookimpl
    def validate_response(self, ctx, response):
        # A broker-specific penalty in a 200 body (like Tradovate's p-ticket), reported as the contract says.
        if response.content and response.json().get("p-time"):
            raise BrokerRateLimitError("penalty", retry_after=float(response.json()["p-time"]), broker="fake")
        if response.content and response.json().get("raise_httpx"):
            response.status_code = 500
            response.raise_for_status()


class Api:
    """A fake broker API answering a scripted sequence of responses, recording every request."""

    def __init__(self, *responses):
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.responses:
            return httpx.Response(200, json={"ok": True})
        item = self.responses.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


def _broker(api, metadata=None, **kwargs):
    plugin = Plugin()
    if metadata is not None:
        plugin.metadata = metadata
    registry = BrokerRegistry(entry_points=False)
    registry.register("fake", plugin)
    return registry.get("fake", transport=httpx.MockTransport(api), **kwargs)


@pytest.fixture
def resilience(fake_time):
    return Resilience(clock=fake_time.monotonic, sleep=fake_time.sleep)


async def test_429_then_200_waits_the_retry_after_and_pauses_the_key_for_everyone(resilience, fake_time):
    api = Api(httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(200, json={"x": 1}))
    metrics = RequestMetrics()
    client = resilience.client_for(_broker(api), metrics=metrics)
    response = await client.get("/fills")
    assert response.json() == {"x": 1}
    assert len(api.requests) == 2
    assert len(fake_time.sleeps) == 1 and 7.0 <= fake_time.sleeps[0] <= 8.0
    assert (metrics.requests, metrics.retries, metrics.rate_limit_waits) == (2, 1, 1)
    assert metrics.rate_limit_wait_seconds == pytest.approx(fake_time.sleeps[0])


async def test_a_429_holds_other_clients_of_the_same_store(resilience, fake_time):
    api = Api(httpx.Response(429, headers={"Retry-After": "30"}))
    client = resilience.client_for(_broker(api))
    with pytest.raises(BrokerRateLimitError):
        await client.send_once("GET", "/fills")  # one attempt, no retry
    other = resilience.limiter(Plugin.metadata)  # another caller of the same broker key
    with pytest.raises(BrokerRateLimitError) as info:
        await other.check_limit()
    assert info.value.retry_after == pytest.approx(30)


async def test_503_three_times_then_200_backs_off_exponentially(resilience, fake_time):
    api = Api(*[httpx.Response(503) for _ in range(3)], httpx.Response(200, json={}))
    metrics = RequestMetrics()
    await resilience.client_for(_broker(api), metrics=metrics).get("/fills")
    assert len(api.requests) == 4
    assert fake_time.sleeps == [1.0, 2.0, 4.0]
    assert (metrics.requests, metrics.retries, metrics.rate_limit_waits) == (4, 3, 0)


async def test_503_with_retry_after_uses_the_brokers_wait(resilience, fake_time):
    api = Api(httpx.Response(503, headers={"Retry-After": "15"}), httpx.Response(200, json={}))
    await resilience.client_for(_broker(api)).get("/fills")
    assert 15.0 <= fake_time.sleeps[0] <= 16.0


async def test_retry_after_as_an_http_date(resilience, fake_time):
    when = email.utils.formatdate(fake_time.monotonic() + 30, usegmt=True)
    api = Api(httpx.Response(429, headers={"Retry-After": when}), httpx.Response(200, json={}))
    await resilience.client_for(_broker(api)).get("/fills")
    assert 30.0 <= fake_time.sleeps[0] <= 31.0


@pytest.mark.parametrize("value", ["0", "Wed, 21 Oct 2015 07:28:00 GMT"], ids=["zero", "past-date"])
async def test_retry_after_zero_or_past_is_not_a_hot_loop(resilience, fake_time, value):
    api = Api(*[httpx.Response(429, headers={"Retry-After": value}) for _ in range(3)], httpx.Response(200, json={}))
    await resilience.client_for(_broker(api)).get("/fills")
    assert len(api.requests) == 4
    assert sum(fake_time.sleeps) >= 1.0 + 2.0 + 4.0 - 1e-9  # the exponential backoff, not zero waits


async def test_huge_retry_after_ends_the_attempt_and_later_requests_fail_fast(resilience, fake_time):
    api = Api(httpx.Response(429, headers={"Retry-After": "3600"}))
    client = resilience.client_for(_broker(api))
    with pytest.raises(BrokerRateLimitError) as info:
        await client.get("/fill/list")
    assert "3600 s" in info.value.message and "max_retry_after" in info.value.message
    assert info.value.retry_after == 3600
    assert fake_time.sleeps == []
    fake_time.advance(600)
    with pytest.raises(BrokerRateLimitError) as later:
        await client.get("/fill/list")
    assert len(api.requests) == 1  # the paused key kept the second sync off the broker
    assert later.value.retry_after == pytest.approx(3000)
    assert fake_time.sleeps == []


async def test_auth_errors_are_never_retried(resilience, fake_time):
    api = Api(httpx.Response(401, json={"errorText": "Access is denied"}))
    with pytest.raises(BrokerAuthError):
        await resilience.client_for(_broker(api)).get("/account/list")
    assert len(api.requests) == 1
    assert fake_time.sleeps == []


async def test_the_limiter_holds_requests_beyond_the_brokers_limit(resilience, fake_time):
    metadata = _metadata(rate_limits=[RateLimit(max_requests=2, window_seconds=10)])
    api = Api()
    metrics = RequestMetrics()
    client = resilience.client_for(_broker(api, metadata), metrics=metrics)
    for _ in range(3):
        await client.get("/fills")
    assert fake_time.sleeps == [pytest.approx(10.0)]
    assert metrics.rate_limit_waits == 1
    assert metrics.rate_limit_wait_seconds == pytest.approx(10.0)
    status = await resilience.limiter(metadata).status()
    assert (status.current, status.max) == (1, 2)


async def test_rate_limit_headers_slow_down_before_a_429(resilience, fake_time):
    api = Api(httpx.Response(200, json={}, headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "20"}))
    client = resilience.client_for(_broker(api))
    await client.get("/fills")
    await client.get("/fills")
    assert fake_time.sleeps == [pytest.approx(20.0)]
    assert len(api.requests) == 2


async def test_a_plugin_penalty_pauses_the_key_and_is_retried(resilience, fake_time):
    api = Api(httpx.Response(200, json={"p-time": 5}), httpx.Response(200, json={"ok": True}))
    metrics = RequestMetrics()
    response = await resilience.client_for(_broker(api), metrics=metrics).get("/fills")
    assert response.json() == {"ok": True}
    assert 5.0 <= fake_time.sleeps[0] <= 6.0
    assert metrics.rate_limit_waits == 1


async def test_an_open_circuit_fails_fast_without_calling_the_broker(fake_time):
    resilience = Resilience(
        clock=fake_time.monotonic, sleep=fake_time.sleep, circuit_failure_threshold=3, circuit_reset_timeout=60
    )
    api = Api(*[httpx.Response(502) for _ in range(10)])
    metrics = RequestMetrics()
    broker = _broker(api)
    client = resilience.client_for(broker, metrics=metrics)
    with pytest.raises(BrokerServerError, match="502"):
        await client.get("/fills")  # the failure that opened the circuit, not a synthetic one
    assert len(api.requests) == 3  # threshold 3: no retry once the circuit opened
    assert metrics.circuit_openings == 1
    assert fake_time.sleeps == [1.0, 2.0]
    breaker = resilience.circuits()[("fake", None)]
    assert breaker.state is CircuitState.OPEN
    fake_time.advance(20)
    with pytest.raises(BrokerUnavailableError) as info:
        await resilience.client_for(broker).get("/fills")
    assert len(api.requests) == 3  # failed fast
    assert info.value.retry_after == pytest.approx(40)
    assert "'fake'" in info.value.message and "40 s" in info.value.message
    fake_time.advance(61)
    assert breaker.state is CircuitState.HALF_OPEN
    api.responses = [httpx.Response(200, json={})]
    await client.get("/fills")
    assert breaker.state is CircuitState.CLOSED


async def test_account_limits_are_kept_per_connection_when_no_account_is_named(resilience, fake_time):
    metadata = _metadata(rate_limits=[RateLimit(max_requests=1, window_seconds=10, scope="account")])
    api = Api()
    await resilience.client_for(_broker(api, metadata, connection_id="alice")).get("/a")
    await resilience.client_for(_broker(api, metadata, connection_id="bob")).get("/a")
    assert fake_time.sleeps == []  # two users, two windows
    await resilience.client_for(_broker(api, metadata, connection_id="alice")).get("/a")
    assert fake_time.sleeps == [pytest.approx(10.0)]
    await resilience.client_for(_broker(api, metadata, connection_id="alice"), account_id="A-1").get("/a")
    assert len(fake_time.sleeps) == 1  # a named broker account has a window of its own


async def test_a_request_can_name_its_broker_account(resilience, fake_time):
    metadata = _metadata(
        rate_limits=[
            RateLimit(max_requests=1, window_seconds=10, scope="account"),
            RateLimit(max_requests=3, window_seconds=10),
        ]
    )
    client = resilience.client_for(_broker(Api(), metadata, connection_id="alice"))
    await client.get("/trades", account_id="A-1")
    await client.get("/trades", account_id="A-2")  # another account: its own window
    assert fake_time.sleeps == []
    broker_wide = resilience.limiter(metadata)  # the broker-wide limit counts every account's requests
    assert tuple(await broker_wide.status())[:2] == (2, 3)
    await client.get("/trades", account_id="A-1")
    assert fake_time.sleeps == [pytest.approx(10.0)]


async def test_circuits_can_be_kept_per_connection(fake_time):
    resilience = Resilience(
        clock=fake_time.monotonic, sleep=fake_time.sleep, circuit_failure_threshold=1, circuit_per_connection=True
    )
    api = Api(httpx.Response(500))
    with pytest.raises(BrokerServerError):
        await resilience.client_for(_broker(api, connection_id="c1")).get("/fills")
    await resilience.client_for(_broker(api, connection_id="c2")).get("/fills")
    assert resilience.circuits()[("fake", "c1")].state is CircuitState.OPEN
    assert resilience.circuits()[("fake", "c2")].state is CircuitState.CLOSED


def _httpx_error_types():
    for name in httpx.__all__:
        value = getattr(httpx, name)
        if inspect.isclass(value) and issubclass(value, Exception):
            yield value


def _make(exc_type, request):
    if issubclass(exc_type, httpx.HTTPStatusError):
        return exc_type("boom", request=request, response=httpx.Response(500, request=request))
    if issubclass(exc_type, httpx.RequestError) or exc_type is httpx.HTTPError:
        return exc_type("boom", request=request) if exc_type is not httpx.HTTPError else exc_type("boom")
    try:
        return exc_type("boom")
    except TypeError:
        return exc_type()


@pytest.mark.parametrize("exc_type", list(_httpx_error_types()), ids=lambda t: t.__name__)
async def test_no_httpx_error_escapes_the_client(fake_time, exc_type):
    def raising(request):
        raise _make(exc_type, request)

    resilience = Resilience(clock=fake_time.monotonic, sleep=fake_time.sleep)
    client = resilience.client_for(_broker(raising))
    with pytest.raises(BrokerSyncError) as info:
        await client.get("/fills?token=abc-secret-123")
    assert not isinstance(info.value, httpx.HTTPError)
    assert "abc-secret-123" not in info.value.message
    if issubclass(exc_type, httpx.TimeoutException):
        assert isinstance(info.value, BrokerTimeoutError)
    elif issubclass(exc_type, httpx.NetworkError | httpx.RemoteProtocolError | httpx.ProxyError):
        assert isinstance(info.value, BrokerNetworkError)


@pytest.mark.parametrize("url", ["http://[::1", "https://ex\x00ample/"], ids=["bad-ipv6", "control-char"])
async def test_a_bad_url_is_a_broker_error_not_an_httpx_one(resilience, log_records, url):
    api = Api()
    with pytest.raises(BrokerApiError):
        await resilience.client_for(_broker(api)).get(url)
    assert api.requests == []


async def test_an_httpx_error_raised_by_a_plugin_check_is_mapped(resilience):
    api = Api(*[httpx.Response(200, json={"raise_httpx": True}) for _ in range(4)])
    with pytest.raises(BrokerServerError):
        await resilience.client_for(_broker(api)).get("/fills")


async def test_a_total_timeout_becomes_a_broker_timeout():
    import asyncio

    async def slow(request):
        await asyncio.sleep(10)
        return httpx.Response(200)

    metadata = _metadata(retry=RetryPolicy(max_retries=0, request_timeout=0.05))
    with pytest.raises(BrokerTimeoutError, match="within 0.05 s"):
        await Resilience().client_for(_broker(slow, metadata)).get("/fills")


async def test_a_307_to_another_host_keeps_authorization_and_body(resilience):
    def api(request):
        if request.url.host == "live.fake.test":
            return httpx.Response(307, headers={"Location": "https://org-1.fake.test/v1/order/place"})
        return httpx.Response(
            200, json={"auth": request.headers.get("Authorization"), "body": json.loads(request.content)}
        )

    metadata = _metadata(environments={"live": "https://live.fake.test/v1"})
    client = resilience.client_for(_broker(api, metadata))
    response = await client.post("/order/place", json={"qty": 1}, headers={"Authorization": "Bearer tok-12345678"})
    assert response.json() == {"auth": "Bearer tok-12345678", "body": {"qty": 1}}
    assert response.request.url.host == "org-1.fake.test"


async def test_a_cross_host_redirect_does_not_carry_the_first_hosts_cookies(resilience):
    def api(request):
        if request.url.path == "/v1/login":
            return httpx.Response(200, json={}, headers={"Set-Cookie": "session=s3cr3t; Path=/"})
        if request.url.host == "api.fake.test":
            assert request.headers.get("Cookie") == "session=s3cr3t"  # the first host gets its cookie
            return httpx.Response(307, headers={"Location": "https://org-1.fake.test/v1/x"})
        return httpx.Response(200, json={"cookie": request.headers.get("Cookie")})

    client = resilience.client_for(_broker(api))
    await client.get("/login")
    response = await client.get("/x")
    assert response.json() == {"cookie": None}


async def test_a_redirect_to_plain_http_drops_the_token(resilience):
    def api(request):
        if request.url.scheme == "https":
            return httpx.Response(308, headers={"Location": "http://insecure.fake.test/v1/x"})
        return httpx.Response(200, json={"auth": request.headers.get("Authorization")})

    response = await resilience.client_for(_broker(api)).get("/x", headers={"Authorization": "Bearer tok-12345678"})
    assert response.json() == {"auth": None}


async def test_a_redirect_loop_is_an_api_error(resilience):
    api = Api(*[httpx.Response(302, headers={"Location": "/v1/again"}) for _ in range(20)])
    with pytest.raises(BrokerApiError, match="redirects"):
        await resilience.client_for(_broker(api)).get("/start")
    assert len(api.requests) == 6  # the first request + 5 redirects, no retry


async def test_one_redacted_structured_log_line_per_request(resilience, log_records):
    api = Api(httpx.Response(503), httpx.Response(200, json={}))
    client = resilience.client_for(_broker(api, connection_id="conn-1"))
    await client.get(
        "/fills", params={"account": "7", "password": "pw-hunter2"}, headers={"Authorization": "Bearer tok-abcdef123"}
    )
    lines = [r for r in log_records if "attempt" in r["extra"] and "status" in r["extra"]]
    assert [(r["extra"]["status"], r["extra"]["attempt"]) for r in lines] == [(503, 1), (200, 2)]
    first = lines[0]["extra"]
    assert first["method"] == "GET" and first["host"] == "api.fake.test" and first["path"] == "/v1/fills"
    assert first["connection_id"] == "conn-1" and first["broker"] == "fake"
    assert first["duration_ms"] >= 0
    assert first["query"] == {"account": "7", "password": "***"}
    everything = json.dumps([{"m": r["message"], "e": {k: str(v) for k, v in r["extra"].items()}} for r in log_records])
    assert "pw-hunter2" not in everything and "tok-abcdef123" not in everything


async def test_the_engine_pattern_counts_a_runs_traffic(resilience, fake_time):
    api = Api(httpx.Response(500), httpx.Response(200, json={}))
    run_metrics = RequestMetrics()
    plugin_registry = BrokerRegistry(entry_points=False)
    plugin_registry.register("fake", Plugin())
    async with plugin_registry.get(
        "fake",
        connection_id="c-9",
        transport=httpx.MockTransport(api),
        http=lambda b: resilience.client_for(b, metrics=run_metrics),
    ) as broker:
        await broker.context.http.get("/fills")
    assert run_metrics.as_dict() == {
        "requests": 2,
        "retries": 1,
        "rate_limit_waits": 0,
        "rate_limit_wait_seconds": 0.0,
        "circuit_openings": 0,
    }


async def test_a_facade_without_http_uses_the_default_resilience(fake_time):
    set_default_resilience(Resilience(clock=fake_time.monotonic, sleep=fake_time.sleep))
    try:
        api = Api(httpx.Response(503), httpx.Response(200, json={}))
        async with _broker(api) as broker:
            client = broker.http
            assert isinstance(client, BrokerHttpClient)
            await client.get("/fills")
            assert client.circuit is not None and client.circuit.failures == 0
            assert client.circuit not in get_default_resilience().circuits().values()  # its own breaker
        assert len(api.requests) == 2  # retried
        assert fake_time.sleeps == [1.0]
        status = await get_default_resilience().limiter(Plugin.metadata).status()
        assert status.current == 2  # and rate limited: both attempts took a slot
    finally:
        set_default_resilience(None)


async def test_the_old_constructor_still_sends_one_attempt():
    api = Api(httpx.Response(503))
    async with BrokerHttpClient(
        broker="fake", base_url=BASE, transport=httpx.MockTransport(api), timeout=5.0, headers={"X-A": "1"}
    ) as client:
        with pytest.raises(BrokerServerError):
            await client.get("/fills")
    assert len(api.requests) == 1
    assert api.requests[0].headers["X-A"] == "1"
    assert client.metrics.requests == 1


def test_bad_resilience_configuration_names_the_problem():
    with pytest.raises(TypeError, match=r"rate_limits\['fake'\]\[0\] must be a RateLimit"):
        Resilience(rate_limits={"fake": [{"max_requests": 1}]})
    with pytest.raises(TypeError, match=r"retry\['fake'\] must be a RetryPolicy"):
        Resilience(retry={"fake": {"max_retries": 1}})
    with pytest.raises(ValueError, match="failure_threshold"):
        Resilience(circuit_failure_threshold=0)
    with pytest.raises(ValueError, match="not both"):
        Resilience(redis="redis://localhost", backend=get_default_resilience().backend)


async def test_configured_limits_and_policies_replace_the_declared_ones(fake_time):
    resilience = Resilience(
        clock=fake_time.monotonic,
        sleep=fake_time.sleep,
        rate_limits={"fake": RateLimit(max_requests=1, window_seconds=5)},
        retry={"fake": RetryPolicy(max_retries=0)},
    )
    api = Api(httpx.Response(200, json={}), httpx.Response(503))
    client = resilience.client_for(_broker(api))
    await client.get("/a")
    with pytest.raises(BrokerServerError):
        await client.get("/b")
    assert fake_time.sleeps == [pytest.approx(5.0)]  # the configured 1 per 5 s; no retry of the 503


async def test_requests_go_through_when_the_redis_store_is_down(fake_time, log_records):
    resilience = Resilience(redis="redis://127.0.0.1:1/0", sleep=fake_time.sleep)  # nothing listens there
    api = Api(httpx.Response(200, json={"n": 1}), httpx.Response(200, json={"n": 2}))
    try:
        client = resilience.client_for(_broker(api))
        assert (await client.get("/a")).json() == {"n": 1}
        assert (await client.get("/b")).json() == {"n": 2}
    finally:
        await resilience.aclose()
    warnings = [r for r in log_records if r["level"].name == "WARNING" and "Redis" in r["message"]]
    assert len(warnings) == 1  # one warning for the outage, not one per request
