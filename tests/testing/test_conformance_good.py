"""The well-behaved example plugin passes every conformance rule (the suite run in-process)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from acme_broker import USERS, AcmePlugin, FakeAcmeApi
from brokersync.testing import RULES, BrokerConformance

VALID = {"username": "demo", "password": USERS["demo"]}
INVALID = {"username": "demo", "password": "wrong-password"}


@pytest.fixture(autouse=True)
def _installed(acme_installed: Path) -> None:
    """The suite's entry-point rule needs the plugin installed: the fixture writes its dist-info."""


class TestAcmeConformance(BrokerConformance):
    broker_key = "acme"
    plugin = AcmePlugin
    valid_credentials = VALID
    invalid_credentials = INVALID

    def make_transport(self) -> httpx.AsyncBaseTransport:
        return FakeAcmeApi().transport()


def test_every_rule_has_its_own_test() -> None:
    methods = {
        name.removeprefix("test_").replace("_", "-") for name in dir(BrokerConformance) if name.startswith("test_")
    }
    assert methods == set(RULES)
