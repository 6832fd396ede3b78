"""The Redis limiter against a real Redis server (BROKERSYNC_TEST_REDIS_URL or an embedded one)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from brokersync import BrokerRateLimitError, RateLimit
from brokersync._ratelimit import RateLimiter
from brokersync._ratelimit._redis import RedisBackend

from tests._redis import EmbeddedRedis

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def prefix():
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def backend(redis_url):
    store = RedisBackend(redis_url)
    yield store
    await store.aclose()


def _limiter(backend, prefix, *limits, account_id=None):
    return RateLimiter(broker="sim", limits=limits, backend=backend, prefix=prefix, account_id=account_id)


async def test_decisions_are_made_on_the_redis_server_clock(backend, prefix):
    limiter = _limiter(backend, prefix, RateLimit(max_requests=3, window_seconds=60))
    server_seconds, micros = await backend.client.time()
    for _ in range(3):
        await limiter.check_limit()
    decision = limiter.last_decision
    assert decision is not None and decision.allowed
    assert decision.now == pytest.approx(server_seconds + micros / 1e6, abs=5)
    assert decision.counts == (3,)
    with pytest.raises(BrokerRateLimitError) as info:
        await limiter.check_limit()
    assert 59.0 < info.value.retry_after <= 60.0
    current, maximum, reset_at = await limiter.status()
    assert (current, maximum) == (3, 3)
    assert reset_at.tzinfo is not None
    assert 59.0 < reset_at.timestamp() - decision.now <= 60.0
    members = await backend.client.zcard(limiter.windows()[0].key)
    assert members == 3  # the refused request took nothing


async def test_all_windows_are_checked_before_any_is_taken(backend, prefix):
    limiter = _limiter(
        backend,
        prefix,
        RateLimit(max_requests=5, window_seconds=60),
        RateLimit(max_requests=2, window_seconds=60, name="auth"),
    )
    await limiter.check_limit(name="auth")
    await limiter.check_limit(name="auth")
    with pytest.raises(BrokerRateLimitError):
        await limiter.check_limit(name="auth")
    assert (await limiter.status()).current == 2  # the refused auth request did not count as default
    await limiter.check_limit()


async def test_window_slides_with_real_time(backend, prefix):
    limiter = _limiter(backend, prefix, RateLimit(max_requests=2, window_seconds=0.3))
    await limiter.acquire()
    await limiter.acquire()
    waited = await limiter.acquire()
    assert 0 < waited <= 0.3


async def test_a_pause_reaches_every_process_sharing_the_store(redis_url, backend, prefix):
    other_process = RedisBackend(redis_url)  # its own connection, as another process would have
    try:
        mine = _limiter(backend, prefix, RateLimit(max_requests=100, window_seconds=1))
        theirs = _limiter(other_process, prefix, RateLimit(max_requests=100, window_seconds=1))
        await mine.pause(30)
        with pytest.raises(BrokerRateLimitError) as info:
            await theirs.check_limit()
        assert 29 < info.value.retry_after <= 30
        await theirs.pause(5)  # a shorter pause does not shorten the longer one
        with pytest.raises(BrokerRateLimitError) as info:
            await mine.check_limit()
        assert info.value.retry_after > 29
        assert 0 < await other_process.client.pttl(mine.control_key) <= 31_000
    finally:
        await other_process.aclose()


async def test_per_account_keys_do_not_share_a_window(backend, prefix):
    limit = RateLimit(max_requests=1, window_seconds=60, scope="account")
    await _limiter(backend, prefix, limit, account_id="acct:1/x").check_limit()
    await _limiter(backend, prefix, limit, account_id="acct:2").check_limit()
    with pytest.raises(BrokerRateLimitError):
        await _limiter(backend, prefix, limit, account_id="acct:1/x").check_limit()


@pytest.mark.slow
def test_several_processes_never_exceed_the_limit_in_any_window(redis_url, prefix):
    limit, window, duration, processes = 20, 0.5, 3.0, 4
    worker = Path(__file__).with_name("_mp_worker.py")
    env_cmd = [sys.executable, str(worker), redis_url, prefix, str(limit), str(window), str(duration)]
    running = [subprocess.Popen(env_cmd, stdout=subprocess.PIPE, cwd=ROOT) for _ in range(processes)]
    results = []
    for proc in running:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        results.append(json.loads(out))
    assert all(r["fallback"] == 0 for r in results)  # every decision was Redis's
    stamps = sorted(t for r in results for t in r["granted"])
    assert all(r["granted"] for r in results)  # every process got slots
    assert len(stamps) > 2 * limit  # the limit was really contested
    # By the limiter's own clock, no window (t - window, t] holds more than `limit` grants.
    start = 0
    worst = 0
    for end, t in enumerate(stamps):
        while stamps[start] <= t - window:
            start += 1
        worst = max(worst, end - start + 1)
    assert worst <= limit
    assert worst == limit  # and the limit was reached, not undershot by a broken clock


async def test_redis_outage_falls_back_to_memory_with_one_warning_and_returns(log_records):
    with EmbeddedRedis() as server:
        store = RedisBackend(server.url, retry_interval=0.0)
        limiter = RateLimiter(
            broker="sim", limits=[RateLimit(max_requests=1000, window_seconds=60)], backend=store, prefix="outage"
        )
        key = limiter.windows()[0].key
        probe = aioredis.Redis.from_url(server.url)
        try:
            for _ in range(3):
                await limiter.acquire()
            assert await probe.zcard(key) == 3
            assert not store.using_fallback

            server.stop()
            for _ in range(5):
                assert await limiter.acquire() == 0.0  # no request fails because Redis did
            assert store.using_fallback
            assert store.outages == 1
            warnings = [r for r in log_records if r["level"].name == "WARNING"]
            assert len(warnings) == 1
            assert "unreachable" in warnings[0]["message"] and "memory" in warnings[0]["message"]

            server.start()
            await limiter.acquire()
            assert not store.using_fallback
            assert any("is back" in r["message"] for r in log_records)
            await probe.aclose()
            probe = aioredis.Redis.from_url(server.url)
            assert await probe.zcard(key) == 1  # decisions are Redis's again (a new, empty server)

            server.stop()
            await limiter.acquire()
            assert store.outages == 2  # a new outage, a new warning
            assert len([r for r in log_records if r["level"].name == "WARNING"]) == 2
        finally:
            await probe.aclose()
            await store.aclose()


async def test_unreachable_redis_never_fails_a_request_and_pauses_still_hold():
    store = RedisBackend("redis://127.0.0.1:1/0", retry_interval=60.0)
    limiter = RateLimiter(broker="sim", limits=[RateLimit(max_requests=2, window_seconds=60)], backend=store)
    try:
        await limiter.check_limit()
        await limiter.check_limit()
        with pytest.raises(BrokerRateLimitError):
            await limiter.check_limit()  # the memory fallback enforces the limit too
        await limiter.pause(10)
        status = await limiter.status()
        assert status.current == status.max == 2
        assert store.outages == 1
    finally:
        await store.aclose()


async def test_a_redis_url_password_never_reaches_the_log(log_records):
    store = RedisBackend("redis://:hunter2-secret@127.0.0.1:1/0")
    try:
        await store.pause("k", 1)
    finally:
        await store.aclose()
    text = " ".join(r["message"] + str(r["extra"]) for r in log_records)
    assert "unreachable" in text
    assert "hunter2" not in text


async def test_few_remaining_in_the_brokers_headers_paces_every_process(redis_url, backend, prefix):
    other_process = RedisBackend(redis_url)
    try:
        mine = _limiter(backend, prefix, RateLimit(max_requests=100, window_seconds=60))
        theirs = _limiter(other_process, prefix, RateLimit(max_requests=100, window_seconds=60))
        headers = {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "2", "X-RateLimit-Reset": "20"}
        await mine.observe(headers, now=0)
        await theirs.check_limit()  # the first of the two goes at once
        with pytest.raises(BrokerRateLimitError) as info:
            await mine.check_limit()  # the next one is 20 s / 2 later, whoever asks
        assert 9.0 < info.value.retry_after <= 10.0
    finally:
        await other_process.aclose()


async def test_a_429_through_a_redis_resilience_holds_another_process(redis_url, prefix):
    import httpx
    from brokersync import BrokerMetadata, CredentialField, Resilience, RetryPolicy

    metadata = BrokerMetadata(
        key="shared",
        name="Shared",
        auth_type="token",
        credential_fields=[CredentialField(name="token", secret=True)],
        environments={"live": "https://shared.test"},
        rate_limits=[RateLimit(max_requests=50, window_seconds=1)],
        retry=RetryPolicy(max_retries=0),
    )
    client = aioredis.Redis.from_url(redis_url)
    first = Resilience(redis=client, key_prefix=prefix)  # a ready client: the caller owns it
    second = Resilience(redis=redis_url, key_prefix=prefix)  # another process, its own connection
    try:
        api = httpx.MockTransport(lambda request: httpx.Response(429, headers={"Retry-After": "40"}))
        from brokersync._http import BrokerHttpClient

        http = BrokerHttpClient(
            broker="shared",
            base_url="https://shared.test",
            transport=api,
            limiter=first.limiter(metadata),
            retry=metadata.retry,
        )
        with pytest.raises(BrokerRateLimitError):
            await http.get("/x")
        await http.aclose()
        with pytest.raises(BrokerRateLimitError) as info:
            await second.limiter(metadata).check_limit()
        assert 39 < info.value.retry_after <= 40
    finally:
        await first.aclose()
        await second.aclose()
        assert await client.ping()  # a client the caller passed in is not closed by brokersync
        await client.aclose()
