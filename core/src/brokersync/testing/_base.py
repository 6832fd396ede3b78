"""The conformance suite's base: what the author configures, and the plumbing every check uses."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from brokersync._registry import BrokerRegistry
from brokersync.errors import PluginError
from brokersync.testing._faults import StepOutcome
from brokersync.testing._harness import Fetch, Scenario, fetch_trades, load_registry
from brokersync.testing._rules import ConformanceFailure
from brokersync.testing._transport import network_guard

if TYPE_CHECKING:
    import httpx

__all__ = ["NOTHING_MET", "SuiteBase"]

T = TypeVar("T")


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class SuiteBase:
    """Configuration and plumbing shared by the check groups (see :class:`BrokerConformance`)."""

    # Plain annotations (no ClassVar): subclasses set them as class attributes and mypy accepts it.
    broker_key: str
    plugin: Any = None
    valid_credentials: Mapping[str, str]
    invalid_credentials: Mapping[str, str]
    environment: str | None = None
    since_tolerance: dt.timedelta = dt.timedelta(0)
    max_requests_per_fetch: int = 1000
    retry_after_seconds: float = 2.0

    # -- what the author provides ----------------------------------------------------------------

    def make_transport(self) -> httpx.AsyncBaseTransport:
        """A fresh fake of the broker's API (deterministic: same data on every call)."""
        raise NotImplementedError(f"{type(self).__name__} must implement make_transport()")

    def clock(self) -> dt.datetime:
        """The current time the broker's hooks see (override to pin it)."""
        return _utcnow()

    # -- plumbing --------------------------------------------------------------------------------

    def _registry(self, rule: str) -> BrokerRegistry:
        try:
            return load_registry(self.broker_key, self.plugin)
        except (PluginError, ValueError) as exc:
            raise ConformanceFailure(rule, self.broker_key, f"the plugin does not load: {exc}") from exc

    def _scenario(self, rule: str) -> Scenario:
        return Scenario.build(
            self._registry(rule),
            self.broker_key,
            self.make_transport(),
            environment=self.environment,
            clock=self.clock,
            max_requests=self.max_requests_per_fetch,
        )

    def _run(self, rule: str, body: Callable[[Scenario], Awaitable[T]], scenario: Scenario | None = None) -> T:
        scenario = scenario or self._scenario(rule)

        async def main() -> T:
            try:
                return await body(scenario)
            finally:
                await scenario.aclose()

        # Requests a plugin sends with its own httpx client are refused (fast, no network) and recorded.
        with network_guard() as bypasses:
            scenario.bypasses = bypasses
            return asyncio.run(main())

    def _fail(self, rule: str, detail: str, record: Any = None) -> ConformanceFailure:
        return ConformanceFailure(rule, self.broker_key, detail, record=record)

    async def _history(self, scenario: Scenario, rule: str) -> list[Fetch]:
        auth = await scenario.authenticate(self.valid_credentials, rule)
        accounts = await scenario.accounts(auth, rule)
        return [await fetch_trades(scenario, auth, account, rule=rule) for account in accounts]

    def _fetched(self, rule: str) -> list[Fetch]:
        fetches = self._run(rule, lambda s: self._history(s, rule))
        if not any(f.trades or f.errors for f in fetches) and not self._reports_executions_only(rule):
            raise self._fail(rule, "get_trades() returned no trade for any account; the fake must serve some trades")
        return fetches

    def _reports_executions_only(self, rule: str) -> bool:
        # Such a plugin's records are executions: the execution rules check them, the trade rules
        # have no round trip to look at.
        from brokersync.models import Reports

        return self._registry(rule).metadata(self.broker_key).capabilities.reports is Reports.EXECUTIONS

    def _record_errors(self, rule: str, pattern: str) -> None:
        for fetch in self._fetched(rule):
            for error in fetch.errors:
                if re.search(pattern, error.reason, re.IGNORECASE):
                    raise self._fail(rule, f"account {fetch.account.id!r}: {error.reason}", error)

    def _judge_faults(
        self, rule: str, outcomes: list[StepOutcome], expected: tuple[type[BaseException], ...], what: str, fix: str
    ) -> None:
        """Fail ``rule`` unless every step whose request met the injected failure raised ``expected``."""
        names = " or ".join(e.__name__ for e in expected)
        for outcome in outcomes:
            error = outcome.error
            if error is not None and isinstance(error, expected):
                continue
            if outcome.met and error is None:
                raise self._fail(
                    rule,
                    f"{outcome.step} returned normally ({outcome.records} record(s)) although {outcome.met} of its "
                    f"requests got {what}: the plugin swallowed it; {fix}",
                )
            if error is not None and (outcome.met or outcome.judged):
                raise self._fail(
                    rule,
                    f"{what} during {outcome.step} surfaced as {type(error).__name__}: {error}; expected {names}; "
                    f"{fix}",
                ) from error
        if not any(o.met for o in outcomes):
            raise self._fail(rule, NOTHING_MET.format(what=what))


#: The failure when no request of the sync met the injected failure (the rule cannot be checked).
NOTHING_MET = (
    "no request after authenticate() met {what}: neither get_accounts() nor get_trades() (with or without "
    "what get_accounts left in ctx.cache) sent one through ctx.http; fetch the broker's data in those hooks"
)
