"""``stats``: sync health from the audit trail, and alert checks for cron and monitoring."""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

import click

from brokersync._cli._engine import json_option, parse_time, run, to_jsonable
from brokersync._cli._output import echo_json, print_table

if TYPE_CHECKING:
    from brokersync._engine import BrokerSync
    from brokersync._stats import Alert, BrokerStats, SyncStats

_RELATIVE = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(value: str, now: dt.datetime) -> dt.datetime | None:
    """``30m``, ``24h``, ``7d``, ``2w`` before ``now``; ``all``; or an ISO date/time (naive = UTC)."""
    if value.strip().lower() == "all":
        return None
    match = _RELATIVE.match(value)
    if match:
        return now - dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        return parse_time(value, "--since")
    except click.BadParameter:
        raise click.BadParameter(
            f"{value!r} is neither a duration (30m, 24h, 7d, 2w), 'all', nor an ISO date or time "
            "(e.g. 2024-01-31 or 2024-01-31T12:00Z)",
            param_hint="--since",
        ) from None


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _secs(ms: float | None) -> str:
    return "-" if ms is None else f"{ms / 1000:.2f} s"


def _row(s: BrokerStats) -> tuple[Any, ...]:
    return (
        s.broker or "[bold]all[/]",
        s.runs,
        s.succeeded,
        s.partial,
        s.failed,
        s.interrupted,
        _pct(s.success_rate),
        _secs(s.avg_duration_ms),
        _secs(s.p95_duration_ms),
        _secs(s.max_duration_ms),
        s.requests,
        _pct(s.retry_rate),
        _pct(s.rate_limit_hit_rate),
        s.auth_failures,
        s.needs_reauth,
        s.imported,
    )


def _print(stats: SyncStats, alerts: list[Alert]) -> None:
    window = f"since {stats.since.isoformat()}" if stats.since else "all runs"
    rows = [_row(s) for s in stats.brokers.values()]
    if len(stats.brokers) != 1:
        rows.append(_row(stats.total))
    print_table(
        f"Sync health ({window})",
        [
            "broker",
            "runs",
            "ok",
            "partial",
            "failed",
            "interrupted",
            "success",
            "avg",
            "p95",
            "max",
            "requests",
            "retry rate",
            "rate-limit rate",
            "auth failures",
            "needs reauth",
            "imported",
        ],
        rows,
    )
    if stats.total.runs_without_requests:
        click.echo(
            f"{stats.total.runs_without_requests} runs recorded before brokersync counted requests "
            "are left out of the retry and rate-limit rates."
        )
    for alert in alerts:
        click.echo(f"ALERT {alert.kind.value}: {alert.message}")
    if not alerts:
        click.echo("No alerts.")


@click.command()
@click.option(
    "--since",
    default="24h",
    show_default=True,
    help="Runs started in the last 30m / 24h / 7d / 2w, since an ISO date or time, or 'all'.",
)
@click.option("--broker", help="Only this broker key.")
@click.option("--user", "user_id", help="Only this user's runs and connections (default: every user).")
@click.option("--database-url", envvar="BROKERSYNC_DATABASE_URL", help="Database URL. Env: BROKERSYNC_DATABASE_URL.")
@click.option("--check", is_flag=True, help="Exit with status 1 if an alert fires (for cron and monitoring).")
@click.option(
    "--max-failure-rate",
    type=click.FloatRange(0, 100),
    default=10.0,
    show_default=True,
    help="Alert when more than this percentage of completed syncs failed (interrupted ones do not count).",
)
@click.option(
    "--max-rate-limit-rate",
    type=click.FloatRange(0, 100),
    default=20.0,
    show_default=True,
    help="Alert when more than this percentage of broker requests waited for a rate limit.",
)
@click.option(
    "--slow-after",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Alert when a sync took longer than this many seconds.",
)
@click.option(
    "--max-needs-reauth",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Alert when more connections than this need new credentials.",
)
@click.option(
    "--min-runs",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Finished syncs a broker needs before its failure rate can alert.",
)
@json_option
def stats(
    since: str,
    broker: str | None,
    user_id: str | None,
    database_url: str | None,
    check: bool,
    max_failure_rate: float,
    max_rate_limit_rate: float,
    slow_after: float,
    max_needs_reauth: int,
    min_runs: int,
    as_json: bool,
) -> None:
    """Show sync health per broker (success rate, durations, retry and rate-limit rates, re-auth needed)
    and the alerts it raises; with --check, exit 1 when one fires.
    """
    from brokersync._stats import AlertThresholds

    since_at = parse_since(since, dt.datetime.now(dt.UTC))
    thresholds = AlertThresholds(
        failure_rate=max_failure_rate / 100,
        rate_limit_hit_rate=max_rate_limit_rate / 100,
        slow_sync=dt.timedelta(seconds=slow_after),
        needs_reauth=max_needs_reauth,
        min_runs=min_runs,
    )

    async def go(engine: BrokerSync) -> SyncStats:
        return await engine.sync_stats(since=since_at, user_id=user_id, broker=broker)

    result = run(go, database_url)
    alerts = result.alerts(thresholds)
    if as_json:
        echo_json(
            {
                **to_jsonable(result),
                "thresholds": {
                    "failure_rate": thresholds.failure_rate,
                    "rate_limit_hit_rate": thresholds.rate_limit_hit_rate,
                    "slow_sync_seconds": thresholds.slow_sync.total_seconds(),
                    "needs_reauth": thresholds.needs_reauth,
                    "min_runs": thresholds.min_runs,
                },
                "alerts": to_jsonable(alerts),
            }
        )
    else:
        _print(result, alerts)
    if check and alerts:
        raise SystemExit(1)
