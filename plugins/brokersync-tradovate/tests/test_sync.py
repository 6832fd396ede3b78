"""End to end through BrokerSync: the fake's round trips stored exactly, incrementally, with one login."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import brokersync
import pytest
from ground_truth import expected_trades, stored_fields
from tradovate_exports import position_history
from tradovate_fake import T0, USER, FakeTradovate, standard_book

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _stored(engine: brokersync.BrokerSync, connection_id: str) -> dict[tuple[str, str], dict]:
    return {
        (t.account_id, t.broker_trade_id): stored_fields(t)
        async for t in engine.iter_trades(connection_id=connection_id)
    }


async def _engine(tmp_path, fake: FakeTradovate) -> brokersync.BrokerSync:
    return brokersync.BrokerSync(
        f"sqlite+aiosqlite:///{tmp_path / 'bs.db'}",
        encryption_keys="k1:" + "A" * 43 + "=",
        transports={"tradovate": fake.transport()},
        clock=fake.now,  # the engine and the fake agree on the time (token expiry)
    )


async def test_sync_stores_exactly_the_brokers_round_trips_then_only_new_pairs_and_one_login(tmp_path, fake):
    truth = expected_trades(fake)
    assert len(truth) == 11  # A: ES, NQ, 2 scale-in, 2 scale-out, 2 partial MES, CL (the bust is out); B: NQ, CL
    async with await _engine(tmp_path, fake) as engine:
        connected = await engine.connect_broker("u1", "tradovate", dict(USER), environment="demo")
        assert sorted(a.id for a in connected.accounts) == ["70001", "70002"]
        assert {a.name for a in connected.accounts} == {"DEMO70001", "DEMO70002"}
        first = await engine.sync_broker_trades(connected.connection_id, "u1")
        assert first.status == "succeeded", first.errors
        assert first.imported == len(truth) and first.error_count == 0
        stored = await _stored(engine, connected.connection_id)
        assert stored == truth
        for fields in stored.values():
            assert fields["opened_at"].tzinfo is not None and fields["opened_at"].utcoffset() == dt.timedelta(0)
            assert isinstance(fields["fees"], Decimal) and fields["fees"] == fields["fees"].quantize(Decimal("0.01"))
        cl = next(f for f in stored.values() if f["symbol"] == "CLF7" and f["direction"] == "long")
        assert (cl["entry_price"], cl["exit_price"], cl["realized_pnl"]) == (
            Decimal("71.37"),
            Decimal("71.52"),
            Decimal("150.00"),
        )
        cancelled = await engine.list_cancellations(connection_id=connected.connection_id)
        assert len(cancelled) == 1 and "TradeCancel" in (cancelled[0].reason or "")

        # New fills at the broker: only the new pairs are imported.
        fake.trade(70002, "ES", "Buy", [(1, "5890.25")], T0 + dt.timedelta(hours=6))
        fake.trade(70002, "ES", "Sell", [(1, "5893.75")], T0 + dt.timedelta(hours=6, minutes=2))
        fake.trade(
            70001, "MES", "Sell", [(1, "5905")], T0 + dt.timedelta(hours=6, minutes=5)
        )  # scales out of the open 2
        second = await engine.sync_broker_trades(connected.connection_id, "u1", trigger="scheduled")
        assert (second.imported, second.updated, second.error_count) == (2, 0, 0)
        assert await _stored(engine, connected.connection_id) == expected_trades(fake)

        again = await engine.sync_broker_trades(connected.connection_id, "u1", trigger="scheduled")
        assert (again.imported, again.updated) == (0, 0)
        manual = await engine.sync_broker_trades(connected.connection_id, "u1")
        assert (manual.imported, manual.updated) == (0, 0)
    assert fake.logins == 1  # connect logged in once; four syncs reused the cached token


async def test_a_price_correction_updates_the_stored_trade(tmp_path, fake):
    async with await _engine(tmp_path, fake) as engine:
        connected = await engine.connect_broker("u1", "tradovate", dict(USER), environment="demo")
        await engine.sync_broker_trades(connected.connection_id, "u1")
        es_sell = next(
            f for f in fake.entities["fill"].values() if f["action"] == "Sell" and str(f["price"]) == "5852.25"
        )
        fake.correct(es_sell["id"], "5852.5", T0 + dt.timedelta(hours=5))
        result = await engine.sync_broker_trades(connected.connection_id, "u1", trigger="scheduled")
        assert (result.imported, result.updated) == (0, 1)
        stored = await _stored(engine, connected.connection_id)
        assert stored == expected_trades(fake)
        assert any(
            f["exit_price"] == Decimal("5852.5") and f["realized_pnl"] == Decimal("200.0") for f in stored.values()
        )


async def test_faults_cost_nothing_and_an_expired_session_is_renewed_not_relogged(tmp_path):
    fake = standard_book(FakeTradovate(fault_rate=0.25, seed=3))
    async with await _engine(tmp_path, fake) as engine:
        connected = await engine.connect_broker("u1", "tradovate", dict(USER), environment="demo")
        first = await engine.sync_broker_trades(connected.connection_id, "u1")
        assert first.status == "succeeded" and first.retries > 0
        assert await _stored(engine, connected.connection_id) == expected_trades(fake)
        fake.advance(78 * 60)  # two minutes before the token expires: the core renews it
        fake.fault_rate = 0
        await engine.sync_broker_trades(connected.connection_id, "u1")
        assert (fake.logins, fake.renewals) == (1, 1)
    assert {"503", "500", "timeout", "penalty"} & set(fake.faults)


async def test_a_position_history_export_converges_with_the_api_and_keeps_its_fees(tmp_path, fake):
    export = tmp_path / "Position History.csv"
    export.write_text(position_history(fake, "America/Chicago", bom=True), encoding="utf-8")
    truth = expected_trades(fake)
    async with await _engine(tmp_path, fake) as engine:
        connected = await engine.connect_broker("u1", "tradovate", dict(USER), environment="demo")
        await engine.sync_broker_trades(connected.connection_id, "u1")
        imported = await engine.import_file(
            export, user_id="u1", connection_id=connected.connection_id, timezone="America/Chicago"
        )
        assert imported.format == "tradovate-position-history"
        # the same pair ids: nothing new, and the API's fees (the export has none) are kept
        assert (imported.imported, imported.updated, imported.skipped) == (0, 0, len(truth))
        assert await _stored(engine, connected.connection_id) == truth
        # into a file-only connection the file gives the same round trips (without fees)
        alone = await engine.import_file(export, user_id="u2", broker="tradovate", timezone="America/Chicago")
        assert alone.imported == len(truth)
        again = await engine.import_file(export, user_id="u2", broker="tradovate", timezone="America/Chicago")
        assert again.imported == 0 and again.updated == 0
