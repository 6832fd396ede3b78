"""The transports plugin authors use in their own tests: sequences, injection, bypass detection."""

from __future__ import annotations

import brokersync
import httpx
import pytest
from acme_broker import USERS, AcmePlugin, FakeAcmeApi
from brokersync.testing import ObservedTransport, network_guard, response_sequence

pytestmark = pytest.mark.anyio


def _broker(transport: httpx.AsyncBaseTransport, waits: list[float]) -> brokersync.Broker:
    # Clock and sleep go together: each wait moves the clock, so the limiter sees the pause end.
    now = [1_700_000_000.0]

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    registry = brokersync.BrokerRegistry(entry_points=False)
    registry.register("acme", AcmePlugin)
    resilience = brokersync.Resilience(clock=lambda: now[0], sleep=sleep)
    return registry.get("acme", http=lambda b: resilience.client_for(b, transport=transport))


async def test_429_then_the_fake_is_a_wait_not_a_failure() -> None:
    transport = response_sequence((429, {"Retry-After": "3"}), then=FakeAcmeApi().transport())
    waits: list[float] = []
    async with _broker(transport, waits) as broker:
        auth = await broker.authenticate({"username": "demo", "password": USERS["demo"]})
    assert auth.access_token.startswith("acme-token-")
    assert [r.injected_status for r in transport.requests] == [429, None]
    assert waits and waits[0] >= 3


async def test_sequence_without_a_fallback_answers_404() -> None:
    transport = response_sequence(httpx.Response(200, json={"ok": True}))
    async with httpx.AsyncClient(transport=transport, base_url="https://x.test") as client:
        first = await client.get("/a")
        second = await client.get("/b")
    assert first.json() == {"ok": True}
    assert second.status_code == 404
    assert [r.url for r in transport.requests] == ["https://x.test/a", "https://x.test/b"]


async def test_inject_always_until_stopped() -> None:
    transport = ObservedTransport(FakeAcmeApi().transport())
    transport.inject_always(503)
    waits: list[float] = []
    async with _broker(transport, waits) as broker:
        with pytest.raises(brokersync.BrokerServerError):
            await broker.authenticate({"username": "demo", "password": USERS["demo"]})
        transport.inject_always(None)
        auth = await broker.authenticate({"username": "demo", "password": USERS["demo"]})
    assert auth.access_token
    assert transport.requests[-1].injected_status is None
    assert {r.injected_status for r in transport.requests[:-1]} == {503}


async def test_requests_outside_the_core_client_are_marked() -> None:
    transport = ObservedTransport(FakeAcmeApi().transport())
    async with httpx.AsyncClient(transport=transport, base_url="https://api.acme-broker.test/v1/") as client:
        await client.get("accounts")
    assert transport.bypassing_requests == transport.requests
    assert transport.core_requests == []


async def test_network_guard_refuses_and_records_then_restores_httpx() -> None:
    original = httpx.AsyncHTTPTransport.handle_async_request
    with network_guard() as bypasses:
        async with httpx.AsyncClient() as client:
            with pytest.raises(httpx.TransportError, match="send every request through ctx.http"):
                await client.get("https://api.acme-broker.test/v1/accounts")
    assert [(b.method, b.url) for b in bypasses] == [("GET", "https://api.acme-broker.test/v1/accounts")]
    assert httpx.AsyncHTTPTransport.handle_async_request is original
