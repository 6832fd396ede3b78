"""A plugin's validate_response names an error status before the core's generic mapping does."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from brokersync import (
    AuthType,
    BrokerMetadata,
    BrokerRateLimitError,
    BrokerRegistry,
    BrokerServerError,
    ExecutionCancellation,
    RateLimit,
    RetryPolicy,
    TradeCancellation,
    TradePage,
    hookimpl,
)
from brokersync._resilience import Resilience

pytestmark = pytest.mark.anyio

META = BrokerMetadata(
    key="lockout",
    name="Lockout",
    auth_type=AuthType.TOKEN,
    credential_fields=[],
    environments={"live": "https://api.lockout.invalid"},
    rate_limits=[RateLimit(max_requests=100, window_seconds=60)],
    retry=RetryPolicy(max_retries=3, initial_delay=0.5, max_retry_after=120),
)


class Plugin:
    @hookimpl
    def broker_metadata(self):
        return META

    @hookimpl
    async def authenticate(self, ctx, credentials):
        raise NotImplementedError

    @hookimpl
    async def get_accounts(self, ctx, auth):
        return []

    @hookimpl
    async def get_trades(self, ctx, auth, account, since, cursor):
        yield TradePage(
            cancellations=[
                TradeCancellation(
                    account_id="A", broker_trade_id="T1", cancelled_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
                ),
                ExecutionCancellation(
                    account_id="A", broker_execution_id="F1", cancelled_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
                ),
            ]
        )

    @hookimpl
    def validate_response(self, ctx, response):
        if response.status_code == 429 and "Retry-After" not in response.headers:
            raise BrokerRateLimitError("locked out for an hour", retry_after=3600, broker="lockout")
        response.json()  # written for JSON bodies: fails on an HTML error page


def _broker(handler):
    registry = BrokerRegistry(entry_points=False)
    registry.register("lockout", Plugin())
    return registry.get("lockout", transport=httpx.MockTransport(handler))


async def test_a_plugin_lockout_stops_after_one_request_and_pauses_the_key(fake_time):
    sent = []

    def handler(request):
        sent.append(request)
        return httpx.Response(429)

    resilience = Resilience(clock=fake_time.monotonic, sleep=fake_time.sleep)
    broker = _broker(handler)
    client = resilience.client_for(broker)
    with pytest.raises(BrokerRateLimitError) as caught:
        await client.get("/fills")
    assert len(sent) == 1 and caught.value.retry_after == 3600
    status = await resilience.limiter(META).status()
    assert status.current == status.max and status.reset_at is not None  # paused for every process


async def test_a_validator_that_fails_on_an_error_body_leaves_the_core_mapping(fake_time):
    def handler(request):
        return httpx.Response(503, text="<html>down</html>")

    resilience = Resilience(clock=fake_time.monotonic, sleep=fake_time.sleep)
    client = resilience.client_for(_broker(handler))
    with pytest.raises(BrokerServerError):
        await client.get("/fills")


async def test_execution_busts_are_not_rejected_as_trade_cancellations():
    from brokersync import Account, AuthResult

    broker = _broker(lambda r: httpx.Response(200, json={}))
    [batch] = [b async for b in broker.iter_trades(AuthResult(access_token="t"), Account(id="A"))]
    assert [c.broker_trade_id for c in batch.cancellations] == ["T1"]
    assert batch.errors == ()
