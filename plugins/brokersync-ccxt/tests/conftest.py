"""Fixtures: each exchange's broker through the public facade, on a fake API and a virtual clock."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import brokersync
import brokersync_ccxt.brokers
import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the fakes and helpers beside the tests (importlib mode)

from fakes import NOW_MS

# Every plugin's tests have a conftest.py: the test modules import this one's helpers under a name
# of its own, so the whole suite (all plugins at once, importlib mode) finds the right one.
sys.modules.setdefault("ccxt_conftest", sys.modules[__name__])

pytestmark = pytest.mark.anyio

NOW = dt.datetime.fromtimestamp(NOW_MS / 1000, dt.UTC)


@attrs.define
class VirtualTime:
    """Seconds that only move when someone sleeps: limiter and retry waits cost no real time."""

    now: float = NOW_MS / 1000
    sleeps: list[float] = attrs.field(factory=list)

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def vtime() -> VirtualTime:
    return VirtualTime()


@pytest.fixture
def resilience(vtime: VirtualTime) -> brokersync.Resilience:
    return brokersync.Resilience(clock=vtime.clock, sleep=vtime.sleep)


@pytest.fixture
def open_broker(resilience: brokersync.Resilience, vtime: VirtualTime) -> Callable[..., Any]:
    """Open exchange ``key`` on ``transport``; every request goes through ``resilience``'s client."""

    def make(key: str, transport: httpx.AsyncBaseTransport, **options: Any) -> brokersync.Broker:
        return brokersync.get_broker(
            key,
            transport=transport,
            http=lambda broker: resilience.client_for(broker),
            clock=lambda: dt.datetime.fromtimestamp(vtime.now, dt.UTC),
            sleep=vtime.sleep,
            options=options,
        )

    return make


async def collect(
    broker: brokersync.Broker, credentials: dict[str, str], cursor: str | None = None
) -> tuple[list[brokersync.Execution], str | None]:
    """Every execution a full ``get_trades`` yields (the plugin hook, called as the engine does), the last cursor."""
    auth = await broker.authenticate(credentials)
    [account] = await broker.get_accounts(auth)
    executions: list[brokersync.Execution] = []
    last = cursor
    # The facade's iter_trades does not carry executions yet (the engine's pairing lands separately):
    # call the plugin's hook with the facade's context, exactly as the facade would.
    plugin = getattr(brokersync_ccxt.brokers, broker.key)
    async for page in plugin.get_trades(ctx=broker.context, auth=auth, account=account, since=None, cursor=cursor):
        executions.extend(e for e in page.executions)
        last = page.cursor or last
    return executions, last


async def budget_waits(
    vtime: VirtualTime,
    key: str,
    runs: list[tuple[httpx.AsyncBaseTransport, dict[str, str]]],
    units: int,
    **options: Any,
) -> float:
    """Seconds slept while ``runs`` (transport, credentials) sync at once under one fresh limiter of ``units``.

    One :class:`brokersync.Resilience` stands for one process (or several sharing Redis): connections
    of the same API key draw on one budget, other keys on their own.
    """
    resilience = brokersync.Resilience(
        clock=vtime.clock,
        sleep=vtime.sleep,
        rate_limits={key: brokersync.RateLimit(max_requests=units, window_seconds=10, scope="account")},
    )
    before = len(vtime.sleeps)

    async def one(transport: httpx.AsyncBaseTransport, credentials: dict[str, str]) -> int:
        broker = brokersync.get_broker(
            key,
            transport=transport,
            http=lambda b: resilience.client_for(b),
            clock=lambda: dt.datetime.fromtimestamp(vtime.now, dt.UTC),
            sleep=vtime.sleep,
            options=options,
        )
        async with broker:
            executions, _ = await collect(broker, credentials)
        return len(executions)

    counts = await asyncio.gather(*(one(t, c) for t, c in runs))
    assert all(counts), "every connection must have synced fills"
    return sum(vtime.sleeps[before:])
