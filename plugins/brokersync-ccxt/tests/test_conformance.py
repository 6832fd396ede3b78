"""The core's conformance suite for the five exchanges with offline fakes.

The plugin reports executions only; every rule runs for real (the suite checks executions and the
round trips the core pairs from them).
"""

from __future__ import annotations

import datetime as dt
from types import MappingProxyType as frozen
from typing import Any

import httpx
from brokersync.testing import BrokerConformance
from fakes import NOW_MS, FakeBinance, FakeBybit, FakeCoinbase, FakeKraken, FakeOkx

KEY = {"api_key": "key-1", "secret": "c2VjcmV0LXNlY3JldA=="}
_COINBASE = FakeCoinbase()  # one EC key for the class: the fake it makes per test registers it


class _Exchange(BrokerConformance):
    fake: Any

    def clock(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(NOW_MS / 1000, dt.UTC)

    def make_transport(self) -> httpx.AsyncBaseTransport:
        return self.fake().transport()  # type: ignore[no-any-return]


class TestBinanceConformance(_Exchange):
    broker_key = "binance"
    fake = FakeBinance
    valid_credentials = KEY
    invalid_credentials = frozen({**KEY, "secret": "bm90LXRoZS1zZWNyZXQ="})


class TestKrakenConformance(_Exchange):
    broker_key = "kraken"
    fake = FakeKraken
    valid_credentials = KEY
    invalid_credentials = frozen({**KEY, "secret": "bm90LXRoZS1zZWNyZXQ="})


class TestBybitConformance(_Exchange):
    broker_key = "bybit"
    fake = FakeBybit
    valid_credentials = KEY
    invalid_credentials = frozen({**KEY, "secret": "bm90LXRoZS1zZWNyZXQ="})
    max_requests_per_fetch = 400  # 7-day windows over two years, two categories


class TestOkxConformance(_Exchange):
    broker_key = "okx"
    fake = FakeOkx
    valid_credentials = frozen({**KEY, "password": "pass-phrase-1"})
    invalid_credentials = frozen({**KEY, "password": "not-the-pass-phrase"})


def _coinbase() -> FakeCoinbase:
    fake = FakeCoinbase()
    fake.accepted_keys = _COINBASE.accepted_keys
    return fake


class TestCoinbaseConformance(_Exchange):
    broker_key = "coinbase"
    fake = staticmethod(_coinbase)
    valid_credentials = frozen(_COINBASE.credentials)
    invalid_credentials = frozen({**_COINBASE.credentials, "secret": FakeCoinbase().secret})
