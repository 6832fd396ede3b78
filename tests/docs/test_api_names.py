"""Names the integrator docs mention in prose (outside the examples, which run) exist in the API.

The examples are executed by test_examples.py; this covers the sentences around them: a method or
class named in backticks (`reconnect_broker(...)`, `brokersync.Scheduler`), a keyword argument
(`BrokerSync(lookback=...)`) and the table of ``EngineSettings`` fields. A rename in the code
then fails here instead of leaving the guide pointing at something that is gone.
"""

from __future__ import annotations

import datetime as dt
import inspect
import re
from pathlib import Path
from typing import Any

import attrs
import brokersync
import pytest

from tests.docs._markdown import prose_lines

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *(ROOT / "docs" / name for name in ("index.md", "user-guide.md", "configuration.md"))]
# `brokersync.<x>` spans that are not attributes of the package, and why.
NOT_ATTRIBUTES = {
    "brokers": "the entry point group name brokersync.brokers",
    "db": "the default database file name brokersync.db",
    "pairing": "the public submodule brokersync.pairing (imported by name, not re-exported)",
}
_SPAN = re.compile(r"`([^`]+)`")
_DOTTED = re.compile(r"\bbrokersync\.([A-Za-z_]\w*)")
_CALL = re.compile(r"(?<![\w.])(?:(\w+)\.)?([A-Za-z_]\w*)\(")
_KEYWORD = re.compile(r"\b(BrokerSync|EngineSettings|Scheduler|ConnectionSchedule)\(([^)]*)\)")


def code_spans(path: Path) -> list[tuple[int, str]]:
    """Inline code spans in the prose of ``path`` (fenced blocks excluded)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [(number, span) for number, _ in prose_lines(path) for span in _SPAN.findall(lines[number - 1])]


def _owners() -> dict[str | None, list[Any]]:
    return {
        None: [brokersync, brokersync.BrokerSync],  # a bare name: a function or an engine method
        "brokersync": [brokersync],
        "engine": [brokersync.BrokerSync],
        "scheduler": [brokersync.Scheduler],
    }


def unknown_names(path: Path) -> list[str]:
    problems: list[str] = []
    owners = _owners()
    for number, span in code_spans(path):
        where = f"{path.name}:{number}: `{span}`"
        for name in _DOTTED.findall(span):
            if name not in NOT_ATTRIBUTES and not hasattr(brokersync, name):
                problems.append(f"{where}: brokersync has no {name!r}")
        for owner, name in _CALL.findall(span):
            candidates = owners.get(owner or None)
            if candidates is None:
                continue  # another library's call: logger.enable, dt.timedelta
            if not any(hasattr(candidate, name) for candidate in candidates):
                problems.append(
                    f"{where}: no {name!r} on {', '.join(getattr(c, '__name__', str(c)) for c in candidates)}"
                )
        for cls_name, arguments in _KEYWORD.findall(span):
            cls = getattr(brokersync, cls_name)
            accepted = set(inspect.signature(cls).parameters)
            top_level = arguments.split("(", 1)[0]  # `BrokerSync(lookback=dt.timedelta(days=7))`: not `days`
            for keyword in re.findall(r"(\w+)=", top_level):
                if keyword not in accepted:
                    problems.append(f"{where}: {cls_name}() takes no argument {keyword!r}")
    return problems


@pytest.mark.parametrize("path", DOCUMENTS, ids=[p.name for p in DOCUMENTS])
def test_names_in_prose_exist(path: Path) -> None:
    assert unknown_names(path) == []


def test_the_check_sees_names(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        "Call `engine.sync_broker_trades(...)` or `reconnect_broker(...)`, or `brokersync.Scheduler`.\n"
        "Gone: `engine.sync_everything()`, `brokersync.Syncer`, `BrokerSync(lookahead=...)`.\n"
        'Not ours: `logger.enable("brokersync")`, `dt.timedelta(days=1)`.\n'
        "```python\nengine.not_checked_here()\n```\n",
        encoding="utf-8",
    )
    problems = unknown_names(doc)
    assert len(problems) == 3, problems
    assert any("'sync_everything'" in p for p in problems)
    assert any("'Syncer'" in p for p in problems)
    assert any("'lookahead'" in p for p in problems)


def _documented_settings() -> dict[str, str]:
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    table = text.split("| `EngineSettings` field |", 1)[1].split("\n\n", 1)[0]
    return dict(re.findall(r"^\| `(\w+)` \| ([^|]+?) \|", table, flags=re.MULTILINE))


def _as_text(value: object) -> str:
    if isinstance(value, dt.timedelta):
        if value % dt.timedelta(days=1) == dt.timedelta(0):
            return f"{value.days} days"
        minutes = int(value.total_seconds() // 60)
        return f"{minutes} minute" if minutes == 1 else f"{minutes} minutes"
    return str(value)


def test_engine_settings_table_matches_the_code() -> None:
    documented = _documented_settings()
    fields = {f.name: f.default for f in attrs.fields(brokersync.EngineSettings)}
    assert sorted(documented) == sorted(fields)
    for name, default in fields.items():
        assert documented[name] == _as_text(default), name
