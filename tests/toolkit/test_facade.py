"""The facade and the core client: errors name broker and connection; an async validate_response
counts; a rate-limit error can name what the resent request must carry (a penalty ticket)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from brokersync import (
    Account,
    AuthResult,
    AuthType,
    BrokerApiError,
    BrokerAuthError,
    BrokerMetadata,
    BrokerRateLimitError,
    BrokerRegistry,
    CredentialField,
    RateLimit,
    RequestChange,
    Resilience,
    RetryPolicy,
    hookimpl,
)

pytestmark = pytest.mark.anyio

BASE = "https://live.penalty.test/v1"


class FakeTime:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class PenaltyApi:
    """A login endpoint with penalty tickets, as Tradovate documents them.

    ``POST /auth/accesstokenrequest`` answers HTTP 200 ``{"p-ticket", "p-time"}`` to the first
    ``penalties`` attempts; the client must wait ``p-time`` seconds and send the identical body
    plus ``p-ticket``. A resend without the ticket, with a changed body, or too early gets a new,
    longer penalty; after ``captcha_after`` penalties it asks for a captcha (``p-captcha: true``).
    """

    def __init__(self, time: FakeTime, *, penalties: int = 1, captcha_after: int = 99) -> None:
        self.time = time
        self.penalties = penalties
        self.captcha_after = captcha_after
        self.bodies: list[dict[str, Any]] = []
        self.issued: dict[str, tuple[float, dict[str, Any]]] = {}
        self.given = 0

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(dict(body))
        ticket = body.pop("p-ticket", None)
        if ticket is not None:
            due, original = self.issued.get(ticket, (float("inf"), {}))
            if self.time.now >= due and original == body and self.given >= self.penalties:
                return httpx.Response(200, json={"accessToken": "tok-1", "expirationTime": "2027-01-01T00:00:00Z"})
        if self.given >= self.captcha_after:
            return httpx.Response(200, json={"p-ticket": "never", "p-time": 3600, "p-captcha": True})
        self.given += 1
        wait = 5 * self.given
        name = f"ticket-{self.given}"
        self.issued[name] = (self.time.now + wait, body)
        return httpx.Response(200, json={"p-ticket": name, "p-time": wait})


class PenaltyPlugin:
    @hookimpl
    def broker_metadata(self) -> BrokerMetadata:
        return BrokerMetadata(
            key="penalty",
            name="Penalty",
            description="Logins with penalty tickets.",
            auth_type=AuthType.PASSWORD,
            credential_fields=[CredentialField(name="name"), CredentialField(name="password", secret=True)],
            environments={"live": BASE},
            rate_limits=[RateLimit(max_requests=100, window_seconds=1)],
            retry=RetryPolicy(max_retries=4, initial_delay=1.0, jitter=0.0, max_retry_after=600.0),
            docs_url="https://penalty.test/docs",
        )

    @hookimpl
    async def validate_response(self, ctx: Any, response: httpx.Response) -> None:
        # async on purpose: a coroutine that is never awaited would let every penalty through.
        body = response.json() if response.content else None
        if isinstance(body, dict) and "p-ticket" in body:
            if body.get("p-captcha"):
                raise BrokerAuthError("the broker asks for a captcha: log in once on its website, retry in an hour")
            raise BrokerRateLimitError(
                "login penalty",
                retry_after=float(body["p-time"]),
                resend_with=RequestChange(json={"p-ticket": body["p-ticket"]}),
            )

    @hookimpl
    async def authenticate(self, ctx: Any, credentials: Any) -> AuthResult:
        body = {"name": credentials["name"], "password": credentials["password"], "appId": "journal", "cid": 7}
        response = await ctx.http.post("auth/accesstokenrequest", json=body)
        answer = response.json()
        if "accessToken" not in answer:
            raise BrokerApiError(f"no token in the login answer: {sorted(answer)}")
        return AuthResult(access_token=answer["accessToken"])

    @hookimpl
    async def get_accounts(self, ctx: Any) -> list[Account]:
        raise BrokerApiError("account list unavailable")  # no broker= : the facade names it

    @hookimpl
    async def get_trades(self) -> list[Any]:
        return []


def _broker(api: PenaltyApi, time: FakeTime, connection_id: str | None = "conn-7"):
    registry = BrokerRegistry(entry_points=False)
    registry.register("penalty", PenaltyPlugin())
    resilience = Resilience(clock=time.clock, sleep=time.sleep)
    return registry.get(
        "penalty",
        transport=httpx.MockTransport(api.handle),
        connection_id=connection_id,
        http=lambda broker: resilience.client_for(broker),
    )


CREDENTIALS = {"name": "alice", "password": "pw-9"}


@pytest.mark.parametrize("penalties", [1, 2], ids=["one-ticket", "two-tickets"])
async def test_a_login_that_gets_a_penalty_ticket_succeeds_after_p_time_with_the_identical_body(penalties: int):
    time = FakeTime()
    api = PenaltyApi(time, penalties=penalties)
    async with _broker(api, time) as broker:
        auth = await broker.authenticate(CREDENTIALS)
    assert auth.access_token == "tok-1"
    first = api.bodies[0]
    assert "p-ticket" not in first
    # Every resend is the first body plus the latest ticket, after the broker's p-time.
    assert [b.get("p-ticket") for b in api.bodies[1:]] == [f"ticket-{n}" for n in range(1, penalties + 1)]
    assert all({k: v for k, v in b.items() if k != "p-ticket"} == first for b in api.bodies)
    assert time.sleeps[:penalties] == [5.0 * n for n in range(1, penalties + 1)]


async def test_a_captcha_ends_the_login_with_an_auth_error_and_no_loop():
    time = FakeTime()
    api = PenaltyApi(time, penalties=5, captcha_after=1)
    async with _broker(api, time) as broker:
        with pytest.raises(BrokerAuthError, match="captcha") as caught:
            await broker.authenticate(CREDENTIALS)
    assert len(api.bodies) == 2
    assert caught.value.broker == "penalty" and caught.value.connection_id == "conn-7"


async def test_broker_errors_raised_by_a_plugin_name_the_broker_and_connection():
    time = FakeTime()
    api = PenaltyApi(time, penalties=0)
    async with _broker(api, time) as broker:
        auth = await broker.authenticate(CREDENTIALS)
        with pytest.raises(BrokerApiError, match="account list unavailable") as caught:
            await broker.get_accounts(auth)
    assert caught.value.broker == "penalty"
    assert caught.value.connection_id == "conn-7"
