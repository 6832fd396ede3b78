"""The package root is the whole public API (httpx's tests/test_exported_members.py, in spirit)."""

from __future__ import annotations

import os
import subprocess
import sys

import brokersync
from brokersync._versions import api_version_matches


def test_all_is_sorted_complete_and_importable():
    names = brokersync.__all__
    assert sorted(names, key=str.casefold) == sorted(set(names), key=str.casefold)
    for name in names:
        assert getattr(brokersync, name) is not None, name
    public = {n for n in vars(brokersync) if not n.startswith("_") and n not in {"annotations", "importlib", "sys"}}
    public -= {"TYPE_CHECKING", "Any", "errors", "models", "hookspecs"}
    undeclared = {n for n in public if not isinstance(getattr(brokersync, n), type(sys))} - set(names)
    assert not undeclared, f"public names missing from __all__: {sorted(undeclared)}"


def test_every_public_callable_is_documented():
    for name in brokersync.__all__:
        value = getattr(brokersync, name)
        if callable(value) and not name.startswith("__"):
            assert value.__doc__, f"{name} has no docstring"


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
