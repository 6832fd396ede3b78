"""Syncing trades: dedupe, corrections, invalid records, watermark, opaque cursor, tokens, scheduling."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal

import fakebroker
import pytest
from brokersync import (
    BrokerAuthError,
    BrokerServerError,
    BrokerSync,
    ConnectionStatus,
    NeedsReauthError,
    RunStatus,
    SyncInProgressError,
    SyncProgress,
)
from engine_support import Clock

pytestmark = pytest.mark.anyio


async def stored(engine: BrokerSync, connection_id: str) -> dict[tuple[str, str], object]:
    return {(t.account_id, t.broker_trade_id): t async for t in engine.iter_trades(connection_id=connection_id)}


def assert_matches_broker(rows: dict[tuple[str, str], object], api: fakebroker.FakeBrokerApi) -> None:
    expected = api.expected()
    assert set(rows) == set(expected)
    for key, trade in rows.items():
        wire = expected[key]
        assert trade.entry_price == Decimal(wire["entry_price"]), key  # type: ignore[attr-defined]
        assert trade.realized_pnl == Decimal(wire["realized_pnl"]), key  # type: ignore[attr-defined]
        assert trade.closed_at == dt.datetime.fromisoformat(wire["closed_at"]), key  # type: ignore[attr-defined]


async def test_manual_sync_imports_everything_then_skips_duplicates(
    engine: BrokerSync, api: fakebroker.FakeBrokerApi
) -> None:
    connection = await engine.connect_broker("alice", fakebroker.KEY, fakebroker.CREDENTIALS)

    first = await engine.sync_broker_trades(connection.connection_id, "alice")
    second = await engine.sync_broker_trades(connection.connection_id, "alice")

    assert (first.imported, first.skipped, first.updated, first.status) == (35, 0, 0, RunStatus.SUCCEEDED)
    assert (second.imported, second.skipped, second.updated) == (0, 35, 0)
    assert first.accounts == 2
    assert_matches_broker(await stored(engine, connection.connection_id), api)
    runs = await engine.list_runs(connection_id=connection.connection_id)
    assert [(r.trigger.value, r.status.value, r.imported, r.skipped) for r in runs] == [
        ("manual", "succeeded", 0, 35),
        ("manual", "succeeded", 35, 0),
    ]


async def test_money_and_times_come_back_exact(engine: BrokerSync, api: fakebroker.FakeBrokerApi) -> None:
    api.correct(
        "ACC-1",
        "ACC-1-T000003",
        entry_price="4312.250000000001",
        realized_pnl="-0.01",
        fees="1.234567890123456789",
        opened_at="2024-01-02T09:30:00.123456-05:00",
    )
    connection = await engine.connect_broker("alice", fakebroker.KEY, fakebroker.CREDENTIALS)
    await engine.sync_broker_trades(connection.connection_id, "alice")

    [trade] = [
        t
        async for t in engine.iter_trades(connection_id=connection.connection_id)
        if t.broker_trade_id.endswith("T000003") and t.account_id == "ACC-1"
    ]
    assert trade.entry_price == Decimal("4312.250000000001")
    assert trade.realized_pnl == Decimal("-0.01")
    assert trade.fees == Decimal("1.234567890123456789")
    assert isinstance(trade.fees, Decimal)
    assert trade.opened_at == dt.datetime(2024, 1, 2, 14, 30, 0, 123456, tzinfo=dt.UTC)
    assert trade.opened_at.tzinfo is dt.UTC


async def test_corrections_are_updates_and_raw_only_changes_are_not(
    engine: BrokerSync, api: fakebroker.FakeBrokerApi
) -> None:
    connection = await engine.connect_broker("alice", fakebroker.KEY, fakebroker.CREDENTIALS)
    await engine.sync_broker_trades(connection.connection_id, "alice")
    api.correct("ACC-1", "ACC-1-T000001", exit_price="9999.75", realized_pnl="123.45")
    api.correct("ACC-2", "ACC-2-T000004", fees="0.00")
    api.correct("ACC-1", "ACC-1-T000002", broker_note="re-sent with an extra raw field")  # normalized fields equal
    api.add_trade("ACC-2", 10)

    result = await engine.sync_broker_trades(connection.connection_id, "alice")

    assert (result.imported, result.updated, result.skipped) == (1, 2, 33)
    rows = await stored(engine, connection.connection_id)
    assert rows[("ACC-1", "ACC-1-T000001")].exit_price == Decimal("9999.75")  # type: ignore[attr-defined]
    assert rows[("ACC-2", "ACC-2-T000004")].fees == Decimal("0.00")  # type: ignore[attr-defined]
    assert_matches_broker(rows, api)


async def test_invalid_records_are_reported_never_stored(engine: BrokerSync, api: fakebroker.FakeBrokerApi) -> None:
    good = dict(api.trades["ACC-1"]["ACC-1-T000000"])
    del good["seq"]
    api.invalid["ACC-1"] = [
        {**good, "broker_trade_id": "BAD-NAIVE", "opened_at": "2024-01-02T09:30:00"},
        {**good, "broker_trade_id": "BAD-QTY", "quantity": "-3"},
        {k: v for k, v in good.items() if k != "broker_trade_id"},
    ]
    connection = await engine.connect_broker("alice", fakebroker.KEY, fakebroker.CREDENTIALS)

    result = await engine.sync_broker_trades(connection.connection_id, "alice")

    assert result.status is RunStatus.PARTIAL
    assert (result.imported, result.error_count) == (35, 3)
    reasons = {e.broker_trade_id: e.reason for e in result.errors}
    assert "naive" in reasons["BAD-NAIVE"]
    assert "quantity" in reasons["BAD-QTY"]
    assert "broker_trade_id" in reasons[None]
    ids = {t.broker_trade_id async for t in engine.iter_trades(connection_id=connection.connection_id)}
    assert not {"BAD-NAIVE", "BAD-QTY"} & ids
    [run] = await engine.list_runs(connection_id=connection.connection_id)
    assert run.status is RunStatus.PARTIAL
    assert run.error_count == 3
    assert {e["broker_trade_id"] for e in run.record_errors} == {"BAD-NAIVE", "BAD-QTY", None}


async def test_watermark_moves_to_a_safe_point_and_scheduled_sync_uses_lookback_and_cursor(
    engine: BrokerSync, api: fakebroker.FakeBrokerApi, clock: Clock
) -> None:
    connection = await engine.connect_broker("alice", fakebroker.KEY, fakebroker.CREDENTIALS)
    started = clock()
    await engine.sync_broker_trades(connection.connection_id, "alice")
    info = await engine.get_connection(connection.connection_id, "alice")
    positions = {a.account_id: a for a in info.accounts}
    safe = started - engine.settings.settle
    assert positions["ACC-1"].watermark == safe
    last_cursor = str(max(t["seq"] for t in api.trades["ACC-1"].values()))
    assert positions["ACC-1"].cursor == last_cursor

    clock.advance(hours=6)
    api.trade_queries.clear()
    api.add_trade("ACC-1", 25, opened=clock() - dt.timedelta(hours=1))
    result = await engine.sync_broker_trades(connection.connection_id, "alice", trigger="scheduled")

    assert result.imported == 1
    acc1 = [q for q in api.trade_queries if q["account"] == "ACC-1"]
    assert acc1[0]["after"] == last_cursor  # the plugin's cursor, exactly as it returned it
    assert dt.datetime.fromisoformat(acc1[0]["since"]) == safe - engine.settings.lookback
    info = await engine.get_connection(connection.connection_id, "alice")
    assert {a.account_id: a.watermark for a in info.accounts}["ACC-1"] == clock() - engine.settings.settle


async def test_a_manual_sync_from_since_does_not_claim_older_history(
    engine: BrokerSync, api: fakebroker.FakeBrokerApi
) -> None:
    connection = await engine.connect_broker("alice", fakebroker.KEY, fakebroker.CREDENTIALS)
    since = fakebroker.EPOCH + dt.timedelta(minutes=7 * 20)

    result = await engine.sync_broker_trades(connection.connection_id, "alice", since=since)

    assert result.imported == 5  # ACC-1 trades 20..24; ACC-2 has none that late
    info = await engine.get_connection(connection.connection_id, "alice")
    assert [a.watermark for a in info.accounts] == [None, None]
    with pytest.raises(ValueError, match="timezone-aware"):
        await engine.sync_broker_trades(connection.connection_id, "alice", since=dt.datetime(2024, 1, 1))


async def test_progress_is_reported_after_each_stored_batch(engine: BrokerSync, api: fakebroker.FakeBrokerApi) -> None:
    api.page_size = 10
    connection = await engine.connect_broker("alice", fakebroker.KEY, fakebroker.CREDENTIALS)
    seen: list[SyncProgress] = []

    async def on_progress(progress: SyncProgress) -> None:
        seen.append(progress)
        rows = await engine.count_trades(connection_id=connection.connection_id)
        assert rows == progress.imported  # the batch is committed before progress is reported

    await engine.sync_broker_trades(connection.connection_id, "alice", on_progress=on_progress)

    assert [(p.account_id, p.imported) for p in seen] == [
        ("ACC-1", 10), ("ACC-1", 20), ("ACC-1", 25), ("ACC-2", 35),
    ]  # fmt: skip


async def test_token_is_refreshed_before_expiry_and_persisted(
    engine: BrokerSync, make_engine, api: fakebroker.FakeBrokerApi, clock: Clock
) -> None:
    connection = await engine.connect_broker("alice", fakebroker.KEY, fakebroker.CREDENTIALS)
    await engine.sync_broker_trades(connection.connection_id, "alice")
    assert (api.auth_calls, api.refresh_calls) == (1, 0)  # the token from connect is reused

    clock.advance(minutes=56)  # 4 minutes left: inside the 5 minute margin
    await engine.sync_broker_trades(connection.connection_id, "alice")
    assert (api.auth_calls, api.refresh_calls) == (1, 1)
    newest = api.issued[-2]

    other = make_engine()  # another process: reads the refreshed token from the database
    await other.sync_broker_trades(connection.connection_id, "alice")
    assert (api.auth_calls, api.refresh_calls) == (1, 1)
    assert api.requests[-1].headers["Authorization"] == f"Bearer {newest}"


async def test_expired_refresh_token_falls_back_to_credentials(
    engine: BrokerSync, api: fakebroker.FakeBrokerApi, clock: Clock
) -> None:
    connection = await engine.connect_broker("alice", fakebroker.KEY, fakebroker.CREDENTIALS)
    api.refresh_tokens.clear()
    clock.advance(hours=2)

    result = await engine.sync_broker_trades(connection.connection_id, "alice")

    assert result.ok
    assert (api.auth_calls, api.refresh_calls) == (2, 1)


async def test_token_refresh_is_single_flight(engine: BrokerSync, api: fakebroker.FakeBrokerApi, clock: Clock) -> None:
    from brokersync._engine._secrets import Secrets
    from brokersync._engine._tokens import TokenKeeper

    connection = await engine.connect_broker("alice", fakebroker.KEY, fakebroker.CREDENTIALS)
    row = await engine.store.connection_row(connection.connection_id)
    cached = Secrets(lambda: engine.vault).open_token(row)
    saved = []

    async def save(auth) -> None:
        saved.append(auth)

    clock.advance(hours=2)
    async with engine.registry.get(fakebroker.KEY, transport=api.transport(), clock=clock) as broker:
        keeper = TokenKeeper(
            broker=broker,
            credentials=fakebroker.CREDENTIALS,
            cached=cached,
            save=save,
            lock=asyncio.Lock(),
            margin=dt.timedelta(minutes=5),
            clock=clock,
        )
        tokens = await asyncio.gather(*(keeper.token() for _ in range(8)))

    assert api.refresh_calls == 1
    assert len(saved) == 1
    assert {t.access_token for t in tokens} == {saved[0].access_token}


async def test_auth_failure_marks_needs_reauth_until_reconnected(
    engine: BrokerSync, api: fakebroker.FakeBrokerApi, clock: Clock
) -> None:
    connection = await engine.connect_broker("alice", fakebroker.KEY, fakebroker.CREDENTIALS)
    await engine.sync_broker_trades(connection.connection_id, "alice")
    api.password = "changed-at-the-broker"
    api.tokens.clear()
    api.refresh_tokens.clear()

    with pytest.raises(BrokerAuthError):
        await engine.sync_broker_trades(connection.connection_id, "alice")

    info = await engine.get_connection(connection.connection_id, "alice")
    assert info.status is ConnectionStatus.NEEDS_REAUTH
    assert info.last_sync_status is RunStatus.FAILED
    [failed, _] = await engine.list_runs(connection_id=connection.connection_id)
    assert (failed.status, failed.error_type) == (RunStatus.FAILED, "auth")
    assert await engine.run_scheduled_sync() == []  # skipped, not retried against the broker
    with pytest.raises(NeedsReauthError, match="reconnect"):
        await engine.sync_broker_trades(connection.connection_id, "alice")

    new_credentials = {"username": fakebroker.USERNAME, "password": "changed-at-the-broker"}
    reconnected = await engine.reconnect_broker(connection.connection_id, "alice", new_credentials)
    assert reconnected.connection_id == connection.connection_id
    result = await engine.sync_broker_trades(connection.connection_id, "alice")
    assert (result.imported, result.skipped) == (0, 35)  # trades kept across the reconnect


async def test_scheduled_sync_runs_every_active_connection_and_isolates_failures(
    make_engine, api: fakebroker.FakeBrokerApi, clock: Clock
) -> None:
    from brokersync import Resilience

    # A circuit that stays closed, so each connection shows its own retried server error.
    resilience = Resilience(circuit_failure_threshold=1000, sleep=clock.sleep, clock=clock.monotonic, wall_clock=clock)
    engine = make_engine(resilience=resilience)
    await engine.upgrade_database()
    first = await engine.connect_broker("alice", fakebroker.KEY, fakebroker.CREDENTIALS)
    second = await engine.connect_broker("bob", fakebroker.KEY, fakebroker.CREDENTIALS)
    third = await engine.connect_broker("carol", fakebroker.KEY, fakebroker.CREDENTIALS)
    await engine.disconnect_broker(third.connection_id, "carol")
    await engine.sync_broker_trades(second.connection_id, "bob")
    api.fail_trades_for.add("ACC-2")  # every connection sees it, but only after ACC-1 is stored
    api.add_trade("ACC-1", 25)

    results = await engine.run_scheduled_sync(concurrency=2)

    by_id = {r.connection_id: r for r in results}
    assert set(by_id) == {first.connection_id, second.connection_id}
    for result in results:
        assert result.status is RunStatus.FAILED
        assert result.error is not None
        assert result.error.type.value == "api"
        assert result.run_id is not None
        assert result.retries == 3  # the broker's retry policy ran, and the run reports it
    assert clock.sleeps  # the backoff waited on the injected sleep
    runs = await engine.list_runs(connection_id=first.connection_id, status="failed")
    assert [(r.retries, r.error_type) for r in runs] == [(3, "api")]
    assert await engine.count_trades(connection_id=first.connection_id) == 26  # ACC-1 batches stayed stored

    api.fail_trades_for.clear()
    results = await engine.run_scheduled_sync()
    assert all(r.status is RunStatus.SUCCEEDED for r in results)
    assert await engine.count_trades(connection_id=first.connection_id) == 36
    api.fail_trades_for.add("ACC-1")
    with pytest.raises(BrokerServerError):
        await engine.sync_broker_trades(first.connection_id, "alice")


async def test_a_second_caller_gets_sync_in_progress_until_the_lease_expires(
    engine: BrokerSync, make_engine, clock: Clock
) -> None:
    connection = await engine.connect_broker("alice", fakebroker.KEY, fakebroker.CREDENTIALS)
    crashed = make_engine()
    assert await crashed.store.acquire_lease(
        connection.connection_id, holder="dead-worker", run_id="r0", now=clock(), ttl=engine.settings.lease_ttl
    )

    with pytest.raises(SyncInProgressError, match="already being synced by dead-worker"):
        await engine.sync_broker_trades(connection.connection_id, "alice")
    [result] = await engine.run_scheduled_sync()
    assert result.status is RunStatus.FAILED
    assert result.run_id is None

    clock.advance(seconds=engine.settings.lease_ttl.total_seconds() + 1)
    assert (await engine.sync_broker_trades(connection.connection_id, "alice")).imported == 35


async def test_scheduled_sync_concurrency_is_bounded(make_engine, api: fakebroker.FakeBrokerApi) -> None:
    import httpx

    in_flight = 0
    peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        if request.url.path != "/trades":
            return await api.handle(request)
        in_flight += 1
        peak = max(peak, in_flight)
        for _ in range(2000):  # stay "in flight" so a third concurrent sync, if allowed, would overlap
            if in_flight > 2:
                break
            await asyncio.sleep(0)
        for _ in range(20):
            await asyncio.sleep(0)
        in_flight -= 1
        return await api.handle(request)

    engine = make_engine(transports={fakebroker.KEY: httpx.MockTransport(handler)})
    await engine.upgrade_database()
    for user in ("ann", "ben", "cat", "dan"):
        await engine.connect_broker(user, fakebroker.KEY, fakebroker.CREDENTIALS)

    results = await engine.run_scheduled_sync(concurrency=2)

    assert [r.status for r in results] == [RunStatus.SUCCEEDED] * 4
    assert peak == 2  # two connections synced at once, never more


async def test_a_cancelled_sync_is_recorded_and_releases_its_lease(
    engine: BrokerSync, api: fakebroker.FakeBrokerApi
) -> None:
    api.page_size = 5
    connection = await engine.connect_broker("alice", fakebroker.KEY, fakebroker.CREDENTIALS)
    second_batch = asyncio.Event()

    async def on_progress(progress: SyncProgress) -> None:
        if progress.batches == 2:
            second_batch.set()
            await asyncio.Event().wait()  # the sync hangs here until it is cancelled

    task = asyncio.create_task(engine.sync_broker_trades(connection.connection_id, "alice", on_progress=on_progress))
    await second_batch.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    [cancelled] = await engine.list_runs(connection_id=connection.connection_id)
    # Stopped, not failed: the run reads interrupted with the two batches (10 trades) it committed.
    assert cancelled.status is RunStatus.INTERRUPTED
    assert (cancelled.imported, cancelled.error_type) == (10, None)
    assert "10 new or changed trades it stored are kept" in (cancelled.error_message or "")
    info = await engine.get_connection(connection.connection_id, "alice")
    assert [a.watermark for a in info.accounts] == [None, None]
    result = await engine.sync_broker_trades(connection.connection_id, "alice")  # no lease left behind
    assert (result.imported, result.skipped) == (25, 10)
