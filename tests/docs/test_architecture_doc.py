"""docs/architecture.md stays true: every module it names exists, every engine module is drawn."""

from __future__ import annotations

import re
from pathlib import Path

import brokersync

DOC = Path(__file__).parents[2] / "docs" / "architecture.md"
PACKAGE = Path(brokersync.__file__).parent
MODULE = re.compile(r"\b((?:_?[a-z]+/)*_?[a-z_]+\.py)\b")


def _named() -> set[str]:
    return set(MODULE.findall(DOC.read_text()))


def test_every_module_the_architecture_names_exists() -> None:
    named = _named()
    assert "_engine/_api.py" in named  # the pattern still finds paths
    root = DOC.parents[1]
    missing = sorted(
        path for path in named if not ((root / path) if path.startswith("tests/") else (PACKAGE / path)).is_file()
    )
    assert missing == []


def test_every_engine_and_store_module_is_drawn() -> None:
    named = _named()
    modules = {
        p.relative_to(PACKAGE).as_posix()
        for folder in ("_engine", "_store")
        for p in (PACKAGE / folder).glob("_*.py")
        if p.name != "__init__.py"
    }
    # The store's SQL plumbing (statements, column types, fingerprints, the upsert) is not a step.
    plumbing = {
        "_store/_cancellations.py",
        "_store/_database.py",
        "_store/_errors.py",
        "_store/_fingerprints.py",
        "_store/_records.py",
        "_store/_sql.py",
        "_store/_types.py",
        "_store/_upsert.py",
    }
    assert sorted(modules - plumbing - named) == []
