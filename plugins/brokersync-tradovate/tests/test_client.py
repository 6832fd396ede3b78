"""Tradovate's awkward parts, one at a time, through the core facade and the fake API."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import brokersync
import pytest
from brokersync import BrokerApiError, BrokerAuthError, BrokerRateLimitError, Resilience
from brokersync_tradovate.parse import derive_device_id
from tradovate_fake import USER, FakeTradovate, standard_book

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def broker(fake: FakeTradovate, sleeps: Sleeps | None = None) -> brokersync.Broker:
    sleep = sleeps or Sleeps()
    resilience = Resilience(sleep=sleep)
    registry = brokersync.BrokerRegistry(allow=["tradovate"])
    return registry.get(
        "tradovate",
        environment="demo",
        http=lambda b: resilience.client_for(b, transport=fake.transport()),
        clock=fake.now,
        sleep=sleep,
    )


async def test_a_penalty_ticket_is_waited_out_and_the_identical_body_resent_with_it(fake):
    fake.tickets_before_login = 2
    sleeps = Sleeps()
    async with broker(fake, sleeps) as b:
        auth = await b.authenticate(USER)
    assert auth.access_token in fake.tokens and fake.logins == 1
    assert sleeps.waits == [2.0, 2.0]  # p-time, twice, through ctx.sleep
    first, second, third = fake.login_attempts
    assert "p-ticket" not in first and second["p-ticket"] and third["p-ticket"] != second["p-ticket"]
    assert {k: v for k, v in third.items() if k != "p-ticket"} == first
    assert first["deviceId"] == derive_device_id(USER["username"], USER["cid"])


async def test_repeated_bad_logins_end_in_a_captcha_that_is_never_retried_in_a_loop(fake):
    wrong = {**USER, "password": "wrong-password-1"}
    async with broker(fake) as b:
        for _ in range(3):
            with pytest.raises(BrokerAuthError, match="Incorrect username or password"):
                await b.authenticate(wrong)
        attempts = len(fake.login_attempts)
        with pytest.raises(BrokerAuthError) as caught:
            await b.authenticate(USER)  # even the right password now meets the captcha
    assert len(fake.login_attempts) == attempts + 1
    message = str(caught.value)
    assert "log in once on the Tradovate website" in message and "in an hour" in message
    assert USER["password"] not in message and "wrong-password-1" not in message


@pytest.mark.parametrize(
    ("status", "words"),
    [("TemporaryLocked", "temporarily locked"), ("UnconfirmedEmail", "e-mail"), ("Closed", "closed")],
)
async def test_a_user_that_is_not_active_is_a_clear_auth_error(fake, status, words):
    fake.user_status = status
    async with broker(fake) as b:
        with pytest.raises(BrokerAuthError, match=words):
            await b.authenticate(USER)


async def test_renewal_extends_the_session_and_an_expired_token_asks_for_a_login(fake):
    async with broker(fake) as b:
        auth = await b.authenticate(USER)
        fake.advance(70 * 60)
        renewed = await b.refresh_token(USER, auth)
        assert renewed is not None and renewed.expires_at > auth.expires_at
        assert renewed.state["device_id"] == auth.state["device_id"]
        fake.advance(81 * 60)
        assert await b.refresh_token(USER, renewed) is None
        with pytest.raises(BrokerAuthError):
            await b.get_accounts(renewed)
    assert (fake.logins, fake.renewals) == (1, 1)


async def test_a_429_lockout_pauses_the_user_for_an_hour_after_one_request(fake):
    async with broker(fake) as b:
        auth = await b.authenticate(USER)
        [account, _] = await b.get_accounts(auth)
        fake.lock_out()
        sent = len(fake.requests)
        with pytest.raises(BrokerRateLimitError) as caught:
            [p async for p in b.iter_trades(auth, account)]
        assert len(fake.requests) == sent + 1  # no retry into a lockout
        assert caught.value.retry_after == 3600
        assert "locked this user out for an hour" in str(caught.value.__cause__ or caught.value)
        with pytest.raises(BrokerRateLimitError):  # the core's limiter holds the user's key: nothing is sent
            await b.get_accounts(auth)
        assert len(fake.requests) == sent + 1


async def test_a_423_warning_stops_the_sync_before_the_lockout(fake):
    async with broker(fake) as b:
        auth = await b.authenticate(USER)
        fake.warn()
        with pytest.raises(BrokerRateLimitError) as caught:
            await b.get_accounts(auth)
    assert caught.value.retry_after == 900
    assert "about to be locked out" in str(caught.value.__cause__)


async def test_violations_and_error_text_bodies_are_clear_errors(fake):
    async with broker(fake) as b:
        auth = await b.authenticate(USER)
        [account, _] = await b.get_accounts(auth)
        fake.max_ids = 1  # the fake refuses batches larger than one id with {"violations": [...]}
        with pytest.raises(BrokerApiError, match="refused: masterids: too many"):
            [p async for p in b.iter_trades(auth, account)]


async def test_redirects_keep_the_token_on_the_apis_hosts_only(fake):
    async with broker(fake) as b:
        auth = await b.authenticate(USER)
        fake.redirect_to = "org-7.tradovateapi.com"
        accounts = await b.get_accounts(auth)
        assert len(accounts) == 2
        org = [r for r in fake.requests if r.url.host == "org-7.tradovateapi.com"]
        assert org and all(r.headers.get("Authorization") == f"Bearer {auth.access_token}" for r in org)
        fake.redirect_to = "collector.example.net"
        with pytest.raises(BrokerAuthError):
            await b.get_accounts(auth)
        foreign = [r for r in fake.requests if r.url.host == "collector.example.net"]
        assert foreign and all("Authorization" not in r.headers for r in foreign)


async def test_prices_are_exact_decimals_from_the_json_text(fake):
    async with broker(fake) as b:
        auth = await b.authenticate(USER)
        account = next(a for a in await b.get_accounts(auth) if a.id == "70001")
        [batch] = [x async for x in b.iter_trades(auth, account)]
    cl = next(t for t in batch.trades if t.symbol == "CLF7")
    assert str(cl.entry_price) == "71.37" and str(cl.exit_price) == "71.52"
    assert cl.opened_at == dt.datetime(2026, 11, 2, 22, 17, 41, 125000, tzinfo=dt.UTC)
    assert str(cl.fees) == "4.60"  # (0.59 + 0.19 + 1.50 + 0.02) on each side


async def test_the_device_id_is_stable_and_a_given_one_wins():
    assert derive_device_id("Ann", "4127") == derive_device_id(" ann ", "4127")
    assert derive_device_id("ann", "4127") != derive_device_id("ann", "4128")
    fake = standard_book(FakeTradovate())
    async with broker(fake) as b:
        await b.authenticate({**USER, "device_id": "my-desk-01"})
    assert fake.login_attempts[-1]["deviceId"] == "my-desk-01"


def test_the_plugin_is_listed_by_the_cli():
    import subprocess
    import sys
    from pathlib import Path

    exe = str(Path(sys.executable).parent / "brokersync")
    result = subprocess.run([exe, "plugins", "--json"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert '"tradovate"' in result.stdout and "brokersync-tradovate" in result.stdout


def test_discovering_the_plugin_does_not_import_httpx():
    import subprocess
    import sys

    code = (
        "import sys, brokersync; brokersync.get_broker_metadata('tradovate');"
        "print(sorted(m for m in ('httpx', 'brokersync_tradovate.client') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


async def test_the_page_carries_open_positions_fills_and_busts(fake):
    from brokersync import Execution, ExecutionCancellation, Side, TradeCancellation
    from brokersync_tradovate import plugin

    async with broker(fake) as b:
        auth = await b.authenticate(USER)
        account = next(a for a in await b.get_accounts(auth) if a.id == "70001")
        [page] = [p async for p in plugin.get_trades(b.context, auth, account, None, None)]
    positions = {p.instrument.symbol: p for p in page.positions}
    assert set(positions) == {"MESZ6", "NQZ6"}  # the unpaired MES buy, and the NQ buy the bust reopened
    assert (positions["MESZ6"].quantity, positions["MESZ6"].average_price) == (2, Decimal("5901.25"))
    assert positions["MESZ6"].instrument.multiplier == 5 and positions["MESZ6"].instrument.instrument_id == "2003"
    assert (positions["NQZ6"].quantity, positions["NQZ6"].average_price) == (1, Decimal("20120.25"))
    fills = [e for e in page.executions if isinstance(e, Execution)]
    assert len(fills) == len([f for f in fake.entities["fill"].values() if f["active"] and f["orderId"] in {
        o["id"] for o in fake.entities["order"].values() if o["accountId"] == 70001
    }])  # fmt: skip
    cl_buy = next(f for f in fills if f.instrument.symbol == "CLF7" and f.side is Side.BUY)
    assert (cl_buy.price, cl_buy.fees, cl_buy.fee_currency) == (Decimal("71.37"), Decimal("2.30"), "USD")
    assert [type(c) for c in page.cancellations] == [TradeCancellation, ExecutionCancellation]
    assert page.cancellations[0].reason == "TradeCancel: Busted by the exchange"
