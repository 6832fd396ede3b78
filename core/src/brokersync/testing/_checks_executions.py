"""Checks of the executions a plugin reports for the core to pair (``TradePage.executions``)."""

from __future__ import annotations

from brokersync.errors import RecordValidationError
from brokersync.models import Reports
from brokersync.testing._base import SuiteBase
from brokersync.testing._harness import Scenario
from brokersync.testing._raw import RawPage, normalize_execution, raw_pages

__all__ = ["ExecutionChecks"]


class ExecutionChecks(SuiteBase):
    """Checks of the executions a plugin reports: valid, unique ids within an account."""

    def _execution_pages(self, rule: str) -> list[tuple[str, list[RawPage]]]:
        async def body(scenario: Scenario) -> list[tuple[str, list[RawPage]]]:
            auth = await scenario.authenticate(self.valid_credentials, rule)
            accounts = await scenario.accounts(auth, rule)
            return [(a.id, await raw_pages(scenario, auth, a)) for a in accounts]

        fetched = self._run(rule, body)
        reports = self._registry(rule).metadata(self.broker_key).capabilities.reports
        if reports in (Reports.EXECUTIONS, Reports.BOTH) and not any(
            p.executions for _, pages in fetched for p in pages
        ):
            raise self._fail(
                rule,
                f"capabilities.reports is {reports.value!r} but get_trades() returned no execution for any account; "
                "put fills in TradePage(executions=[...]) (and make the fake serve some)",
            )
        return fetched

    def test_executions_valid(self) -> None:
        """Rule ``executions-valid``."""
        rule = "executions-valid"
        for account_id, pages in self._execution_pages(rule):
            for page in pages:
                for item in page.executions:
                    try:
                        normalize_execution(item, account_id=account_id)
                    except RecordValidationError as exc:
                        raise self._fail(
                            rule,
                            f"account {account_id!r}: {exc.message}; quantities are positive Decimals (the side "
                            "says buy or sell), times tz-aware (parse with brokersync.parsing.parse_time)",
                            item,
                        ) from None

    def test_unique_execution_ids(self) -> None:
        """Rule ``unique-execution-ids``."""
        rule = "unique-execution-ids"
        for account_id, pages in self._execution_pages(rule):
            seen: set[str] = set()
            for page in pages:
                for item in page.executions:
                    ident = getattr(item, "broker_execution_id", None)
                    if ident is None and isinstance(item, dict):
                        ident = item.get("broker_execution_id")
                    if ident is None:
                        continue  # executions-valid reports the missing id
                    if str(ident) in seen:
                        raise self._fail(
                            rule,
                            f"broker_execution_id {ident!r} appears twice in account {account_id!r}: it is the dedupe "
                            "key, so the second fill would overwrite the first; use the broker's execution id",
                            item,
                        )
                    seen.add(str(ident))
