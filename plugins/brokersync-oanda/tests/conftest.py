"""Fixtures for the OANDA plugin's tests: a fake v20 API with two accounts and a varied history."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the fake lives beside the tests (pytest's importlib mode)

from fake_v20 import FakeV20
from histories import make_fake


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fake() -> FakeV20:
    return make_fake()
