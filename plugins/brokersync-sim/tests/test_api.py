"""The fake broker API behaves as documented in brokersync_sim.api, through the real plugin and core client."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import brokersync
import httpx
import pytest
from brokersync_sim import SimAPI

pytestmark = pytest.mark.anyio


def test_same_seed_same_data_other_seed_other_data():
    first = SimAPI(seed=3, accounts=2, trades_per_account=200).expected_trades("alice")
    again = SimAPI(seed=3, accounts=2, trades_per_account=200).expected_trades("alice")
    other = SimAPI(seed=4, accounts=2, trades_per_account=200).expected_trades("alice")
    assert first == again
    assert len(first) == 400
    assert first.keys() != other.keys()
    bob = SimAPI(seed=3, accounts=2, trades_per_account=200).expected_trades("bob")
    assert not set(first) & set(bob), "two users must not share accounts"


def test_prices_and_fees_are_decimal_strings_never_floats():
    for record in SimAPI(seed=1, accounts=3, trades_per_account=100).expected_trades("alice").values():
        for field in ("entryPrice", "commission", "quantity"):
            assert isinstance(record[field], str)
            assert Decimal(record[field]) >= 0
        assert record["currency"] in ("USD", "EUR")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"fault_kinds": ["meteor"]}, "unknown fault kind"),
        ({"fault_rate": 1.5}, "fault_rate must be between 0 and 1"),
        ({"page_size": 5000}, "page_size"),
        ({"history_end": dt.datetime(2025, 1, 1)}, "timezone-aware"),
    ],
    ids=["fault-kind", "fault-rate", "page-size", "naive-history-end"],
)
def test_bad_configuration_is_refused_with_a_clear_message(options, message):
    with pytest.raises(ValueError, match=message):
        SimAPI(**options)


async def test_full_listing_returns_every_trade_in_pages_with_exact_values(make_broker, credentials, sync_account):
    api, broker = make_broker(seed=5, accounts=2, trades_per_account=2500, correction_rate=0)
    async with broker:
        auth = await broker.authenticate(credentials)
        accounts = await broker.get_accounts(auth)
        assert [a.currency for a in accounts] == ["USD", "USD"]
        got: dict[str, brokersync.Trade] = {}
        for account in accounts:
            trades, errors, cursor, pages = await sync_account(broker, auth, account)
            assert pages == 3  # 2500 trades, 1000 per page
            assert not errors
            assert cursor
            got.update(trades)
    expected = api.expected_trades("alice")
    assert got.keys() == expected.keys()
    for trade_id, record in expected.items():
        trade = got[trade_id]
        assert trade.entry_price == Decimal(record["entryPrice"])
        assert trade.fees == Decimal(record["commission"])
        assert trade.opened_at.tzinfo is dt.UTC
        assert (trade.realized_pnl is None) == (record["realizedPnl"] is None)
    assert api.stats.logins == 1
    assert api.stats.trades_served == 5000


async def test_the_broker_corrects_trades_after_a_listing_and_the_cursor_returns_only_those(
    make_broker, credentials, sync_account
):
    api, broker = make_broker(seed=2, accounts=1, trades_per_account=1000, correction_rate=0.02, open_trades=3)
    async with broker:
        auth = await broker.authenticate(credentials)
        (account,) = await broker.get_accounts(auth)
        first, _, cursor, _ = await sync_account(broker, auth, account)
        assert sum(1 for t in first.values() if not t.is_closed) == 3
        corrected = {k for k, v in api.expected_trades("alice").items() if v["version"] > 1}
        changed, _, _, _ = await sync_account(broker, auth, account, cursor=cursor)
    assert 20 <= len(changed) <= 23  # 2% re-billed, plus the 3 open trades now closed
    for trade_id, trade in changed.items():
        assert trade.raw["version"] == 2
        assert trade.is_closed
        if first[trade_id].is_closed:
            assert trade.fees == first[trade_id].fees + Decimal("0.25")
    assert corrected == changed.keys()


async def test_since_limits_the_listing_to_trades_changed_at_or_after_it(make_broker, credentials, sync_account):
    api, broker = make_broker(seed=8, accounts=1, trades_per_account=400, correction_rate=0)
    since = dt.datetime(2025, 10, 1, tzinfo=dt.UTC)
    async with broker:
        auth = await broker.authenticate(credentials)
        (account,) = await broker.get_accounts(auth)
        recent, _, _, _ = await sync_account(broker, auth, account, since=since)
    expected = {
        k for k, v in api.expected_trades("alice").items() if dt.datetime.fromisoformat(v["updatedAt"]) >= since
    }
    assert recent.keys() == expected
    assert 0 < len(recent) < 400


async def test_wrong_password_is_an_auth_error_that_never_shows_the_password(make_broker):
    _, broker = make_broker()
    async with broker:
        with pytest.raises(brokersync.BrokerAuthError) as caught:
            await broker.authenticate({"username": "alice", "password": "hunter2-wrong"})
    assert "hunter2-wrong" not in str(caught.value)
    assert "hunter2-wrong" not in repr(caught.value)
    assert caught.value.status_code == 401


async def test_an_expired_token_is_refused_and_the_refresh_token_renews_it(make_broker, clock, credentials):
    api, broker = make_broker(token_ttl=dt.timedelta(minutes=10))
    async with broker:
        auth = await broker.authenticate(credentials)
        assert auth.expires_at == clock.now + dt.timedelta(minutes=10)
        clock.advance(11 * 60)
        renewed = await broker.refresh_token(credentials, auth)
        assert renewed is not None
        assert renewed.access_token != auth.access_token
        assert renewed.expires_at == clock.now + dt.timedelta(minutes=10)
        accounts = await broker.get_accounts(renewed)
    assert len(accounts) == 3
    assert api.stats.renewals == 1


async def test_going_over_the_user_limit_gets_429_with_retry_after(clock, credentials):
    api = SimAPI(clock=clock, user_limit=(3, 1.0))
    async with httpx.AsyncClient(transport=api.transport(), base_url=api.base_url + "/") as client:
        login = await client.post("auth/token", json=credentials)
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        statuses = [(await client.get("accounts", headers=headers)).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        refused = await client.get("accounts", headers=headers)
        assert refused.headers["Retry-After"] == "1"
        clock.advance(1.0)
        assert (await client.get("accounts", headers=headers)).status_code == 200
    assert api.stats.limit_exceeded == 2
    assert api.stats.peak_user_window == 3


@pytest.mark.parametrize(
    ("kind", "status"),
    [("rate_limit", 429), ("server_error", 503)],
    ids=["429", "503"],
)
async def test_injected_http_faults_answer_like_a_broker(clock, kind, status, credentials):
    api = SimAPI(clock=clock, fault_rate=1.0, fault_kinds=[kind], retry_after=2)
    async with httpx.AsyncClient(transport=api.transport(), base_url=api.base_url + "/") as client:
        response = await client.post("auth/token", json=credentials)
    assert response.status_code == status
    assert (response.headers.get("Retry-After") == "2") is (status == 429)
    assert api.stats.faults[kind] == 1


async def test_an_injected_timeout_reaches_the_plugin_as_a_timeout_error(make_broker, credentials):
    _, broker = make_broker(fault_rate=1.0, fault_kinds=["timeout"])
    async with broker:
        with pytest.raises(brokersync.BrokerTimeoutError):
            await broker.authenticate(credentials)


async def test_a_session_ended_mid_sync_is_renewed_and_the_sync_completes(make_broker, credentials):
    api, broker = make_broker(seed=1, accounts=1, trades_per_account=3000)
    async with broker:
        auth = await broker.authenticate(credentials)
        (account,) = await broker.get_accounts(auth)
        pages = broker.iter_trades(auth, account)
        first = await anext(pages)
        assert api.end_sessions("alice") == 1
        trades = {t.broker_trade_id for t in first.trades}
        async for batch in pages:
            trades.update(t.broker_trade_id for t in batch.trades)
        # The renewed token is used for the rest of the run: one renewal, not one per page.
        async for batch in broker.iter_trades(auth, account):
            trades.update(t.broker_trade_id for t in batch.trades)
    assert api.stats.renewals == 1
    assert trades == set(api.expected_trades("alice"))


async def test_a_random_token_expiry_fault_is_renewed_once_by_the_core(make_broker, credentials):
    api, broker = make_broker(accounts=1, trades_per_account=10)
    async with broker:
        auth = await broker.authenticate(credentials)
        api.fault_rate, api.fault_kinds = 1.0, ("token_expiry",)
        with pytest.raises(brokersync.BrokerAuthError, match="token_expired"):
            await broker.get_accounts(auth)  # expires again on the resend: the core renews only once
    assert api.stats.faults["token_expiry"] == 2
    assert api.stats.renewals == 1


async def test_malformed_records_are_reported_with_their_id_and_never_returned_as_trades(
    make_broker, credentials, sync_account
):
    api, broker = make_broker(seed=4, accounts=1, trades_per_account=2000, malformed_rate=0.02, correction_rate=0)
    async with broker:
        auth = await broker.authenticate(credentials)
        (account,) = await broker.get_accounts(auth)
        trades, errors, _, _ = await sync_account(broker, auth, account)
    assert 20 <= len(errors) <= 60
    assert len(trades) + len(errors) == 2000
    assert trades.keys() == api.expected_trades("alice").keys()
    reasons = " ".join(e.reason for e in errors)
    assert "entry_price" in reasons
    assert "naive" in reasons
    assert all(e.broker_trade_id and e.broker_trade_id not in trades for e in errors)


async def test_an_unknown_account_or_bad_cursor_is_a_client_error(make_broker, credentials, sync_account):
    _, broker = make_broker(accounts=1, trades_per_account=10)
    async with broker:
        auth = await broker.authenticate(credentials)
        with pytest.raises(brokersync.BrokerApiError, match="404"):
            await sync_account(broker, auth, brokersync.Account(id="SOMEONE-ELSES"))
        (account,) = await broker.get_accounts(auth)
        with pytest.raises(brokersync.BrokerApiError, match="400"):
            await sync_account(broker, auth, account, cursor="not-a-cursor")
