"""The brokersync conformance suite against the Tradovate plugin and the fake API (one test per rule)."""

from __future__ import annotations

import httpx
from brokersync.testing import BrokerConformance
from brokersync_tradovate import plugin as tradovate_plugin
from tradovate_fake import USER, FakeTradovate, standard_book


class TestTradovateConformance(BrokerConformance):
    broker_key = "tradovate"
    plugin = tradovate_plugin
    environment = "demo"
    valid_credentials = dict(USER)
    invalid_credentials = {**USER, "password": "not-Ann-s-password"}

    def make_transport(self) -> httpx.AsyncBaseTransport:
        return standard_book(FakeTradovate()).transport()
