"""Each deliberately broken variant of the example plugin fails the rule it breaks, by name.

The suite is run the way a plugin author runs it: pytest in a separate process, on a test module
that subclasses BrokerConformance once per variant. The JUnit report tells which test failed and why.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from acme_broker import HERE, VARIANTS, write_distribution
from brokersync.testing import RULES

#: (test class, rule) -> the failure message, or None when the rule passed.
Outcomes = dict[tuple[str, str], str | None]

SUITE_MODULE = """
import httpx
import acme_broker
from brokersync.testing import BrokerConformance


class Base(BrokerConformance):
    broker_key = "acme"
    valid_credentials = {"username": "demo", "password": acme_broker.USERS["demo"]}
    invalid_credentials = {"username": "demo", "password": "wrong-password"}

    def make_transport(self) -> httpx.AsyncBaseTransport:
        return acme_broker.FakeAcmeApi().transport()


for _name in acme_broker.VARIANTS:
    globals()["Test" + _name] = type("Test" + _name, (Base,), {"plugin": getattr(acme_broker, _name)})


class TestReportsExecutions(Base):
    # A well-behaved plugin that reports executions: it passes the execution rules.
    plugin = acme_broker.ReportsExecutions


class TestViaEntryPoint(Base):
    # No plugin object: the suite loads the broker through its installed entry point.
    pass
"""

# Rules whose failure has a record to show (a trade, a request, a field); the others are about the whole plugin.
WITH_RECORD = {
    "decimal-money",
    "utc-times",
    "unique-trade-ids",
    "stable-trade-ids",
    "since-honoured",
    "core-client-only",
    "secret-fields",
    "raw-kept",
    "auth-token",
}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Outcomes:
    """Run the suite on every variant once: (class, rule) -> failure message, or None when it passed."""
    work = tmp_path_factory.mktemp("variants")
    write_distribution(work / "site")
    (work / "test_variants.py").write_text(SUITE_MODULE, encoding="utf-8")
    (work / "pytest.ini").write_text("[pytest]\nfilterwarnings = error\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(work / "site"), str(HERE)])}
    env.pop("BROKERSYNC_PLUGINS", None)
    report = work / "report.xml"
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", "test_variants.py"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert report.exists(), completed.stdout + completed.stderr
    results: Outcomes = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        cls = case.get("classname", "").rpartition(".")[2]
        rule = case.get("name", "").removeprefix("test_").replace("_", "-")
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        results[(cls, rule)] = None if problem is None else (problem.get("message", "") + "\n" + (problem.text or ""))
    assert len(results) == (len(VARIANTS) + 2) * len(RULES), completed.stdout[-3000:]
    return results


@pytest.mark.parametrize(
    ("variant", "rule"), [(name, rule) for name, (_, rule) in VARIANTS.items()], ids=list(VARIANTS)
)
def test_broken_variant_fails_the_rule_it_breaks(outcomes: Outcomes, variant: str, rule: str) -> None:
    message = outcomes[(f"Test{variant}", rule)]
    assert message is not None, f"{variant} passed rule {rule!r} although it breaks it"
    assert f"breaks conformance rule '{rule}'" in message
    assert "broker 'acme'" in message
    if rule in WITH_RECORD:
        assert "offending record:" in message, message


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_broken_variant_still_passes_unrelated_rules(outcomes: Outcomes, variant: str) -> None:
    # The failures are specific: metadata, auth and account listing are intact unless the variant breaks them.
    for rule in {"metadata-complete", "accounts-valid", "auth-token"} - {VARIANTS[variant][1]}:
        assert outcomes[(f"Test{variant}", rule)] is None, outcomes[(f"Test{variant}", rule)]


def test_the_suite_loads_a_plugin_through_its_entry_point(outcomes: Outcomes) -> None:
    failed = {rule: message for (cls, rule), message in outcomes.items() if cls == "TestViaEntryPoint" and message}
    assert failed == {}


def test_failure_names_the_offending_trade(outcomes: Outcomes) -> None:
    duplicate = outcomes[("TestDuplicateIds", "unique-trade-ids")]
    assert duplicate is not None
    assert "broker_trade_id 'ESH4-buy' appears twice in account 'A1'" in duplicate
    money = outcomes[("TestFloatPrices", "decimal-money")]
    assert money is not None
    assert "invalid trade record 'A1-T000'" in money
    assert "float 4800.25 is not allowed" in money
    since = outcomes[("TestIgnoresSince", "since-honoured")]
    assert since is not None
    assert "returned a trade closed before since" in since
    assert "broker_trade_id='A1-T000'" in since


def test_placeholder_urls_fail_instead_of_shipping(outcomes: Outcomes) -> None:
    placeholder = outcomes[("TestPlaceholderUrl", "metadata-complete")]
    assert placeholder is not None
    assert "environment 'live' still has the placeholder URL https://api.acme.example/v1" in placeholder
    assert "docs_url is the placeholder https://acme.example/docs/api" in placeholder


def test_float_noise_is_caught_on_valid_decimals(outcomes: Outcomes) -> None:
    noise = outcomes[("TestFloatNoise", "decimal-money")]
    assert noise is not None
    assert "has float noise: it was built with Decimal(float)" in noise


def test_loop_detection_names_the_repeated_request(outcomes: Outcomes) -> None:
    loop = outcomes[("TestPagingLoop", "pagination-terminates")]
    assert loop is not None
    assert "repeats request #2: GET accounts/A1/trades" in loop


def test_bypass_names_the_request_sent_around_the_core(outcomes: Outcomes) -> None:
    bypass = outcomes[("TestOwnClient", "core-client-only")]
    assert bypass is not None
    assert "BypassRecord(method='GET', url='https://api.acme-broker.test/v1/accounts/A1/trades?limit=3')" in bypass


def test_the_password_never_appears_in_a_failure(outcomes: Outcomes) -> None:
    from acme_broker import USERS

    for message in outcomes.values():
        assert message is None or USERS["demo"] not in message


def test_every_rule_is_shown_failing_by_some_variant(outcomes: Outcomes) -> None:
    # Proof that no check is a test that cannot fail: each rule fails, by name, for at least one variant.
    failed = {rule for (cls, rule), message in outcomes.items() if message and f"conformance rule '{rule}'" in message}
    assert failed == set(RULES)


def _failed(outcomes: Outcomes, variant: str) -> set[str]:
    return {rule for (cls, rule), message in outcomes.items() if cls == f"Test{variant}" and message}


@pytest.mark.parametrize("variant", ["DoesNotLoad", "GetTradesRaises"])
def test_a_root_cause_fails_one_rule_and_the_rest_are_skipped(outcomes: Outcomes, variant: str) -> None:
    # entry-point fails for every variant (the installed entry point is the good plugin), not for this cause.
    assert _failed(outcomes, variant) == {"plugin-runs", "entry-point"}


def test_root_cause_messages_say_what_failed(outcomes: Outcomes) -> None:
    load = outcomes[("TestDoesNotLoad", "plugin-runs")]
    assert load is not None and "loading failed" in load and "metadata needs a config file" in load
    raised = outcomes[("TestGetTradesRaises", "plugin-runs")]
    assert raised is not None and "get_trades() failed" in raised and "KeyError" in raised and "next_page" in raised


def test_cursor_breaks_are_named(outcomes: Outcomes) -> None:
    lagging = outcomes[("TestLaggingCursor", "cursor-advances")]
    assert lagging is not None and "returned that whole page again: the cursor lags one page" in lagging
    rewinding = outcomes[("TestRewindingCursor", "cursor-advances")]
    assert rewinding is not None and "the cursor moves backwards" in rewinding
    # A correct cursor passes the same rule.
    assert outcomes[("TestViaEntryPoint", "cursor-advances")] is None


def test_hygiene_breaks_are_named(outcomes: Outcomes) -> None:
    rate = outcomes[("TestRateLimitAsException", "rate-limit-persistent")]
    assert rate is not None and "surfaced as Exception" in rate and "BrokerRateLimitError" in rate
    logged = outcomes[("TestLogsSecret", "no-secret-output")]
    assert logged is not None and "credential field 'password' through logging" in logged
    printed = outcomes[("TestPrintsToken", "no-secret-output")]
    assert printed is not None and "through print" in printed and "acme-token-" not in printed
    blocked = outcomes[("TestBlocksLoop", "non-blocking-hooks")]
    assert blocked is not None and "time.sleep(0.01) in fetch_page()" in blocked and "ctx.sleep" in blocked


def test_execution_breaks_are_named(outcomes: Outcomes) -> None:
    duplicate = outcomes[("TestDuplicateExecutionIds", "unique-execution-ids")]
    assert duplicate is not None and "broker_execution_id 'A1-T000' appears twice in account 'A1'" in duplicate
    signed = outcomes[("TestSignedExecutionQuantities", "executions-valid")]
    assert signed is not None and "quantity" in signed
    naive = outcomes[("TestNaiveExecutionTimes", "executions-valid")]
    assert naive is not None and "executed_at" in naive
    # Well-formed executions pass both rules.
    for rule in ("executions-valid", "unique-execution-ids"):
        assert outcomes[("TestReportsExecutions", rule)] is None
