"""Fixtures for the sim plugin's tests: a fake API with an injected clock, and the broker facade."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import brokersync
import pytest
from brokersync_sim import SimAPI

CREDENTIALS = {"username": "alice", "password": "sim-password"}


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self) -> None:
        self.now = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_broker(clock: FakeClock) -> Callable[..., tuple[SimAPI, brokersync.Broker]]:
    """Build ``(api, broker)``: the sim plugin through the core facade, served in-process by ``api``."""

    def make(**options: Any) -> tuple[SimAPI, brokersync.Broker]:
        options.setdefault("clock", clock)
        api = SimAPI(**options)
        return api, brokersync.get_broker("sim", transport=api.transport(), clock=clock)

    return make


async def _sync_account(broker: brokersync.Broker, auth: brokersync.AuthResult, account: brokersync.Account, **kw: Any):
    trades: dict[str, brokersync.Trade] = {}
    errors: list[Any] = []
    cursor = None
    pages = 0
    async for batch in broker.iter_trades(auth, account, **kw):
        pages += 1
        for trade in batch.trades:
            trades[trade.broker_trade_id] = trade
        errors.extend(batch.errors)
        cursor = batch.cursor
    return trades, errors, cursor, pages


@pytest.fixture
def sync_account():
    """Read an account's feed to the end: ``(trades by id, record errors, last cursor, pages)``."""
    return _sync_account


@pytest.fixture
def credentials() -> dict[str, str]:
    return dict(CREDENTIALS)
