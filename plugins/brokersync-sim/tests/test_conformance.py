"""The brokersync conformance suite, run against the sim plugin and its fake API (one test per rule)."""

from __future__ import annotations

import httpx
from brokersync.testing import BrokerConformance
from brokersync_sim import SimAPI
from brokersync_sim import plugin as sim_plugin

VALID = {"username": "conformance", "password": "sim-password"}
WRONG = {"username": "conformance", "password": "not-the-password"}


class TestSimConformance(BrokerConformance):
    broker_key = "sim"
    plugin = sim_plugin
    valid_credentials = VALID
    invalid_credentials = WRONG

    def make_transport(self) -> httpx.AsyncBaseTransport:
        return SimAPI(seed=1, accounts=2, trades_per_account=1500, malformed_rate=0, fills=True).transport()
