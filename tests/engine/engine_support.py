"""Helpers shared by the engine tests (and their worker subprocesses)."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Callable
from typing import Any

from brokersync import BrokerSync
from brokersync.testing import FakeClock
from sqlalchemy.ext.asyncio import AsyncEngine

START = dt.datetime(2025, 3, 3, 12, 0, tzinfo=dt.UTC)


# The engine tests' clock is brokersync's public fake; they start it at START.
Clock = FakeClock


@contextlib.asynccontextmanager
async def engine_factory(
    db_url: str, *, keys: str, transports: dict[str, Any], clock: Clock
) -> AsyncIterator[Callable[..., BrokerSync]]:
    """Build engines on one test database (each its own connection pool and lease holder, like a
    process), with the injected clock; all of them are closed on exit."""
    made: list[BrokerSync] = []

    def make(**overrides: object) -> BrokerSync:
        options: dict[str, object] = {
            "encryption_keys": keys,
            "transports": transports,
            "clock": clock,
            "monotonic": clock.monotonic,  # the limiter, circuits and retry budget follow it too
            "sleep": clock.sleep,  # the HTTP retry layer's waits pass on the injected clock
        }
        options.update(overrides)
        engine = BrokerSync(db_url, **options)  # type: ignore[arg-type]
        made.append(engine)
        return engine

    try:
        yield make
    finally:
        for engine in made:
            await engine.aclose()


async def downgrade_schema(database: AsyncEngine, target: str) -> None:
    """Run the shipped migrations down to ``target`` (brokersync itself only ever upgrades)."""
    from alembic import command
    from alembic.config import Config

    def run(connection: object) -> None:
        config = Config()
        config.set_main_option("script_location", "brokersync:_migrations")
        config.attributes["connection"] = connection
        command.downgrade(config, target)

    async with database.begin() as conn:
        await conn.run_sync(run)
