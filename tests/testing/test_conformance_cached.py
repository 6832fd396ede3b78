"""A plugin whose get_trades is served from what get_accounts cached is checked like any other.

IBKR downloads its statement in ``get_accounts`` and ``get_trades`` reads it from ``ctx.cache``. The
error rules inject their failure where the sync's requests happen, so such a plugin passes when it
surfaces errors, and fails, by rule name, when it swallows a 429 or maps a 5xx wrong on either
request path (the suite runs in-process here; ``test_conformance_catches`` runs it as authors do).
"""

from __future__ import annotations

import re

import httpx
import pytest
from acme_broker import USERS, FakeAcmeApi
from brokersync.testing import BrokerConformance, ConformanceFailure
from cached_broker import CACHED_VARIANTS, CachedAcme

#: The rules whose failure injection must find the requests wherever they are sent.
FAULT_RULES = ("rate-limit-wait", "rate-limit-persistent", "error-mapping-401", "error-mapping-5xx")


def _suite(plugin: type[CachedAcme]) -> BrokerConformance:
    class Suite(BrokerConformance):
        broker_key = "acme"
        valid_credentials = {"username": "demo", "password": USERS["demo"]}  # noqa: RUF012
        invalid_credentials = {"username": "demo", "password": "wrong-password"}  # noqa: RUF012

        def make_transport(self) -> httpx.AsyncBaseTransport:
            return FakeAcmeApi().transport()

    Suite.plugin = plugin
    return Suite()


def _check(suite: BrokerConformance, rule: str) -> str | None:
    try:
        getattr(suite, f"test_{rule.replace('-', '_')}")()
    except ConformanceFailure as exc:
        return str(exc)
    return None


@pytest.mark.parametrize(
    "rule",
    [
        *FAULT_RULES,
        "core-client-only",
        "trades-valid",
        "stable-trade-ids",
        "since-honoured",
        "cursor-resumes",
        "pagination-terminates",
    ],
)
def test_a_well_behaved_cached_plugin_passes(rule: str) -> None:
    assert _check(_suite(CachedAcme), rule) is None


@pytest.mark.parametrize(
    ("variant", "rule"),
    [(name, rule) for name, (_, rules) in CACHED_VARIANTS.items() for rule in rules],
)
def test_a_broken_cached_plugin_fails_the_rule_it_breaks(variant: str, rule: str) -> None:
    message = _check(_suite(CACHED_VARIANTS[variant][0]), rule)
    assert message is not None, f"{variant} passed rule {rule!r} although it breaks it"
    assert f"broker 'acme' breaks conformance rule '{rule}'" in message


@pytest.mark.parametrize("variant", list(CACHED_VARIANTS))
def test_a_broken_cached_plugin_passes_the_fault_rules_it_does_not_break(variant: str) -> None:
    plugin, broken = CACHED_VARIANTS[variant]
    suite = _suite(plugin)
    assert {rule: _check(suite, rule) for rule in FAULT_RULES if rule not in broken} == dict.fromkeys(
        (r for r in FAULT_RULES if r not in broken), None
    )


def test_messages_name_the_step_and_what_happened() -> None:
    swallowed = _check(_suite(CACHED_VARIANTS["CachedSwallowsRateLimit"][0]), "rate-limit-persistent")
    assert swallowed is not None
    # the core client retried the 429s before the plugin swallowed the error: every request counts
    assert re.search(
        r"get_accounts\(\) returned normally \(0 record\(s\)\) although \d+ of its requests got HTTP 429", swallowed
    )
    assert "the plugin swallowed it" in swallowed
    wrong = _check(_suite(CACHED_VARIANTS["CachedMaps5xxWrong"][0]), "error-mapping-5xx")
    assert wrong is not None
    assert "HTTP 503 during get_accounts() surfaced as RuntimeError" in wrong
    assert "expected BrokerServerError or BrokerUnavailableError" in wrong
    # get_trades sent nothing in the sync (the cache served it); its own download path is reached
    # by running it as in a run whose cache is empty.
    own_path = _check(_suite(CACHED_VARIANTS["CachedTradesSwallow"][0]), "error-mapping-5xx")
    assert own_path is not None
    assert "get_trades(account='A1') with an empty ctx.cache returned normally" in own_path
    nothing = _check(_suite(CACHED_VARIANTS["EverythingInAuthenticate"][0]), "error-mapping-5xx")
    assert nothing is not None
    assert "no request after authenticate() met HTTP 503" in nothing
