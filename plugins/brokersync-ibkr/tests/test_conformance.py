"""The brokersync conformance suite, against the ibkr plugin and the fake Flex Web Service."""

from __future__ import annotations

import httpx
from brokersync.testing import BrokerConformance
from brokersync_ibkr import plugin as ibkr_plugin
from fake_flex import FakeFlex
from flexgen import scenario, statement_xml
from ibkr_support import CREDENTIALS, TOKEN

WRONG = {"token": TOKEN[::-1], "query_id": CREDENTIALS["query_id"]}


class TestIbkrConformance(BrokerConformance):
    broker_key = "ibkr"
    plugin = ibkr_plugin
    valid_credentials = CREDENTIALS
    invalid_credentials = WRONG

    def make_transport(self) -> httpx.AsyncBaseTransport:
        fills, accounts = scenario()
        # The suite's virtual clock is its own: the fake does not count arrivals (test_client does).
        # Statements are ready at once: the suite's paging-loop guard takes a repeated GetStatement
        # poll for a loop (polling is tested in test_client).
        fake = FakeFlex(
            statements={CREDENTIALS["query_id"]: statement_xml(fills, accounts)}, enforce_limits=False, polls=0
        )
        return fake.transport()
