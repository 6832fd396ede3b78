"""The brokersync conformance suite against the OANDA plugin and the fake v20 API."""

from __future__ import annotations

import datetime as dt

import httpx
from brokersync.testing import BrokerConformance
from brokersync_oanda import plugin as oanda_plugin
from fake_v20 import LIVE_TOKEN, PRACTICE_TOKEN
from histories import make_fake

VALID = {"token": PRACTICE_TOKEN}
WRONG_ENVIRONMENT = {"token": LIVE_TOKEN}  # a live token on the practice host


class TestOandaConformance(BrokerConformance):
    broker_key = "oanda"
    plugin = oanda_plugin
    environment = "practice"
    valid_credentials = VALID
    invalid_credentials = WRONG_ENVIRONMENT

    def make_transport(self) -> httpx.AsyncBaseTransport:
        return make_fake().transport()

    def clock(self) -> dt.datetime:
        return dt.datetime(2026, 3, 3, tzinfo=dt.UTC)
