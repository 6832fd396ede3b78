"""Failure injection that meets the plugin's requests wherever its sync makes them.

A plugin may send its requests in any hook: most fetch trades in ``get_trades``, but some download
everything in ``get_accounts`` and serve ``get_trades`` from ``ctx.cache`` (IBKR's Flex statement:
one download per sync). Injecting a failure at one fixed point (after ``get_accounts``) would then
meet no request and prove nothing, so :func:`faulted_steps` injects it where each step of a sync
begins and records, per step, how many of the step's requests met the failure and how the step
ended. A step that sent no request is not judged (a cache served it); a step whose request met
the failure must end with the right error. A sync in which no request met the failure at all is
itself a failure: the rule could not be checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import httpx

from brokersync.models import Account, AuthResult
from brokersync.testing._harness import Scenario
from brokersync.testing._rules import ConformanceFailure

__all__ = ["Injected", "StepOutcome", "faulted_steps", "met_count"]

Injected = httpx.Response | int | tuple[int, Mapping[str, str]]


@attrs.frozen
class StepOutcome:
    """How one step of a sync ended with the failure injected.

    Attributes:
        step: What ran, e.g. ``"get_accounts()"`` or ``"get_trades(account='A1')"``.
        met: How many of the step's requests were answered with the injected failure.
        error: What the step raised (``None``: it returned normally).
        records: How many trades and executions it returned (when it returned).
        judged: Whether the step is judged even without a request meeting the failure.
    """

    step: str
    met: int
    error: BaseException | None = None
    records: int = 0
    judged: bool = True


def met_count(scenario: Scenario, status: int) -> int:
    """How many requests the fake was asked so far were answered with an injected ``status``."""
    return sum(1 for r in scenario.transport.requests if r.injected_status == status)


def _status(injected: Injected) -> int:
    if isinstance(injected, httpx.Response):
        return injected.status_code
    return injected if isinstance(injected, int) else injected[0]


async def _accounts_step(scenario: Scenario, auth: AuthResult, status: int) -> tuple[StepOutcome, list[Account]]:
    before = met_count(scenario, status)
    try:
        accounts = await scenario.broker.get_accounts(auth)
    except ConformanceFailure:
        raise
    except Exception as exc:
        return StepOutcome("get_accounts()", met_count(scenario, status) - before, exc), []
    return StepOutcome("get_accounts()", met_count(scenario, status) - before, records=len(accounts)), accounts


async def _trades_step(
    scenario: Scenario, auth: AuthResult, account: Account, status: int, *, label: str = "", judged: bool = True
) -> StepOutcome:
    step = f"get_trades(account={account.id!r}){label}"
    before = met_count(scenario, status)
    count = 0
    try:
        async for batch in scenario.broker.iter_trades(auth, account):
            count += len(batch.trades) + len(batch.executions)
    except ConformanceFailure:
        raise
    except Exception as exc:
        return StepOutcome(step, met_count(scenario, status) - before, exc, judged=judged)
    return StepOutcome(step, met_count(scenario, status) - before, records=count, judged=judged)


async def sync_from_start(
    scenario: Scenario, credentials: Mapping[str, Any], rule: str, injected: Injected
) -> list[StepOutcome]:
    """Authenticate, then fail every request: the sync's first step that sends one must surface it."""
    status = _status(injected)
    auth = await scenario.authenticate(credentials, rule)
    scenario.transport.inject_always(injected)
    outcome, accounts = await _accounts_step(scenario, auth, status)
    outcomes = [outcome]
    if outcome.met == 0 and outcome.error is None and accounts:
        outcomes.append(await _trades_step(scenario, auth, accounts[0], status))
    return outcomes


async def trades_after_accounts(
    scenario: Scenario, credentials: Mapping[str, Any], rule: str, injected: Injected
) -> list[StepOutcome]:
    """List accounts cleanly, then fail every request of ``get_trades``.

    When ``get_trades`` sent nothing (it read what ``get_accounts`` left in ``ctx.cache``), it runs
    once more as in a run whose cache is empty, so a request path of its own meets the failure too;
    that run is judged only if a request met the failure (a plugin may need ``get_accounts`` first).
    """
    status = _status(injected)
    auth = await scenario.authenticate(credentials, rule)
    account = (await scenario.accounts(auth, rule))[0]
    scenario.transport.inject_always(injected)
    outcome = await _trades_step(scenario, auth, account, status)
    outcomes = [outcome]
    if outcome.met == 0 and outcome.error is None:
        scenario.broker.context.cache.clear()
        outcomes.append(
            await _trades_step(scenario, auth, account, status, label=" with an empty ctx.cache", judged=False)
        )
    return outcomes


def faulted_steps(run: Any, credentials: Mapping[str, Any], rule: str, injected: Injected) -> list[StepOutcome]:
    """Both injections (from the sync's start, and after ``get_accounts``), each on a fresh scenario.

    Args:
        run: The suite's ``_run(rule, body)``.
    """
    first: list[StepOutcome] = run(rule, lambda s: sync_from_start(s, credentials, rule, injected))
    second: list[StepOutcome] = run(rule, lambda s: trades_after_accounts(s, credentials, rule, injected))
    return first + second
