"""Checks of the plugin's traffic: through the core client, rate-limit waits, error mapping."""

from __future__ import annotations

from brokersync.errors import BrokerAuthError, BrokerServerError, BrokerUnavailableError
from brokersync.testing._base import NOTHING_MET, SuiteBase
from brokersync.testing._faults import faulted_steps, met_count
from brokersync.testing._harness import Fetch, Scenario, fetch_trades
from brokersync.testing._rules import ConformanceFailure

__all__ = ["ClientChecks"]


class ClientChecks(SuiteBase):
    """Checks of the plugin's traffic: through the core client, rate-limit waits, error mapping."""

    def test_rate_limit_wait(self) -> None:
        """Rule ``rate-limit-wait``.

        The 429 answers the first request after authentication, whichever step sends it, and, when
        ``get_accounts`` sent that one, the first request after ``get_accounts`` too (a plugin that
        serves ``get_trades`` from what ``get_accounts`` cached sends none there).
        """
        rule = "rate-limit-wait"
        retry = (429, {"Retry-After": f"{self.retry_after_seconds:g}"})

        async def clean_body(scenario: Scenario) -> Fetch:
            auth = await scenario.authenticate(self.valid_credentials, rule)
            account = (await scenario.accounts(auth, rule))[0]
            return await fetch_trades(scenario, auth, account, rule=rule)

        async def body(scenario: Scenario) -> tuple[Fetch, list[float], int]:
            auth = await scenario.authenticate(self.valid_credentials, rule)
            waits_before = len(scenario.sleeps)
            scenario.transport.inject(retry)
            try:
                accounts = await scenario.broker.get_accounts(auth)
            except Exception as exc:
                raise self._fail(
                    rule, f"a single 429 with Retry-After failed get_accounts(): {type(exc).__name__}: {exc}"
                ) from exc
            if not accounts:
                raise self._fail(rule, "get_accounts() returned no account after a single 429 with Retry-After")
            if met_count(scenario, 429):
                scenario.transport.inject(retry)  # for get_trades' first request, if it sends one
            try:
                throttled = await fetch_trades(scenario, auth, accounts[0], rule=rule)
            except ConformanceFailure as exc:
                if exc.rule != rule:
                    raise
                raise self._fail(rule, f"a single 429 with Retry-After failed the fetch: {exc.detail}") from exc
            return throttled, scenario.sleeps[waits_before:], met_count(scenario, 429)

        clean = self._run(rule, clean_body)
        throttled, waits, met = self._run(rule, body)
        if not met:
            raise self._fail(rule, NOTHING_MET.format(what="the injected 429"))
        if sum(waits) < self.retry_after_seconds * met:
            raise self._fail(
                rule,
                f"after {met} 429(s) with Retry-After: {self.retry_after_seconds:g} the plugin did not wait through "
                f"ctx.sleep (waits seen: {waits}); let the core client's BrokerRateLimitError propagate",
            )
        lost = sorted({t.broker_trade_id for t in clean.trades} - {t.broker_trade_id for t in throttled.trades})
        if lost:
            raise self._fail(rule, f"after one 429 the fetch lost {len(lost)} trade(s): {lost[:5]}")

    def test_core_client_only(self) -> None:
        """Rule ``core-client-only``."""
        rule = "core-client-only"
        scenario = self._scenario(rule)

        async def body(scenario: Scenario) -> None:
            try:
                await self._history(scenario, rule)
            except ConformanceFailure:
                if not scenario.bypasses:
                    raise

        self._run(rule, body, scenario)
        bypasses = scenario.bypasses
        if bypasses:
            raise self._fail(rule, "the plugin sent requests with its own httpx client; use ctx.http", bypasses[0])
        around = scenario.transport.bypassing_requests
        if around:
            raise self._fail(rule, "requests reached the fake API without going through ctx.http", around[0])
        if not scenario.transport.requests:
            raise self._fail(rule, "no request reached the fake API: call the broker through ctx.http")
        counted, seen = scenario.metrics.requests, len(scenario.transport.core_requests)
        if counted != seen:
            raise self._fail(
                rule, f"the core client counted {counted} request(s) but the fake API received {seen} through it"
            )

    def test_error_mapping_401(self) -> None:
        """Rule ``error-mapping-401``."""
        rule = "error-mapping-401"
        outcomes = faulted_steps(self._run, self.valid_credentials, rule, 401)
        self._judge_faults(
            rule, outcomes, (BrokerAuthError,), "HTTP 401", "let the core client's BrokerAuthError propagate"
        )

    def test_error_mapping_5xx(self) -> None:
        """Rule ``error-mapping-5xx``."""
        rule = "error-mapping-5xx"
        outcomes = faulted_steps(self._run, self.valid_credentials, rule, 503)
        self._judge_faults(
            rule,
            outcomes,
            (BrokerServerError, BrokerUnavailableError),
            "HTTP 503",
            "do not swallow errors or turn them into another exception (a 5xx is not 'no data')",
        )
