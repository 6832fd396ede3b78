"""The two-step Flex flow against the fake service: polling, every error code, 5xx, the rate limit."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import brokersync
import pytest
from brokersync import (
    BrokerApiError,
    BrokerAuthError,
    BrokerServerError,
    ConfigurationError,
    Execution,
)
from brokersync_ibkr.client import StatementNotReadyError
from fake_flex import FakeFlex
from ibkr_support import CREDENTIALS, QUERY, TOKEN, VirtualTime

Make = Callable[..., brokersync.Broker]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def connect(broker: brokersync.Broker, credentials: dict[str, str] | None = None) -> tuple[Any, list[Any]]:
    async with broker:
        auth = await broker.authenticate(credentials or CREDENTIALS)
        accounts = await broker.get_accounts(auth)
        return auth, accounts


async def executions(broker: brokersync.Broker, account_id: str) -> list[Execution]:
    async with broker:
        auth = await broker.authenticate(CREDENTIALS)
        accounts = {a.id: a for a in await broker.get_accounts(auth)}
        out: list[Execution] = []
        async for page in broker._pm.hook.get_trades(  # the facade drops executions until pairing lands
            ctx=broker.context, auth=auth, account=accounts[account_id], since=None, cursor=None
        ):
            out.extend(e for e in page.executions if isinstance(e, Execution))
        return out


def test_both_steps_with_v3_user_agent_and_polls(fake: FakeFlex, make_broker: Make, vt: VirtualTime) -> None:
    fake.polls = 3
    auth, accounts = run(connect(make_broker(fake)))
    assert [a.id for a in accounts] == ["U1111111", "U2222222"]
    assert [a.currency for a in accounts] == ["USD", "EUR"]
    steps = [r.step for r in fake.requests]
    assert steps == ["SendRequest", "GetStatement", "GetStatement", "GetStatement", "GetStatement"]
    assert all(r.params["v"] == "3" and r.user_agent and "brokersync-ibkr" in r.user_agent for r in fake.requests)
    assert fake.requests[0].params == {"t": TOKEN, "q": QUERY, "v": "3"}
    assert {r.params["q"] for r in fake.requests[1:]} == {fake.requests[1].params["q"]} != {QUERY}
    assert sum(s for s in vt.sleeps if s >= 5) >= 15  # three "in progress" answers waited through ctx.sleep
    assert fake.throttled == 0  # the core's limiter kept us within 1/s and 10/min
    assert auth.expires_at is None and auth.state["query_ids"] == [QUERY]


def test_one_download_per_run_shared_by_accounts_and_trades(fake: FakeFlex, make_broker: Make) -> None:
    found = run(executions(make_broker(fake), "U2222222"))
    assert sorted(e.broker_execution_id for e in found) == ["6001", "6002", "6003", "6004"]
    assert fake.served == 1 and [r.step for r in fake.requests].count("SendRequest") == 1


def test_still_preparing_after_the_bounded_wait(fake: FakeFlex, make_broker: Make, vt: VirtualTime) -> None:
    fake.polls = 1000
    with pytest.raises(StatementNotReadyError, match="still preparing the statement of Flex query 987654") as info:
        run(connect(make_broker(fake, max_statement_wait=120)))
    assert isinstance(info.value, BrokerServerError) and info.value.retry_after
    assert 60 <= sum(s for s in vt.sleeps if s >= 5) <= 120


@pytest.mark.parametrize(
    ("code", "error", "words"),
    [
        ("1012", BrokerAuthError, "expired; generate a new token"),
        ("1015", BrokerAuthError, "token is invalid"),
        ("1013", BrokerAuthError, "IP restriction"),
        ("1011", BrokerAuthError, "inactive"),
        ("1025", BrokerAuthError, "locked"),
        ("1014", ConfigurationError, "Flex query 987654 is invalid"),
        ("1010", ConfigurationError, "Flex query 987654 is a legacy"),
        ("1016", ConfigurationError, "Flex query 987654 refers to an account"),
        ("1003", BrokerApiError, "no statement for Flex query 987654"),
        ("1020", BrokerApiError, "1020"),
    ],
    ids=lambda v: v if isinstance(v, str) and v.isdigit() else "",
)
def test_error_codes_at_send_request(fake: FakeFlex, make_broker: Make, code: str, error: type, words: str) -> None:
    fake.fail_next("SendRequest", code)
    with pytest.raises(error, match=words) as info:
        run(connect(make_broker(fake)))
    assert TOKEN not in str(info.value)
    assert len(fake.requests) == 1  # fatal codes are not retried


@pytest.mark.parametrize("code", ["1001", "1009", "1021"])
def test_service_unavailable_codes_are_retried(fake: FakeFlex, make_broker: Make, code: str) -> None:
    fake.fail_next("GetStatement", code)
    fake.fail_next("GetStatement", code)
    _, accounts = run(connect(make_broker(fake)))
    assert len(accounts) == 2 and fake.served == 1


def test_token_expired_while_fetching_the_statement(fake: FakeFlex, make_broker: Make) -> None:
    fake.fail_next("GetStatement", "1012")
    with pytest.raises(BrokerAuthError, match="new token"):
        run(connect(make_broker(fake)))


def test_http_5xx_with_an_html_body_is_retried(fake: FakeFlex, make_broker: Make) -> None:
    fake.fail_next("GetStatement", 503, b"<html><body><h1>Service Unavailable</h1></body></html>")
    fake.fail_next("SendRequest", 502, b"<html><body>Bad Gateway</body></html>")
    _, accounts = run(connect(make_broker(fake)))
    assert len(accounts) == 2


def test_html_maintenance_page_with_200_is_a_server_error(fake: FakeFlex, make_broker: Make) -> None:
    for _ in range(10):
        fake.fail_next("SendRequest", 200, b"<html><body>Scheduled maintenance</body></html>")
    with pytest.raises(BrokerServerError, match="HTML page instead of XML"):
        run(connect(make_broker(fake)))


def test_1018_when_requests_arrive_too_fast_is_waited_out(fake: FakeFlex, make_broker: Make, vt: VirtualTime) -> None:
    # Without the core's limiter every request arrives at once: the fake answers 1018, the core
    # waits the plugin's retry_after and the sync still completes.
    fake.polls = 0
    _, accounts = run(connect(make_broker(fake, limits=False)))
    assert fake.throttled >= 1
    assert len(accounts) == 2
    assert any(s >= 60 for s in vt.sleeps)


def test_scripted_1018_is_retried_after_its_wait(fake: FakeFlex, make_broker: Make, vt: VirtualTime) -> None:
    fake.fail_next("GetStatement", "1018")
    _, accounts = run(connect(make_broker(fake)))
    assert len(accounts) == 2 and any(s >= 60 for s in vt.sleeps)


def test_eleven_requests_in_a_minute_wait_for_the_limiter(fake: FakeFlex, make_broker: Make, vt: VirtualTime) -> None:
    fake.polls = 12  # 13 requests for one statement: the 11th must wait for the minute window
    _, accounts = run(connect(make_broker(fake, max_statement_wait=600)))
    assert len(accounts) == 2 and fake.throttled == 0
    times = [r.at for r in fake.requests]
    assert all(b - a >= 1 for a, b in itertools.pairwise(times))
    assert all(times[i + 10] - times[i] >= 60 for i in range(len(times) - 10))


def test_expired_reference_code_restarts_at_send_request(fake: FakeFlex, make_broker: Make) -> None:
    fake.fail_next("GetStatement", "1017")
    _, accounts = run(connect(make_broker(fake)))
    assert len(accounts) == 2
    assert [r.step for r in fake.requests].count("SendRequest") == 2


def test_legacy_url_in_the_answer_is_never_used(fake: FakeFlex, make_broker: Make) -> None:
    fake.statement_url = "https://gdcdyn.interactivebrokers.com/Universal/servlet/FlexStatementService.GetStatement"
    _, accounts = run(connect(make_broker(fake)))
    assert len(accounts) == 2
    assert all("Universal" not in r.step for r in fake.requests)


def test_missing_url_falls_back(fake: FakeFlex, make_broker: Make) -> None:
    fake.statement_url = None
    _, accounts = run(connect(make_broker(fake)))
    assert len(accounts) == 2 and fake.served == 1


@pytest.mark.parametrize(
    ("credentials", "words"),
    [
        ({"token": TOKEN, "query_id": "abc"}, "numeric Flex query ids"),
        ({"token": TOKEN, "query_id": QUERY, "time_zone": "Mars/Olympus"}, "unknown time zone"),
    ],
)
def test_bad_settings_are_refused_before_any_request(
    fake: FakeFlex, make_broker: Make, credentials: dict[str, str], words: str
) -> None:
    with pytest.raises(ConfigurationError, match=words):
        run(connect(make_broker(fake), credentials))
    assert fake.requests == []


def test_several_query_ids(fake: FakeFlex, make_broker: Make, statement: bytes) -> None:
    fake.statements["111"] = statement.replace(b"U2222222", b"U3333333")
    _, accounts = run(connect(make_broker(fake), {"token": TOKEN, "query_id": f"{QUERY}, 111"}))
    assert [a.id for a in accounts] == ["U1111111", "U2222222", "U3333333"]


def test_the_token_never_reaches_the_logs(fake: FakeFlex, make_broker: Make) -> None:
    from loguru import logger

    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message) + repr(message.record["extra"])), level="DEBUG")
    logger.enable("brokersync")
    try:
        fake.fail_next("GetStatement", "1018")
        run(connect(make_broker(fake)))
    finally:
        logger.remove(sink)
        logger.disable("brokersync")
    assert any("GetStatement" in line for line in lines)  # requests were logged, with their query
    assert not any(TOKEN in line for line in lines)


def test_pages_and_the_cursor(fake: FakeFlex, make_broker: Make) -> None:
    async def pages() -> list[Any]:
        broker = make_broker(fake)
        async with broker:
            auth = await broker.authenticate(CREDENTIALS)
            account = (await broker.get_accounts(auth))[0]
            return [
                p
                async for p in broker._pm.hook.get_trades(
                    ctx=broker.context, auth=auth, account=account, since=None, cursor=None
                )
            ]

    [page] = run(pages())
    assert page.cursor is None  # CursorKind.NONE: nothing resumes from a cursor
    # 16 execution rows, one a TradeCorrect of 5003: reported once, with the corrected price
    ids = [e.broker_execution_id for e in page.executions]
    assert len(ids) == len(set(ids)) == 15 and len(page.cancellations) == 1
    assert next(e.price for e in page.executions if e.broker_execution_id == "5003") == Decimal("401.50")


def test_a_hostile_statement_from_the_service_is_refused(fake: FakeFlex, make_broker: Make) -> None:
    fake.statements[QUERY] = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><FlexQueryResponse>&a;</FlexQueryResponse>'
    )
    with pytest.raises(BrokerApiError, match="statement of Flex query 987654 is unreadable: refused: the XML contains"):
        run(connect(make_broker(fake)))
    fake.statements[QUERY] = b"<FlexQueryResponse><FlexStatements><FlexStatement accountId='U1'>"
    with pytest.raises(BrokerApiError, match="cut short"):
        run(connect(make_broker(fake)))
