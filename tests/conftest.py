"""Shared test configuration: async tests run on asyncio through the anyio pytest plugin."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"
