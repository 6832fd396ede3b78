"""What ``brokersync sync`` prints after its runs: the results table, then failures, invalid
records and data-quality warnings, each on its own line on stderr."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from brokersync._cli._output import print_table

if TYPE_CHECKING:
    from brokersync.results import SyncResult

__all__ = ["SHOWN_WARNINGS", "summary"]

#: Warnings listed per run; ``brokersync runs --json`` has every kept one.
SHOWN_WARNINGS = 10


def summary(results: list[SyncResult]) -> None:
    """Print the results table, then each run's error, first invalid records and warnings."""
    print_table(
        "Sync results",
        [
            "connection",
            "broker",
            "status",
            "imported",
            "skipped",
            "updated",
            "cancelled",
            "invalid",
            "warnings",
            "retries",
            "rate-limit waits",
            "duration",
        ],
        (
            (
                r.connection_id,
                r.broker,
                r.status.value,
                r.imported,
                r.skipped,
                r.updated,
                r.cancelled,
                r.error_count,
                r.warning_count,
                r.retries,
                f"{r.rate_limit_waits} ({r.rate_limit_wait_seconds:.1f} s)",
                f"{r.duration_ms / 1000:.2f} s",
            )
            for r in results
        ),
    )
    for r in results:
        if r.error is not None:
            hint = f" (`brokersync reconnect {r.connection_id[:8]}`)" if r.error.type.value == "auth" else ""
            click.echo(f"{r.connection_id}: {r.error.user_message}{hint}", err=True)
        for e in r.errors[:5]:
            click.echo(f"{r.connection_id}: invalid record {e.broker_trade_id} ({e.account_id}): {e.reason}", err=True)
        _warnings(r)


def _warnings(result: SyncResult) -> None:
    if not result.warning_count:
        return
    count = result.warning_count
    click.echo(f"{result.connection_id}: {count} warning{'s' if count != 1 else ''}:", err=True)
    for warning in result.warnings[:SHOWN_WARNINGS]:
        click.echo(f"  warning: {warning}", err=True)
    more = count - min(len(result.warnings), SHOWN_WARNINGS)
    if more:
        run = f" {result.run_id}" if result.run_id else ""
        click.echo(f"  and {more} more (`brokersync runs --json` lists those the run{run} kept)", err=True)
