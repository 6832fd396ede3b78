"""Sync health statistics, alert checks and the retry of failed syncs, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import attrs
import brokersync
import fakebroker
import pytest
from brokersync import (
    AlertKind,
    AlertThresholds,
    BrokerAuthError,
    BrokerMetadata,
    BrokerServerError,
    BrokerStats,
    BrokerSync,
    ConnectionStatus,
    RateLimit,
    Resilience,
    RunStatus,
    SyncRunInfo,
    SyncStats,
    hookimpl,
)
from brokersync._store._schema import sync_runs
from engine_support import START, Clock, downgrade_schema
from sqlalchemy import insert

pytestmark = pytest.mark.anyio

OTHER = "otherbroker"


class OtherBrokerPlugin(fakebroker.FakeBrokerPlugin):
    """The fake broker's API under a second key, so statistics have two brokers to tell apart."""

    @hookimpl
    def broker_metadata(self) -> BrokerMetadata:
        return attrs.evolve(super().broker_metadata(), key=OTHER, name="Other Broker")


@pytest.fixture
def other_api(clock: Clock) -> fakebroker.FakeBrokerApi:
    return fakebroker.FakeBrokerApi(accounts={"X-1": 5}, clock=clock)


@pytest.fixture
def registered_other() -> Iterator[None]:
    brokersync.register_broker(OTHER, OtherBrokerPlugin(), replace=True)
    yield
    brokersync.unregister_broker(OTHER)


@pytest.fixture
async def monitored(
    make_engine, api: fakebroker.FakeBrokerApi, other_api: fakebroker.FakeBrokerApi, clock: Clock, registered_other
) -> BrokerSync:
    """Two brokers; fakebroker is rate limited (2 requests per 10 s) so its runs wait on the limiter."""
    resilience = Resilience(
        rate_limits={fakebroker.KEY: RateLimit(max_requests=2, window_seconds=10)},
        circuit_failure_threshold=1000,  # each failing run shows its own retries
        sleep=clock.sleep,
        clock=clock.monotonic,
        wall_clock=clock,
    )
    engine = make_engine(
        resilience=resilience, transports={fakebroker.KEY: api.transport(), OTHER: other_api.transport()}
    )
    await engine.upgrade_database()
    return engine


def _expected(runs: list[SyncRunInfo]) -> dict[str, int]:
    return {
        "runs": len(runs),
        "succeeded": sum(r.status is RunStatus.SUCCEEDED for r in runs),
        "failed": sum(r.status is RunStatus.FAILED for r in runs),
        "requests": sum(r.requests or 0 for r in runs),
        "retries": sum(r.retries for r in runs),
        "rate_limit_waits": sum(r.rate_limit_waits for r in runs),
        "rate_limit_wait_ms": sum(r.rate_limit_wait_ms for r in runs),
        "imported": sum(r.imported for r in runs),
        "auth_failures": sum(r.error_type == "auth" for r in runs),
    }


def _observed(stats: BrokerStats) -> dict[str, int]:
    return {name: getattr(stats, name) for name in _expected([])}


async def _history(
    engine: BrokerSync, api: fakebroker.FakeBrokerApi, other_api: fakebroker.FakeBrokerApi, clock: Clock
) -> dict[str, str]:
    """alice (fakebroker) syncs fine, bob (fakebroker) fails on a server error, carol (otherbroker)
    syncs once, then the broker rejects her credentials. Returns user -> connection id."""
    ids = {}
    for user, key in (("alice", fakebroker.KEY), ("bob", fakebroker.KEY), ("carol", OTHER)):
        ids[user] = (await engine.connect_broker(user, key, fakebroker.CREDENTIALS)).connection_id
    await engine.sync_broker_trades(ids["alice"], "alice")
    api.fail_trades_for.add("ACC-2")
    with pytest.raises(BrokerServerError):
        await engine.sync_broker_trades(ids["bob"], "bob")
    api.fail_trades_for.clear()
    clock.advance(hours=1)
    await engine.sync_broker_trades(ids["carol"], "carol")
    other_api.password = "changed-at-the-broker"
    other_api.tokens.clear()
    other_api.refresh_tokens.clear()
    with pytest.raises(BrokerAuthError):
        await engine.sync_broker_trades(ids["carol"], "carol")
    return ids


async def test_stats_match_the_runs_that_happened(
    monitored: BrokerSync, api: fakebroker.FakeBrokerApi, other_api: fakebroker.FakeBrokerApi, clock: Clock
) -> None:
    ids = await _history(monitored, api, other_api, clock)
    runs = await monitored.list_runs(limit=None)
    assert all(r.requests for r in runs)  # every run recorded how many requests it sent
    # bob's run failed on ACC-2 after committing ACC-1: its audit row counts what it stored.
    bob_stored = await monitored.count_trades(connection_id=ids["bob"])
    assert bob_stored > 0

    stats = await monitored.sync_stats()

    assert set(stats.brokers) == {fakebroker.KEY, OTHER}
    fake, other = stats.brokers[fakebroker.KEY], stats.brokers[OTHER]
    assert _observed(fake) == _expected([r for r in runs if r.broker == fakebroker.KEY])
    assert _observed(other) == _expected([r for r in runs if r.broker == OTHER])
    assert _observed(stats.total) == _expected(runs)
    assert (fake.succeeded, fake.failed, fake.auth_failures) == (1, 1, 0)
    assert (other.succeeded, other.failed, other.auth_failures) == (1, 1, 1)
    assert fake.retries == 3 and other.retries == 0  # the server error was retried 3 times
    assert fake.rate_limit_waits > 0 and other.rate_limit_waits == 0  # only fakebroker is limited
    assert fake.retry_rate == pytest.approx(3 / fake.requests)
    assert fake.rate_limit_hit_rate == pytest.approx(fake.rate_limit_waits / fake.requests)
    assert other.rate_limit_hit_rate == 0.0
    assert stats.total.success_rate == 0.5 and stats.total.failure_rate == 0.5
    assert (other.needs_reauth, fake.needs_reauth, stats.total.needs_reauth) == (1, 0, 1)
    assert stats.total.imported == 35 + 5 + bob_stored  # alice's 35 trades, carol's 5, bob's before failing
    durations = [r.duration_ms for r in runs if r.duration_ms is not None]
    assert stats.total.max_duration_ms == max(durations)
    assert stats.total.avg_duration_ms == pytest.approx(sum(durations) / len(durations))
    assert stats.computed_at == clock() and stats.computed_at.tzinfo is not None

    alerts = {(a.kind, a.broker) for a in stats.alerts()}
    assert (AlertKind.FAILURE_RATE, fakebroker.KEY) in alerts
    assert (AlertKind.FAILURE_RATE, OTHER) in alerts
    assert (AlertKind.NEEDS_REAUTH, OTHER) in alerts
    assert (AlertKind.NEEDS_REAUTH, fakebroker.KEY) not in alerts
    reauth = next(a for a in stats.alerts() if a.kind is AlertKind.NEEDS_REAUTH)
    assert "1 connection needs new credentials" in reauth.message and OTHER in reauth.message


async def test_filters_by_time_user_and_broker(
    monitored: BrokerSync, api: fakebroker.FakeBrokerApi, other_api: fakebroker.FakeBrokerApi, clock: Clock
) -> None:
    await _history(monitored, api, other_api, clock)

    later = await monitored.sync_stats(since=START + dt.timedelta(minutes=30))
    assert set(later.brokers) == {OTHER}  # fakebroker's runs were before, carol's after
    assert (later.total.runs, later.total.succeeded, later.total.auth_failures) == (2, 1, 1)
    assert later.since == START + dt.timedelta(minutes=30)

    bob = await monitored.sync_stats(user_id="bob")
    assert (bob.total.runs, bob.total.failed, bob.total.needs_reauth) == (1, 1, 0)
    assert bob.total.failure_rate == 1.0

    carol = await monitored.sync_stats(user_id="carol")
    assert (carol.total.runs, carol.total.needs_reauth) == (2, 1)

    only_fake = await monitored.sync_stats(broker=fakebroker.KEY)
    assert set(only_fake.brokers) == {fakebroker.KEY}
    assert (only_fake.total.runs, only_fake.total.needs_reauth) == (2, 0)
    assert not any(a.kind is AlertKind.NEEDS_REAUTH for a in only_fake.alerts())

    nobody = await monitored.sync_stats(user_id="zoe")
    assert nobody.total.runs == 0 and nobody.brokers == {}

    with pytest.raises(ValueError, match="timezone-aware"):
        await monitored.sync_stats(since=dt.datetime(2025, 1, 1))  # a naive time


async def test_an_empty_database_has_no_rates_and_no_alerts(engine: BrokerSync) -> None:
    stats = await engine.sync_stats()

    assert stats.brokers == {}
    total = stats.total
    assert (total.runs, total.requests, total.needs_reauth) == (0, 0, 0)
    rates = (total.success_rate, total.failure_rate, total.retry_rate, total.rate_limit_hit_rate)
    assert rates == (None, None, None, None)
    assert (total.avg_duration_ms, total.max_duration_ms, total.p95_duration_ms) == (None, None, None)
    assert stats.alerts() == []
    assert stats.alerts(AlertThresholds(failure_rate=0, rate_limit_hit_rate=0, slow_sync=dt.timedelta(0))) == []


async def test_rows_from_before_the_request_count_leave_rates_unknown(engine: BrokerSync) -> None:
    connection = await engine.connect_broker("alice", fakebroker.KEY, fakebroker.CREDENTIALS)
    await engine.sync_broker_trades(connection.connection_id, "alice")
    await downgrade_schema(engine.store.engine, "0003")  # the column goes away with its values ...
    await engine.upgrade_database()  # ... and comes back NULL, as on a database upgraded from 0003

    [old] = await engine.list_runs()
    assert old.requests is None
    stats = await engine.sync_stats()
    assert (stats.total.runs, stats.total.succeeded, stats.total.runs_without_requests) == (1, 1, 1)
    assert (stats.total.requests, stats.total.retry_rate, stats.total.rate_limit_hit_rate) == (0, None, None)
    assert stats.total.success_rate == 1.0

    new = await engine.sync_broker_trades(connection.connection_id, "alice")
    stats = await engine.sync_stats()
    assert new.requests > 0
    assert (stats.total.runs, stats.total.runs_without_requests, stats.total.requests) == (2, 1, new.requests)
    assert stats.total.retry_rate == 0.0 and stats.total.rate_limit_hit_rate == 0.0


async def test_durations_average_maximum_and_p95_are_computed_by_the_database(engine: BrokerSync) -> None:
    rows = [
        {
            "id": f"run-{broker}-{n:03d}",
            "connection_id": f"conn-{broker}",
            "user_id": "alice",
            "broker": broker,
            "trigger": "scheduled",
            "status": "succeeded",
            "started_at": START + dt.timedelta(minutes=n),
            "finished_at": START + dt.timedelta(minutes=n, seconds=1),
            "duration_ms": n * 1000,
            "requests": 4,
        }
        for broker, count in (("a", 20), ("b", 3))
        for n in range(1, count + 1)
    ]
    running = {**rows[0], "id": "run-a-running", "status": "running", "finished_at": None, "duration_ms": None}
    async with engine.store.engine.begin() as conn:
        await conn.execute(insert(sync_runs), [*rows, running])

    stats = await engine.sync_stats()

    a, b = stats.brokers["a"], stats.brokers["b"]
    assert (a.runs, a.running, a.succeeded) == (21, 1, 20)
    assert (a.avg_duration_ms, a.max_duration_ms, a.p95_duration_ms) == (10_500, 20_000, 19_000)  # rank ceil(19)
    assert (b.avg_duration_ms, b.max_duration_ms, b.p95_duration_ms) == (2_000, 3_000, 3_000)  # rank ceil(2.85)
    assert stats.total.p95_duration_ms == 19_000  # rank ceil(0.95 * 23) = 22 of 1..20 and 1..3
    assert stats.total.max_duration_ms == 20_000
    assert stats.total.success_rate == 1.0  # the running run is not finished: not counted either way

    assert [a.broker for a in stats.alerts(AlertThresholds(slow_sync=dt.timedelta(seconds=20)))] == []
    [slow] = stats.alerts(AlertThresholds(slow_sync=dt.timedelta(seconds=19.999)))
    assert (slow.kind, slow.broker, slow.value) == (AlertKind.SLOW_SYNC, "a", 20.0)
    assert "slowest sync took 20.0 s" in slow.message
    # The default: 60 s.
    assert stats.alerts() == []


def _stats(**fields: object) -> SyncStats:
    broker = BrokerStats(broker="x", **fields)  # type: ignore[arg-type]
    return SyncStats(since=None, computed_at=START, user_id=None, broker=None, total=broker, brokers={"x": broker})


@pytest.mark.parametrize(
    ("fields", "thresholds", "kinds"),
    [
        ({"succeeded": 9, "failed": 1, "failure_rate": 0.1}, AlertThresholds(), []),
        ({"succeeded": 8, "failed": 1, "failure_rate": 1 / 9}, AlertThresholds(), [AlertKind.FAILURE_RATE]),
        ({"succeeded": 1, "interrupted": 1, "failure_rate": 0.5}, AlertThresholds(), [AlertKind.FAILURE_RATE]),
        ({"succeeded": 1, "failed": 1, "failure_rate": 0.5}, AlertThresholds(min_runs=3), []),
        ({"requests": 100, "rate_limit_waits": 20, "rate_limit_hit_rate": 0.2}, AlertThresholds(), []),
        (
            {"requests": 100, "rate_limit_waits": 21, "rate_limit_hit_rate": 0.21},
            AlertThresholds(),
            [AlertKind.RATE_LIMIT],
        ),
        (
            {"requests": 10, "rate_limit_waits": 1, "rate_limit_hit_rate": 0.1},
            AlertThresholds(rate_limit_hit_rate=0.05),
            [AlertKind.RATE_LIMIT],
        ),
        ({"max_duration_ms": 60_000}, AlertThresholds(), []),
        ({"max_duration_ms": 60_001}, AlertThresholds(), [AlertKind.SLOW_SYNC]),
        ({"needs_reauth": 0}, AlertThresholds(), []),
        ({"needs_reauth": 1}, AlertThresholds(), [AlertKind.NEEDS_REAUTH]),
        ({"needs_reauth": 2}, AlertThresholds(needs_reauth=2), []),
    ],
    ids=[
        "failures-at-10%",
        "failures-above-10%",
        "interrupted-count-as-failures",
        "failures-below-min-runs",
        "rate-limit-at-20%",
        "rate-limit-above-20%",
        "rate-limit-custom-threshold",
        "slow-at-60s",
        "slow-above-60s",
        "no-reauth",
        "one-reauth",
        "reauth-within-allowance",
    ],
)
def test_each_alert_fires_above_its_threshold_and_not_at_it(
    fields: dict[str, object], thresholds: AlertThresholds, kinds: list[AlertKind]
) -> None:
    alerts = _stats(**fields).alerts(thresholds)
    assert [a.kind for a in alerts] == kinds
    for alert in alerts:
        assert alert.broker == "x" and alert.message.startswith("x: ") and alert.value > alert.threshold


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"failure_rate": 1.5}, "failure_rate is a fraction between 0 and 1"),
        ({"rate_limit_hit_rate": -0.1}, "rate_limit_hit_rate is a fraction"),
        ({"slow_sync": dt.timedelta(seconds=-1)}, "slow_sync must not be negative"),
        ({"needs_reauth": -1}, "needs_reauth must not be negative"),
    ],
    ids=["failure-rate", "rate-limit", "slow", "reauth"],
)
def test_thresholds_refuse_nonsense(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AlertThresholds(**options)  # type: ignore[arg-type]


async def test_retry_failed_syncs_syncs_exactly_the_failed_active_connections(
    monitored: BrokerSync, api: fakebroker.FakeBrokerApi, other_api: fakebroker.FakeBrokerApi, clock: Clock
) -> None:
    ids = await _history(monitored, api, other_api, clock)  # bob failed; carol failed on auth
    dave = (await monitored.connect_broker("dave", fakebroker.KEY, fakebroker.CREDENTIALS)).connection_id
    api.fail_trades_for.add("ACC-1")
    with pytest.raises(BrokerServerError):
        await monitored.sync_broker_trades(dave, "dave")
    await monitored.disconnect_broker(dave, "dave")  # failed, then disconnected: not retried
    api.fail_trades_for.clear()

    assert [c.id for c in await monitored.failed_connections()] == [ids["bob"]]
    assert await monitored.retry_failed_syncs(user_id="alice") == []
    progress: list[str] = []

    results = await monitored.retry_failed_syncs(on_progress=lambda p: progress.append(p.connection_id))

    assert [(r.connection_id, r.status, r.trigger.value) for r in results] == [
        (ids["bob"], RunStatus.SUCCEEDED, "scheduled")
    ]
    assert results[0].imported == 10  # ACC-2's trades, which the failed run could not fetch
    assert await monitored.count_trades(connection_id=ids["bob"]) == 35
    assert set(progress) == {ids["bob"]}
    assert await monitored.failed_connections() == []
    assert await monitored.retry_failed_syncs() == []
    carol = await monitored.get_connection(ids["carol"], "carol")
    assert carol.status is ConnectionStatus.NEEDS_REAUTH  # needs `reconnect`, not a retry
