"""Sync health: statistics over the ``sync_runs`` audit trail, and alert checks on them.

:meth:`BrokerSync.sync_stats <brokersync.BrokerSync.sync_stats>` aggregates the audit rows in the
database (one grouped query, whatever the number of rows) into a :class:`SyncStats`: per broker and
in total, the seed's metrics (success rate, average duration, rate-limit hit rate, retry rate) and
the counts behind them. :meth:`SyncStats.alerts` compares them with :class:`AlertThresholds` (the
seed's alerts: failures above 10 %, frequent rate limiting, syncs slower than 60 s, credentials
expired) and returns one :class:`Alert` per problem, with a message an operator can act on.

A rate is ``None`` when its denominator is 0 or unknown: no finished run, or no run that recorded
its request count (audit rows written before schema revision 0004 did not).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

__all__ = ["Alert", "AlertKind", "AlertThresholds", "BrokerStats", "SyncStats", "build_stats"]


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole > 0 else None


@attrs.frozen(kw_only=True)
class BrokerStats:
    """Sync health of one broker (or of all, ``broker is None``) over the chosen window.

    Attributes:
        broker: The broker key; ``None`` for the total over every broker.
        runs: Audit rows in the window (started at or after ``since``), running ones included.
        succeeded: Runs that finished with every record stored.
        partial: Runs that finished but reported invalid records.
        failed: Runs that failed (the error is in their audit row).
        interrupted: Runs stopped before they finished (a stop signal, Ctrl-C, a crash): not a
            broker failure, so in neither rate; what they stored is in the counts below.
        running: Runs not finished yet.
        success_rate: ``(succeeded + partial) / completed runs`` (finished, not interrupted);
            ``None`` without a completed run.
        failure_rate: ``failed / completed runs``; ``None`` without a completed run.
        avg_duration_ms: Mean wall time of the runs that recorded one (finished, not interrupted).
        max_duration_ms: The slowest of those runs.
        p95_duration_ms: The 95th percentile (nearest rank) of those durations.
        requests: HTTP requests sent to the broker, over the runs that recorded the count.
        runs_without_requests: Finished runs that did not record their request count (older rows);
            they are left out of both rates below.
        retries: Requests repeated after a transient failure (all runs).
        retry_rate: ``retries / requests`` over the runs that recorded their requests.
        rate_limit_waits: Times a request waited for the rate limiter or a ``Retry-After`` (all runs).
        rate_limit_wait_ms: Time spent in those waits.
        rate_limit_hit_rate: ``rate_limit_waits / requests`` over the runs that recorded their requests.
        rate_limit_failures: Runs that failed on a rate limit (retries exhausted).
        auth_failures: Runs that failed because the broker rejected the credentials.
        imported: New trades stored.
        updated: Stored trades the broker changed.
        skipped: Trades sent again unchanged.
        cancelled: Trades newly marked cancelled (busted).
        invalid_records: Records refused as invalid.
        needs_reauth: Connections that need new credentials now (not limited to the window).
    """

    broker: str | None
    runs: int = 0
    succeeded: int = 0
    partial: int = 0
    failed: int = 0
    interrupted: int = 0
    running: int = 0
    success_rate: float | None = None
    failure_rate: float | None = None
    avg_duration_ms: float | None = None
    max_duration_ms: int | None = None
    p95_duration_ms: int | None = None
    requests: int = 0
    runs_without_requests: int = 0
    retries: int = 0
    retry_rate: float | None = None
    rate_limit_waits: int = 0
    rate_limit_wait_ms: int = 0
    rate_limit_hit_rate: float | None = None
    rate_limit_failures: int = 0
    auth_failures: int = 0
    imported: int = 0
    updated: int = 0
    skipped: int = 0
    cancelled: int = 0
    invalid_records: int = 0
    needs_reauth: int = 0

    @property
    def finished(self) -> int:
        """Runs that ended one way or another (every run but the running ones)."""
        return self.succeeded + self.partial + self.failed + self.interrupted

    @property
    def completed(self) -> int:
        """Finished runs that reached an outcome (every finished run but the interrupted ones)."""
        return self.succeeded + self.partial + self.failed


def _non_negative(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value < (dt.timedelta(0) if isinstance(value, dt.timedelta) else 0):
        raise ValueError(f"AlertThresholds.{attribute.name} must not be negative, got {value!r}")


def _fraction(_instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not 0 <= value <= 1:
        raise ValueError(f"AlertThresholds.{attribute.name} is a fraction between 0 and 1, got {value!r}")


@attrs.frozen(kw_only=True)
class AlertThresholds:
    """When :meth:`SyncStats.alerts` reports a problem. Every alert fires strictly above its threshold.

    Attributes:
        failure_rate: Fraction of completed runs that failed (seed: 10 %); interrupted runs do not count.
        rate_limit_hit_rate: Fraction of broker requests that had to wait for a rate limit. The
            default, 20 %, sits well above what a broker's normal incremental syncs cause (a few
            requests per run, inside the limiter's window) and below what a misfit limit causes
            (most requests queue, or the broker keeps answering 429); a large history backfill can
            reach it legitimately, so raise it (or use ``since``) around those.
        slow_sync: Any run longer than this (seed: 60 s).
        needs_reauth: Connections allowed to need new credentials (default 0: any one alerts).
        min_runs: Completed runs a broker needs before its failure rate counts (default 1), so one
            failed run out of two does not page anyone if you set it higher.
    """

    failure_rate: float = attrs.field(default=0.10, validator=_fraction)
    rate_limit_hit_rate: float = attrs.field(default=0.20, validator=_fraction)
    slow_sync: dt.timedelta = attrs.field(default=dt.timedelta(seconds=60), validator=_non_negative)
    needs_reauth: int = attrs.field(default=0, validator=_non_negative)
    min_runs: int = attrs.field(default=1, validator=_non_negative)


class AlertKind(enum.StrEnum):
    """What an :class:`Alert` is about."""

    FAILURE_RATE = "failure_rate"
    RATE_LIMIT = "rate_limit"
    SLOW_SYNC = "slow_sync"
    NEEDS_REAUTH = "needs_reauth"


@attrs.frozen(kw_only=True)
class Alert:
    """One problem :meth:`SyncStats.alerts` found: what, for which broker, how bad, and what to do.

    Attributes:
        kind: Which check fired.
        broker: The broker it concerns.
        value: The observed value (a fraction, seconds, or a count of connections).
        threshold: The threshold it exceeded, in the same unit.
        message: A sentence for an operator.
    """

    kind: AlertKind
    broker: str | None
    value: float
    threshold: float
    message: str


def _percent(value: float) -> str:
    return f"{value * 100:.1f} %"


def _broker_alerts(stats: BrokerStats, limits: AlertThresholds) -> Iterable[Alert]:
    name = stats.broker or "all brokers"
    if (
        stats.failure_rate is not None
        and stats.completed >= limits.min_runs
        and stats.failure_rate > limits.failure_rate
    ):
        yield Alert(
            kind=AlertKind.FAILURE_RATE,
            broker=stats.broker,
            value=stats.failure_rate,
            threshold=limits.failure_rate,
            message=(
                f"{name}: {stats.failed} of {stats.completed} completed syncs failed "
                f"({_percent(stats.failure_rate)}, alert above {_percent(limits.failure_rate)}); "
                "see `brokersync runs --status failed`, then `brokersync sync --failed`"
            ),
        )
    rate = stats.rate_limit_hit_rate
    if rate is not None and rate > limits.rate_limit_hit_rate:
        yield Alert(
            kind=AlertKind.RATE_LIMIT,
            broker=stats.broker,
            value=rate,
            threshold=limits.rate_limit_hit_rate,
            message=(
                f"{name}: {_percent(rate)} of broker requests waited for a rate limit "
                f"(alert above {_percent(limits.rate_limit_hit_rate)}; {stats.rate_limit_failures} runs failed "
                "on it): sync less often or check the broker's limits"
            ),
        )
    slow = limits.slow_sync.total_seconds()
    if stats.max_duration_ms is not None and stats.max_duration_ms / 1000 > slow:
        yield Alert(
            kind=AlertKind.SLOW_SYNC,
            broker=stats.broker,
            value=stats.max_duration_ms / 1000,
            threshold=slow,
            message=f"{name}: the slowest sync took {stats.max_duration_ms / 1000:.1f} s (alert above {slow:g} s)",
        )
    if stats.needs_reauth > limits.needs_reauth:
        count = "1 connection needs" if stats.needs_reauth == 1 else f"{stats.needs_reauth} connections need"
        yield Alert(
            kind=AlertKind.NEEDS_REAUTH,
            broker=stats.broker,
            value=stats.needs_reauth,
            threshold=limits.needs_reauth,
            message=(
                f"{name}: {count} new credentials "
                "(the broker rejected them); their users must reconnect "
                "(`brokersync connections --all-users --status needs_reauth`)"
            ),
        )


@attrs.frozen(kw_only=True)
class SyncStats:
    """Sync health over a window of the audit trail, per broker and in total.

    Attributes:
        since: Runs started at or after this time are counted (``None``: all of them).
        computed_at: When the statistics were read (tz-aware UTC).
        user_id: Only this user's runs and connections (``None``: every user).
        broker: Only this broker (``None``: every broker).
        total: Every broker together.
        brokers: Per broker key (brokers with runs in the window or connections needing re-auth).
    """

    since: dt.datetime | None
    computed_at: dt.datetime
    user_id: str | None
    broker: str | None
    total: BrokerStats
    brokers: Mapping[str, BrokerStats] = attrs.field(factory=dict)

    def alerts(self, thresholds: AlertThresholds | None = None) -> list[Alert]:
        """The problems these statistics show, checked per broker (default :class:`AlertThresholds`).

        Returns:
            One :class:`Alert` per check and broker that exceeds its threshold; empty when all is well.
        """
        limits = thresholds or AlertThresholds()
        return [alert for stats in self.brokers.values() for alert in _broker_alerts(stats, limits)]


# -- from the store's aggregate rows ----------------------------------------------------------------

_SUMMED = (
    "runs",
    "succeeded",
    "partial",
    "failed",
    "interrupted",
    "running",
    "requests",
    "runs_without_requests",
    "retries",
    "rate_limit_waits",
    "rate_limit_wait_ms",
    "rate_limit_failures",
    "auth_failures",
    "imported",
    "updated",
    "skipped",
    "cancelled",
    "invalid_records",
)
# Sums that only feed a rate or the mean: the retries and waits of runs that recorded their
# requests, and the durations.
_HIDDEN = ("known_retries", "known_waits", "duration_sum", "duration_count")


def _one(broker: str | None, row: Mapping[str, Any], p95: int | None, needs_reauth: int) -> BrokerStats:
    counts = {name: int(row.get(name) or 0) for name in (*_SUMMED, *_HIDDEN)}
    # Interrupted runs (stopped, not failed) are in neither rate.
    completed = counts["succeeded"] + counts["partial"] + counts["failed"]
    max_duration = row.get("max_duration_ms")
    return BrokerStats(
        broker=broker,
        **{name: counts[name] for name in _SUMMED},
        success_rate=_ratio(counts["succeeded"] + counts["partial"], completed),
        failure_rate=_ratio(counts["failed"], completed),
        avg_duration_ms=(counts["duration_sum"] / counts["duration_count"]) if counts["duration_count"] else None,
        max_duration_ms=int(max_duration) if max_duration is not None else None,
        p95_duration_ms=p95,
        retry_rate=_ratio(counts["known_retries"], counts["requests"]),
        rate_limit_hit_rate=_ratio(counts["known_waits"], counts["requests"]),
        needs_reauth=needs_reauth,
    )


def build_stats(
    *,
    rows: Iterable[Mapping[str, Any]],
    p95: Mapping[str | None, int],
    needs_reauth: Mapping[str, int],
    since: dt.datetime | None,
    computed_at: dt.datetime,
    user_id: str | None,
    broker: str | None,
) -> SyncStats:
    """Assemble :class:`SyncStats` from the store's per-broker sums (``rows``, each with ``broker``),
    the p95 durations (per broker key, ``None`` for the total) and the needs-reauth counts."""
    per_broker = {str(row["broker"]): row for row in rows}
    total: dict[str, Any] = {
        name: sum(int(r.get(name) or 0) for r in per_broker.values()) for name in (*_SUMMED, *_HIDDEN)
    }
    maxima = [int(r["max_duration_ms"]) for r in per_broker.values() if r.get("max_duration_ms") is not None]
    total["max_duration_ms"] = max(maxima) if maxima else None
    keys = sorted(set(per_broker) | {k for k, n in needs_reauth.items() if n})
    return SyncStats(
        since=since,
        computed_at=computed_at,
        user_id=user_id,
        broker=broker,
        total=_one(None, total, p95.get(None), sum(needs_reauth.values())),
        brokers={key: _one(key, per_broker.get(key, {}), p95.get(key), needs_reauth.get(key, 0)) for key in keys},
    )
