"""Checks of the plugin's traffic: through the core client, rate-limit waits, error mapping."""

from __future__ import annotations

from typing import Any

from brokersync.errors import BrokerAuthError, BrokerServerError, BrokerUnavailableError
from brokersync.testing._base import SuiteBase
from brokersync.testing._harness import Fetch, Scenario, fetch_trades
from brokersync.testing._rules import ConformanceFailure

__all__ = ["ClientChecks"]


class ClientChecks(SuiteBase):
    """Checks of the plugin's traffic: through the core client, rate-limit waits, error mapping."""

    def test_rate_limit_wait(self) -> None:
        """Rule ``rate-limit-wait``."""
        rule = "rate-limit-wait"

        async def body(scenario: Scenario) -> tuple[Fetch, Fetch, list[float]]:
            auth = await scenario.authenticate(self.valid_credentials, rule)
            account = (await scenario.accounts(auth, rule))[0]
            clean = await fetch_trades(scenario, auth, account, rule=rule)
            waits_before = len(scenario.sleeps)
            scenario.transport.inject((429, {"Retry-After": f"{self.retry_after_seconds:g}"}))
            try:
                throttled = await fetch_trades(scenario, auth, account, rule=rule)
            except ConformanceFailure as exc:
                if exc.rule != rule:
                    raise
                raise self._fail(rule, f"a single 429 with Retry-After failed the fetch: {exc.detail}") from exc
            return clean, throttled, scenario.sleeps[waits_before:]

        clean, throttled, waits = self._run(rule, body)
        if sum(waits) < self.retry_after_seconds:
            raise self._fail(
                rule,
                f"after a 429 with Retry-After: {self.retry_after_seconds:g} the plugin did not wait through ctx.sleep "
                f"(waits seen: {waits}); let the core client's BrokerRateLimitError propagate",
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

        async def body(scenario: Scenario) -> None:
            auth = await scenario.authenticate(self.valid_credentials, rule)
            account = (await scenario.accounts(auth, rule))[0]
            scenario.transport.inject_always(401)
            for call in ("get_accounts", "get_trades"):
                try:
                    if call == "get_accounts":
                        result: Any = await scenario.broker.get_accounts(auth)
                    else:
                        result = [b async for b in scenario.broker.iter_trades(auth, account)]
                except BrokerAuthError:
                    continue
                except Exception as exc:
                    raise self._fail(
                        rule, f"{call}() answered HTTP 401 with {type(exc).__name__}: {exc}; expected BrokerAuthError"
                    ) from exc
                raise self._fail(rule, f"{call}() returned normally although every request got HTTP 401", result)

        self._run(rule, body)

    def test_error_mapping_5xx(self) -> None:
        """Rule ``error-mapping-5xx``."""
        rule = "error-mapping-5xx"

        async def body(scenario: Scenario) -> None:
            auth = await scenario.authenticate(self.valid_credentials, rule)
            account = (await scenario.accounts(auth, rule))[0]
            scenario.transport.inject_always(503)
            try:
                batches = [b async for b in scenario.broker.iter_trades(auth, account)]
            except (BrokerServerError, BrokerUnavailableError):
                return
            except Exception as exc:
                raise self._fail(
                    rule, f"HTTP 503 surfaced as {type(exc).__name__}: {exc}; expected BrokerServerError"
                ) from exc
            count = sum(len(b.trades) for b in batches)
            raise self._fail(rule, f"get_trades() returned {count} trade(s) although every request got HTTP 503")

        self._run(rule, body)
