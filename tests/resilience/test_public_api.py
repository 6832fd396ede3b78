"""The resilience layer through the package root: create_rate_limiter, with_rate_limit, with_retry."""

from __future__ import annotations

import datetime as dt

import brokersync
import pytest
from brokersync import BrokerMetadata, BrokerRateLimitError, CredentialField, RateLimit, Resilience, hookimpl
from brokersync.resilience import create_rate_limiter, set_default_resilience, with_rate_limit

pytestmark = pytest.mark.anyio

META = BrokerMetadata(
    key="rl_public",
    name="RL",
    auth_type="token",
    credential_fields=[CredentialField(name="token", secret=True)],
    environments={"live": "https://rl.test"},
    rate_limits=[
        RateLimit(max_requests=2, window_seconds=60),
        RateLimit(max_requests=1, window_seconds=60, scope="account", name="reports"),
    ],
)


class Plugin:
    @hookimpl
    def broker_metadata(self):
        return META

    @hookimpl
    async def authenticate(self, ctx, credentials):
        return brokersync.AuthResult(access_token=credentials["token"])

    @hookimpl
    async def get_accounts(self, ctx, auth):
        return []

    @hookimpl
    async def get_trades(self, ctx, auth, account, since, cursor):
        return []


@pytest.fixture(autouse=True)
def default_resilience(fake_time):
    set_default_resilience(Resilience(clock=fake_time.monotonic, sleep=fake_time.sleep))
    brokersync.register_broker("rl_public", Plugin(), replace=True)
    yield
    brokersync.unregister_broker("rl_public")
    set_default_resilience(None)


async def test_create_rate_limiter_reads_the_installed_brokers_limits(fake_time):
    limiter = create_rate_limiter("rl_public")
    await limiter.acquire()
    await limiter.acquire()
    with pytest.raises(BrokerRateLimitError) as info:
        await limiter.check_limit()
    assert info.value.retry_after == pytest.approx(60)
    current, maximum, reset_at = await limiter.status()
    assert (current, maximum) == (2, 2)
    assert reset_at == dt.datetime.fromtimestamp(fake_time.monotonic() + 60, tz=dt.UTC)


async def test_every_limiter_of_a_broker_shares_its_window(fake_time):
    await create_rate_limiter(META).acquire()
    await create_rate_limiter("rl_public").acquire()  # a new object does not reset the limit
    with pytest.raises(BrokerRateLimitError):
        await create_rate_limiter("rl_public", "acct-1").check_limit()  # broker-scoped: shared


async def test_per_account_limits_on_request(fake_time):
    await create_rate_limiter("rl_public", "acct-1").check_limit(name="reports")
    await create_rate_limiter("rl_public", "acct-2").check_limit(name="reports")
    with pytest.raises(BrokerRateLimitError):
        await create_rate_limiter("rl_public", "acct-1").check_limit(name="reports")


async def test_a_configured_limit_overrides_the_metadata(fake_time):
    limiter = create_rate_limiter("rl_public", limit=RateLimit(max_requests=5, window_seconds=1))
    for _ in range(5):
        await limiter.check_limit()
    assert tuple(await limiter.status())[:2] == (5, 5)


async def test_with_rate_limit_waits_for_a_slot_and_a_penalty_pauses_the_key(fake_time):
    calls = []

    async def call():
        calls.append(fake_time.monotonic())
        return len(calls)

    assert await with_rate_limit("rl_public", call) == 1
    assert await with_rate_limit("rl_public", call) == 2
    assert await with_rate_limit("rl_public", call) == 3
    assert calls[2] - calls[0] == pytest.approx(60)  # the third call waited for the window

    async def penalised():
        raise BrokerRateLimitError("p-ticket", retry_after=20)

    with pytest.raises(BrokerRateLimitError):
        await with_rate_limit("rl_public", penalised)
    with pytest.raises(BrokerRateLimitError) as info:
        await create_rate_limiter("rl_public").check_limit()
    assert info.value.retry_after >= 20


async def test_an_unknown_broker_has_no_limits_but_honours_pauses(fake_time):
    limiter = create_rate_limiter("not_installed")
    assert limiter.limits == ()
    await limiter.pause(3)
    assert await limiter.acquire() == pytest.approx(3)
