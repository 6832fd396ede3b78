"""Test kit for broker plugin authors and integrators: the conformance suite, transports for fake
broker APIs, and :class:`FakeClock` (one virtual time for every injected clock and sleep).

Run the whole suite from a plugin's own tests::

    import httpx
    from brokersync.testing import BrokerConformance

    class TestAcmeConformance(BrokerConformance):
        broker_key = "acme"
        valid_credentials = {"username": "demo", "password": "demo-password"}
        invalid_credentials = {"username": "demo", "password": "wrong-password"}

        def make_transport(self) -> httpx.AsyncBaseTransport:
            return FakeAcmeApi().transport()

Each check is its own pytest test, named after its rule (see :data:`RULES`); a failure names the
rule, the broker and the offending record. An export file format (the ``file_formats`` hook) is
checked the same way by :class:`FileFormatConformance` (rules in :data:`FILE_RULES`), fed with
:class:`FileSample` files. This package imports httpx: import it from tests only.
"""

from __future__ import annotations

from brokersync.testing._clock import FakeClock
from brokersync.testing._files_base import FileSample
from brokersync.testing._files_suite import FileFormatConformance
from brokersync.testing._rules import FILE_RULES, RULES, ConformanceFailure, Rule
from brokersync.testing._suite import BrokerConformance
from brokersync.testing._transport import (
    BypassRecord,
    ObservedTransport,
    RecordedRequest,
    network_guard,
    response_sequence,
)

__all__ = [
    "FILE_RULES",
    "RULES",
    "BrokerConformance",
    "BypassRecord",
    "ConformanceFailure",
    "FakeClock",
    "FileFormatConformance",
    "FileSample",
    "ObservedTransport",
    "RecordedRequest",
    "Rule",
    "network_guard",
    "response_sequence",
]
