"""Fixtures for the toolkit tests: an engine with the ``expiring`` broker (see ``expiring.py``)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from brokersync import BrokerRegistry, BrokerSync, Vault  # noqa: E402
from expiring import ExpiringApi  # noqa: E402


@pytest.fixture
async def make_engine(tmp_path: Path) -> AsyncIterator[Any]:
    """BrokerSync on a fresh SQLite file with one plugin registered and its fake API as transport."""
    made: list[BrokerSync] = []

    def make(plugin: Any, api: ExpiringApi) -> BrokerSync:
        registry = BrokerRegistry(entry_points=False)
        registry.register("expiring", plugin)
        engine = BrokerSync(
            f"sqlite+aiosqlite:///{tmp_path / 'bs.db'}",
            encryption_keys=Vault.generate_key("k1"),
            registry=registry,
            transports={"expiring": api.transport()},
        )
        made.append(engine)
        return engine

    yield make
    for engine in made:
        await engine.aclose()
