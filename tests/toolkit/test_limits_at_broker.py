"""A declared rate limit holds where the broker counts: at the arrival of each request.

The fake broker here sits at the network boundary (an httpcore network backend, below httpx's
own transport): opening a connection takes time, as TCP + TLS set-up does under load, and the
broker records when each request's bytes arrive and refuses (429) one that arrives closer to the
previous than its limit allows, as IB's Flex service answers 1018.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpcore
import httpx
import pytest
from brokersync import (
    AuthType,
    BrokerMetadata,
    BrokerRateLimitError,
    BrokerRegistry,
    CredentialField,
    RateLimit,
    Resilience,
    RetryPolicy,
    hookimpl,
)

pytestmark = pytest.mark.anyio

WINDOW = 0.3  # one request per 0.3 s, as declared
TOLERANCE = 0.01


class Broker:
    """Counts arrivals; refuses a request that arrives within WINDOW of the previous accepted one."""

    def __init__(self, connect_delays: list[float]) -> None:
        self.connect_delays = connect_delays
        self.arrivals: list[float] = []
        self.refused = 0

    def answer(self) -> bytes:
        now = time.monotonic()
        accepted = [a for a in self.arrivals]
        self.arrivals.append(now)
        if accepted and now - accepted[-1] < WINDOW - TOLERANCE:
            self.refused += 1
            self.arrivals.pop()
            return b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\nRetry-After: 1\r\n\r\n"
        return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


class Stream(httpcore.AsyncNetworkStream):
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.incoming = b""
        self.outgoing = b""
        self.ready = asyncio.Event()

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.incoming += buffer
        if b"\r\n\r\n" in self.incoming:  # a GET without body: the request is complete
            self.incoming = b""
            self.outgoing += self.broker.answer()
            self.ready.set()

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        await self.ready.wait()
        data, self.outgoing = self.outgoing[:max_bytes], self.outgoing[max_bytes:]
        if not self.outgoing:
            self.ready.clear()
        return data

    async def aclose(self) -> None:
        return

    def get_extra_info(self, info: str) -> Any:
        return None


class Network(httpcore.AsyncNetworkBackend):
    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, **_: Any) -> Stream:
        delay = self.broker.connect_delays.pop(0) if self.broker.connect_delays else 0.0
        await asyncio.sleep(delay)  # connection set-up: slow for some connections, not others
        return Stream(self.broker)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class NetworkTransport(httpx.AsyncHTTPTransport):
    """httpx's own network transport, on the fake network."""

    def __init__(self, broker: Broker) -> None:
        super().__init__()
        self._pool = httpcore.AsyncConnectionPool(network_backend=Network(broker))


class Wrapped(httpx.AsyncBaseTransport):
    """The same network behind a wrapper that does not report when a request is written."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.inner.handle_async_request(request)


class Plugin:
    @hookimpl
    def broker_metadata(self) -> BrokerMetadata:
        return BrokerMetadata(
            key="flexlike",
            name="Flex-like",
            description="One request per 0.3 s, counted on arrival.",
            auth_type=AuthType.TOKEN,
            credential_fields=[CredentialField(name="token", secret=True)],
            environments={"live": "http://flex.test/v1"},
            rate_limits=[RateLimit(max_requests=1, window_seconds=WINDOW)],
            retry=RetryPolicy(max_retries=0),
            docs_url="https://flex.test/docs",
        )

    @hookimpl
    async def authenticate(self) -> None: ...

    @hookimpl
    async def get_accounts(self) -> list[Any]:
        return []

    @hookimpl
    async def get_trades(self) -> list[Any]:
        return []


async def _send(transport: httpx.AsyncBaseTransport, *, concurrent: bool) -> list[BaseException | None]:
    registry = BrokerRegistry(entry_points=False)
    registry.register("flexlike", Plugin())
    resilience = Resilience()
    async with registry.get("flexlike", transport=transport, http=lambda b: resilience.client_for(b)) as facade:
        http = facade.http

        async def one(n: int) -> BaseException | None:
            try:
                await http.get(f"statement/{n}")
            except BrokerRateLimitError as exc:
                return exc
            return None

        if concurrent:
            return list(await asyncio.gather(*(one(n) for n in range(4))))
        return [await one(n) for n in range(4)]


def _gaps(broker: Broker) -> list[float]:
    return [b - a for a, b in zip(broker.arrivals, broker.arrivals[1:], strict=False)]


async def test_a_slow_first_connection_does_not_squeeze_the_next_request_into_its_window():
    broker = Broker(connect_delays=[0.25])
    errors = await _send(NetworkTransport(broker), concurrent=False)
    assert errors == [None] * 4 and broker.refused == 0
    assert all(gap >= WINDOW - TOLERANCE for gap in _gaps(broker)), _gaps(broker)


async def test_concurrent_requests_on_connections_of_different_set_up_times_arrive_spaced():
    broker = Broker(connect_delays=[0.25, 0.0, 0.12, 0.0])
    errors = await _send(NetworkTransport(broker), concurrent=True)
    assert errors == [None] * 4 and broker.refused == 0
    assert len(broker.arrivals) == 4
    assert all(gap >= WINDOW - TOLERANCE for gap in _gaps(broker)), _gaps(broker)


async def test_the_fake_does_refuse_requests_whose_slot_was_taken_before_connecting():
    # Ground truth for the two tests above: a transport that cannot report when a request is
    # written gets the slot before the connection opens, and the broker sees the squeeze.
    broker = Broker(connect_delays=[0.25])
    errors = await _send(Wrapped(NetworkTransport(broker)), concurrent=False)
    assert broker.refused >= 1
    assert any(isinstance(e, BrokerRateLimitError) for e in errors)
