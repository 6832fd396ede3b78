"""The plugin author docs match the code: every hook documented with its exact signature, the hook
examples form a plugin that passes the conformance suite, and every rule and error is explained."""

from __future__ import annotations

import inspect
import re
import types
from pathlib import Path

import brokersync.errors
import httpx
import pytest
from acme_broker import USERS, FakeAcmeApi
from brokersync import hookspecs
from brokersync.testing import FILE_RULES, RULES, BrokerConformance, ConformanceFailure

DOCS = Path(__file__).resolve().parents[2] / "docs"
HOOKS_MD = DOCS / "hooks.md"
TUTORIAL_MD = DOCS / "plugin-authors" / "tutorial.md"
ERRORS_MD = DOCS / "plugin-authors" / "errors-and-rate-limits.md"
TEMPLATE_TESTS = DOCS.parent / "plugin-template" / "template" / "tests"

HOOKS = sorted(name for name, value in vars(hookspecs).items() if hasattr(value, f"{hookspecs.PROJECT_NAME}_spec"))


def _sections() -> dict[str, str]:
    text = HOOKS_MD.read_text(encoding="utf-8")
    parts = re.split(r"^## `(\w+)`\s*$", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _documented_signature(section: str, hook: str) -> str:
    match = re.search(rf"```python\n(def {hook}\(.*)\n```", section)
    assert match is not None, f"docs/hooks.md: the `{hook}` section has no ```python block with `def {hook}(...)`"
    return match.group(1)


def test_the_hook_list_is_not_empty() -> None:
    assert {"broker_metadata", "authenticate", "get_accounts", "get_trades"} <= set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_with_its_exact_signature(hook: str) -> None:
    sections = _sections()
    assert hook in sections, f"hook {hook!r} is not documented in docs/hooks.md (add a '## `{hook}`' section)"
    actual = f"def {hook}{inspect.signature(getattr(hookspecs, hook))}".replace("'", "")
    assert _documented_signature(sections[hook], hook) == actual


@pytest.mark.parametrize("hook", HOOKS)
def test_every_argument_and_the_return_are_explained(hook: str) -> None:
    section = _sections()[hook]
    for name in inspect.signature(getattr(hookspecs, hook)).parameters:
        assert f"`{name}`" in section, f"docs/hooks.md: argument {name!r} of {hook} is not explained"
    assert "**Returns:**" in section
    assert "<!-- hooks-example -->" in section, f"docs/hooks.md: {hook} has no example"


def test_no_documented_hook_is_stale() -> None:
    assert set(_sections()) == set(HOOKS)


def _example_module() -> types.ModuleType:
    text = HOOKS_MD.read_text(encoding="utf-8")
    blocks = re.findall(r"<!-- hooks-example -->\n```python\n(.*?)```", text, flags=re.DOTALL)
    module = types.ModuleType("docs_hooks_example")
    exec(compile("\n".join(blocks), str(HOOKS_MD), "exec"), module.__dict__)
    return module


def test_hook_examples_form_a_plugin_that_passes_the_conformance_suite() -> None:
    module = _example_module()

    class DocsExample(BrokerConformance):
        broker_key = "acme"
        plugin = module
        valid_credentials = {"username": "demo", "password": USERS["demo"]}  # noqa: RUF012
        invalid_credentials = {"username": "demo", "password": "wrong-password"}  # noqa: RUF012

        def make_transport(self) -> httpx.AsyncBaseTransport:
            return FakeAcmeApi().transport()

    suite = DocsExample()
    failures = []
    for rule in RULES:
        if rule == "entry-point":
            continue  # the docs' example is not an installed distribution
        try:
            getattr(suite, f"test_{rule.replace('-', '_')}")()
        except ConformanceFailure as exc:
            failures.append(str(exc))
    assert failures == []


def test_tutorial_explains_every_conformance_rule() -> None:
    text = TUTORIAL_MD.read_text(encoding="utf-8")
    missing = [rule for rule in RULES if f"| `{rule}` |" not in text]
    assert missing == []


def test_tutorial_explains_every_file_conformance_rule() -> None:
    text = TUTORIAL_MD.read_text(encoding="utf-8")
    missing = [rule for rule in FILE_RULES if f"| `{rule}` |" not in text]
    assert missing == []


def test_error_guide_names_only_real_error_classes() -> None:
    text = ERRORS_MD.read_text(encoding="utf-8")
    named = set(re.findall(r"`(Broker\w+Error|PluginContractError|RecordValidationError)", text))
    assert {"BrokerAuthError", "BrokerRateLimitError", "BrokerServerError", "BrokerApiError"} <= named
    for name in named:
        assert isinstance(getattr(brokersync.errors, name, None), type), f"{name} is not in brokersync.errors"


def test_docs_link_to_each_other() -> None:
    for path, target in ((HOOKS_MD, "plugin-authors/errors-and-rate-limits.md"), (TUTORIAL_MD, "../hooks.md")):
        assert target in path.read_text(encoding="utf-8")
        assert (path.parent / target).resolve().is_file()


def test_tutorial_shows_the_generated_conformance_test() -> None:
    tutorial = TUTORIAL_MD.read_text(encoding="utf-8")
    snippet = re.search(r"```python\n(class TestAcmeConformance.*?)```", tutorial, flags=re.DOTALL)
    assert snippet is not None
    template = (TEMPLATE_TESTS / "test_conformance.py.jinja").read_text(encoding="utf-8")
    template = template.replace('"{{ broker_key }}"', '"acme"')
    for line in snippet.group(1).splitlines()[1:]:
        code = line.split("#", 1)[0].rstrip()
        if code:
            assert code in template, f"the tutorial shows {code.strip()!r}, the template does not generate it"
