"""The conformance suite: a base class whose test methods check one rule each."""

from __future__ import annotations

from brokersync.testing._checks_client import ClientChecks
from brokersync.testing._checks_data import DataChecks
from brokersync.testing._checks_executions import ExecutionChecks
from brokersync.testing._checks_hygiene import HygieneChecks
from brokersync.testing._checks_plugin import PluginChecks
from brokersync.testing._checks_root import RootCauseChecks

__all__ = ["BrokerConformance"]


class BrokerConformance(RootCauseChecks, PluginChecks, DataChecks, ClientChecks, ExecutionChecks, HygieneChecks):
    """Subclass this in a plugin's tests (name the subclass ``Test...``) to run the conformance suite.

    Each ``test_*`` method checks one rule of :data:`brokersync.testing.RULES` and fails with a
    :class:`~brokersync.testing.ConformanceFailure` that names the rule and the offending record.
    The plugin is run once first (``plugin-runs``): when it does not load, log in, list accounts or
    fetch trades, the rule that owns that failure reports it and the checks that need the broken
    step are skipped with a pointer to it (so one cause fails one rule). A subclass that defines
    ``setup_method`` calls ``super().setup_method(method)``.

    Example::

        from brokersync.testing import BrokerConformance

        class TestAcmeConformance(BrokerConformance):
            broker_key = "acme"
            plugin = acme_plugin  # optional: without it the entry point is loaded
            valid_credentials = {"username": "demo", "password": "demo-password"}
            invalid_credentials = {"username": "demo", "password": "wrong-password"}

            def make_transport(self) -> httpx.AsyncBaseTransport:
                return FakeAcmeApi().transport()

    Attributes:
        broker_key: The broker key (the entry point name).
        plugin: The plugin object; ``None`` loads it through its entry point.
        valid_credentials: Credentials the fake accepts.
        invalid_credentials: Credentials the fake rejects (same fields, a wrong secret).
        environment: The environment to test (default: the broker's default).
        since_tolerance: How much earlier than ``since`` a returned trade may close (for brokers
            whose API filters by day).
        max_requests_per_fetch: Most requests one ``get_trades`` call may send.
        retry_after_seconds: The ``Retry-After`` of the injected 429.
    """
