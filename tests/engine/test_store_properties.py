"""Property: whatever sequence of pages a broker sends, the store ends with the latest version of
each trade, once, and the imported/skipped/updated counts say exactly what changed."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from decimal import Decimal
from pathlib import Path

import attrs
import pytest
from brokersync import Account, Direction, Trade
from brokersync._store import Store, fingerprint
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

NOW = dt.datetime(2025, 3, 3, 12, 0, tzinfo=dt.UTC)
_counter = itertools.count()

# A page is a list of (trade number, version): version changes the trade's P&L (a correction).
pages = st.lists(st.lists(st.tuples(st.integers(0, 15), st.integers(0, 2)), max_size=12), min_size=1, max_size=6)


def make(number: int, version: int) -> Trade:
    return Trade(
        broker_trade_id=f"T{number}",
        account_id="A1",
        symbol="ESZ4",
        direction=Direction.SHORT,
        opened_at=NOW - dt.timedelta(hours=number),
        entry_price=Decimal("4312.25"),
        quantity=Decimal(1),
        realized_pnl=Decimal(version) / 4,
        currency="USD",
        raw={"n": number, "v": version},
    )


async def replay(url: str, sequence: list[list[tuple[int, int]]]) -> None:
    store = Store(url)
    try:
        await store.upgrade()
        connection_id = f"c{next(_counter)}"
        await store.create_connection(
            {"id": connection_id, "user_id": "u", "broker": "b", "environment": "live", "status": "active",
             "credentials": "v1:k:x", "created_at": NOW, "updated_at": NOW},
            [Account(id="A1")],
            NOW,
        )  # fmt: skip
        model: dict[str, Trade] = {}
        for page in sequence:
            batch = [make(n, v) for n, v in page]
            latest = {t.broker_trade_id: t for t in batch}
            expected_new = sum(1 for tid in latest if tid not in model)
            expected_updated = sum(
                1 for tid, t in latest.items() if tid in model and fingerprint(model[tid]) != fingerprint(t)
            )
            counts = await store.store_batch(connection_id=connection_id, account_id="A1", batch=batch, now=NOW)
            assert (counts.imported, counts.updated) == (expected_new, expected_updated)
            assert counts.imported + counts.updated + counts.skipped == len(batch)
            model.update(latest)
        stored = {t.broker_trade_id: t.to_trade() async for t in store.iter_trades(connection_ids=[connection_id])}
        assert stored == model
    finally:
        await store.aclose()


@pytest.fixture(scope="module")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("props") / "store.db"
    return f"sqlite+aiosqlite:///{path}"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=pages)
def test_any_page_sequence_ends_with_the_latest_version_of_each_trade_once(
    sqlite_url: str, sequence: list[list[tuple[int, int]]]
) -> None:
    asyncio.run(replay(sqlite_url, sequence))


def test_a_trade_compares_equal_after_a_round_trip_through_the_store(sqlite_url: str) -> None:
    # Guards the property above: Trade equality ignores raw, so compare raw separately once.
    async def one() -> None:
        store = Store(sqlite_url)
        try:
            await store.upgrade()
            await store.create_connection(
                {"id": "rt", "user_id": "u", "broker": "b", "environment": "live", "status": "active",
                 "credentials": "v1:k:x", "created_at": NOW, "updated_at": NOW},
                [Account(id="A1")],
                NOW,
            )  # fmt: skip
            original = attrs.evolve(make(3, 2), closed_at=NOW, exit_price=Decimal("4300.00"), fees=Decimal("0.42"))
            await store.store_batch(connection_id="rt", account_id="A1", batch=[original], now=NOW)
            [back] = [t async for t in store.iter_trades(connection_ids=["rt"])]
            assert back.to_trade() == original
            assert back.raw == {"n": 3, "v": 2}
        finally:
            await store.aclose()

    asyncio.run(one())
