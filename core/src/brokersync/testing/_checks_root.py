"""One root cause, reported once: a plugin that does not load, log in, list accounts or fetch trades.

Before each check, the suite runs the plugin once per test class (load, authenticate with the
valid credentials, list accounts, fetch every account's trades) and remembers the first failure.
The rule that owns that failure fails with it; every check that needs the broken step is skipped
with a pointer to that rule, instead of twenty unrelated rules failing with the same traceback.
"""

from __future__ import annotations

from typing import Any

import attrs

from brokersync.errors import PluginError
from brokersync.testing._base import SuiteBase
from brokersync.testing._harness import Scenario, fetch_trades, load_registry
from brokersync.testing._rules import ConformanceFailure

__all__ = ["RootCauseChecks"]

#: The steps of a plugin's run, in order; a rule needs every step up to its own.
_STEPS = ("load", "auth", "accounts", "trades")
#: The step each rule needs to have worked (rules not listed need every step; None: none).
_NEEDS: dict[str, str | None] = {
    "plugin-runs": None,
    "entry-point": None,
    "metadata-complete": "load",
    "secret-fields": "load",
    "bad-credentials": "load",
    "refresh-token": "load",
    "auth-token": "load",
    "accounts-valid": "auth",
}


@attrs.frozen
class _Preflight:
    step: str | None = None  # the step that failed (None: all worked)
    rule: str = "plugin-runs"  # the rule that reports it
    detail: str = ""


#: Per test class, the preflight's outcome (run once per class).
_PREFLIGHTS: dict[type, _Preflight] = {}


class RootCauseChecks(SuiteBase):
    """The ``plugin-runs`` rule, and the skip of checks that a root cause makes meaningless."""

    def _preflight(self) -> _Preflight:
        cls = type(self)
        if cls not in _PREFLIGHTS:
            _PREFLIGHTS[cls] = self._run_preflight()
        return _PREFLIGHTS[cls]

    def _run_preflight(self) -> _Preflight:
        rule = "plugin-runs"
        try:
            load_registry(self.broker_key, self.plugin)
        except (PluginError, ValueError) as exc:
            return _Preflight("load", rule, f"the plugin does not load: {exc}")
        scenario = self._scenario(rule)
        step = ["auth"]

        async def body(scenario: Scenario) -> None:
            auth = await scenario.authenticate(self.valid_credentials, "auth-token")
            step[0] = "accounts"
            accounts = await scenario.accounts(auth, "accounts-valid")
            step[0] = "trades"
            for account in accounts:
                await fetch_trades(scenario, auth, account, rule=rule)

        try:
            self._run(rule, body, scenario)
        except ConformanceFailure as exc:
            owner = exc.rule
            if scenario.bypasses:
                owner = "core-client-only"
            return _Preflight(step[0], owner, exc.detail)
        except Exception as exc:  # the suite's own plumbing around a plugin that misbehaves
            return _Preflight(step[0], rule, f"{type(exc).__name__}: {exc}")
        return _Preflight()

    def setup_method(self, method: Any) -> None:
        """Skip a check whose step the root cause (reported by its own rule) already broke."""
        rule = method.__name__.removeprefix("test_").replace("_", "-")
        needs = _NEEDS.get(rule, "trades")
        if needs is None:
            return
        found = self._preflight()
        if found.step is None or found.rule == rule:
            return
        if _STEPS.index(needs) >= _STEPS.index(found.step):
            import pytest

            pytest.skip(f"not checked: rule '{found.rule}' fails first ({found.detail[:300]})")

    def test_plugin_runs(self) -> None:
        """Rule ``plugin-runs``."""
        rule = "plugin-runs"
        found = self._preflight()
        if found.step is not None and found.rule == rule:
            where = {
                "load": "loading",
                "auth": "authenticate()",
                "accounts": "get_accounts()",
                "trades": "get_trades()",
            }
            raise self._fail(
                rule,
                f"{where[found.step]} failed, so the checks that need it are skipped: {found.detail}",
            )
