"""The brokersync conformance suite against the Tradovate plugin and the fake API (one test per rule)."""

from __future__ import annotations

import httpx
from brokersync.testing import BrokerConformance
from brokersync_tradovate import plugin as tradovate_plugin
from tradovate_fake import USER, FakeTradovate, standard_book

VALID = dict(USER)
WRONG = {**USER, "password": "not-Ann-s-password"}


class TestTradovateConformance(BrokerConformance):
    broker_key = "tradovate"
    plugin = tradovate_plugin
    environment = "demo"
    valid_credentials = VALID
    invalid_credentials = WRONG

    def make_transport(self) -> httpx.AsyncBaseTransport:
        return standard_book(FakeTradovate()).transport()
