"""Fixtures for the Tradovate plugin's tests: the fake API (importable as ``tradovate_fake``) and ground truth."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the fake and the ground truth live next to the tests

from tradovate_fake import FakeTradovate, standard_book


@pytest.fixture
def fake() -> FakeTradovate:
    return standard_book(FakeTradovate())
