"""Fixtures for the conformance suite's own tests: the example plugin and its entry point."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
# The example plugin module ``acme_broker`` lives next to these tests; entry points name it by module path.
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from acme_broker import write_distribution  # noqa: E402 - importable only once HERE is on sys.path


@pytest.fixture
def acme_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make the example plugin discoverable through its entry point for one test."""
    site = write_distribution(tmp_path / "site")
    monkeypatch.syspath_prepend(str(site))
    return site
