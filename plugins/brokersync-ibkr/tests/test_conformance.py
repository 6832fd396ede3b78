"""The brokersync conformance suite, against the ibkr plugin and the fake Flex Web Service."""

from __future__ import annotations

import httpx
from brokersync import BrokerRateLimitError, BrokerServerError, BrokerUnavailableError
from brokersync.testing import BrokerConformance
from brokersync.testing._harness import Scenario  # the suite's own plumbing, for the overrides
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

    # --- two rules after the statement get_accounts left in ctx.cache was read ----------------------
    # get_accounts downloads the statement and get_trades reads it from ctx.cache (one statement per
    # sync, IB allows ten requests a minute). The suite's rules inject the failure after get_accounts,
    # so get_trades makes no request at all; these overrides read the cached statement first, then
    # inject, so get_trades has to download and meets the failure.

    def _after_cached_statement(self, rule: str, status: int | tuple[int, dict[str, str]]) -> BaseException | int:
        async def body(scenario: Scenario) -> BaseException | int:
            auth = await scenario.authenticate(self.valid_credentials, rule)
            account = (await scenario.accounts(auth, rule))[0]
            [b async for b in scenario.broker.iter_trades(auth, account)]  # reads the cached statement
            scenario.transport.inject_always(status)
            try:
                return sum([len(b.executions) async for b in scenario.broker.iter_trades(auth, account)])
            except Exception as exc:
                return exc

        outcome: BaseException | int = self._run(rule, body)
        return outcome

    def test_rate_limit_persistent(self) -> None:
        """Rule ``rate-limit-persistent``, once the statement ``get_accounts`` left was read."""
        outcome = self._after_cached_statement("rate-limit-persistent", (429, {"Retry-After": "1"}))
        assert isinstance(outcome, BrokerRateLimitError), outcome

    def test_error_mapping_5xx(self) -> None:
        """Rule ``error-mapping-5xx``, once the statement ``get_accounts`` left was read."""
        outcome = self._after_cached_statement("error-mapping-5xx", 503)
        assert isinstance(outcome, BrokerServerError | BrokerUnavailableError), outcome
