"""Fixtures: virtual time shared by the core's limiter and the fake service, and the facade on the fake."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import brokersync
import pytest
from brokersync import Resilience

sys.path.insert(0, str(Path(__file__).parent))

from fake_flex import FakeFlex
from flexgen import scenario, statement_xml
from ibkr_support import QUERY, VirtualTime


@pytest.fixture
def vt() -> VirtualTime:
    return VirtualTime()


@pytest.fixture
def statement() -> bytes:
    fills, accounts = scenario()
    return statement_xml(fills, accounts)


@pytest.fixture
def fake(vt: VirtualTime, statement: bytes) -> FakeFlex:
    return FakeFlex(statements={QUERY: statement}, clock=vt.clock)


@pytest.fixture
def make_broker(vt: VirtualTime) -> Callable[..., brokersync.Broker]:
    def make(fake: FakeFlex, *, limits: bool = True, **options: Any) -> brokersync.Broker:
        transport = fake.transport()
        resilience = Resilience(clock=vt.clock, sleep=vt.sleep, **({} if limits else {"rate_limits": {"ibkr": []}}))
        return brokersync.get_broker(
            "ibkr",
            http=lambda broker: resilience.client_for(broker, transport=transport, account_id="conn-1"),
            sleep=vt.sleep,
            options=options,
        )

    return make
