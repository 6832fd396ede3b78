"""The package root is the whole public API (httpx's tests/test_exported_members.py, in spirit)."""

from __future__ import annotations

import os
import subprocess
import sys

import brokersync
import pytest
from brokersync._versions import api_version_matches


def _isort_key(name: str) -> tuple[int, str]:
    # The order ruff's RUF022 keeps: CONSTANTS, then Classes, then functions and dunders.
    kind = 0 if name.isupper() and len(name) > 1 else 1 if name[:1].isupper() else 2
    return kind, name


def test_all_is_sorted_complete_and_importable():
    names = brokersync.__all__
    assert len(names) == len(set(names)), "duplicates in __all__"
    assert names == sorted(names, key=_isort_key)
    for name in names:
        assert getattr(brokersync, name) is not None, name
    # Lazily loaded names are public too, though `vars(brokersync)` cannot see them before first use.
    lazy = set(brokersync._LAZY)
    public = {n for n in vars(brokersync) if not n.startswith("_") and n not in {"annotations", "importlib", "sys"}}
    public -= {"TYPE_CHECKING", "Any", "errors", "models", "hookspecs", "results", "resilience", "warnings"}
    eager = {n for n in public if not isinstance(getattr(brokersync, n), type(sys))}
    assert sorted((lazy | eager) - set(names)) == []
    assert sorted(set(names) - lazy - eager - {"__version__"}) == []
    assert not set(names) & set(brokersync._MOVED), "a deprecated name is still exported"


def test_every_exported_name_is_documented_under_its_public_path():
    for name in brokersync.__all__:
        value = getattr(brokersync, name)
        if isinstance(value, str):  # a constant (ENTRY_POINT_GROUP, versions): documented in docs/
            continue
        own = value.__dict__.get("__doc__") if isinstance(value, type) else value.__doc__
        assert own, f"{name} has no docstring"
        module = getattr(value, "__module__", "")
        assert not module.startswith("brokersync._"), f"{name} shows its private module {module}"


def test_reprs_and_classifications_show_the_public_path():
    assert brokersync.BrokerSync.__module__ == "brokersync"
    assert repr(brokersync.StoredTrade).startswith("<class 'brokersync.results.StoredTrade'")
    details = brokersync.classify_error(brokersync.LeaseLostError("lost")).technical_details
    assert details["exception"] == "brokersync.errors.LeaseLostError"


def test_resilience_mechanics_moved_with_a_deprecation_warning():
    import brokersync.resilience

    for name in sorted(brokersync._MOVED):
        with pytest.warns(DeprecationWarning, match=f"brokersync.resilience.{name}"):
            value = getattr(brokersync, name)
        assert value is getattr(brokersync.resilience, name)
        assert name in brokersync.resilience.__all__


def test_importing_brokersync_stays_light():
    # Heavy dependencies load on first use, not at import (the CLI's cold start depends on it).
    heavy = "('httpx', 'sqlalchemy', 'cattrs', 'rich', 'redis', 'loguru')"
    code = f"import sys, brokersync; print(sorted(m for m in {heavy} if m in sys.modules))"
    env = {k: v for k, v in os.environ.items() if k != "BROKERSYNC_PLUGINS"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.strip() == "[]"


def test_api_version_ranges():
    assert api_version_matches(">=1,<2", "1.0")
    assert api_version_matches(">=1.0", "1.3")
    assert api_version_matches("~=1.2", "1.5") and not api_version_matches("~=1.2", "2.0")
    assert not api_version_matches(">=2,<3", "1.0")
    assert api_version_matches("==1", "1.0")
    for bad in ("", "one", ">=1,,<2", None):
        try:
            api_version_matches(bad)  # type: ignore[arg-type]
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was accepted")
