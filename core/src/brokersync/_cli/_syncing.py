"""``sync``, ``trades``, ``runs`` and ``status``."""

from __future__ import annotations

import csv
import datetime as dt
import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click

from brokersync._cli._engine import (
    base_url_option,
    engine_options,
    json_option,
    make_engine,
    parse_time,
    resolve_connection,
    run,
    short_id,
    to_jsonable,
    wide_option,
)
from brokersync._cli._import import source_fields, source_text
from brokersync._cli._output import echo_json, print_table
from brokersync._cli._signals import lease_ttl_option, run_stoppable
from brokersync._cli._sync_output import summary
from brokersync._generic_csv import EXPORT_COLUMNS, export_rows

if TYPE_CHECKING:
    from brokersync._engine import BrokerSync
    from brokersync.results import SyncProgress, SyncResult


@click.command()
@click.argument("connection_id", required=False)
@click.option("--all", "sync_all", is_flag=True, help="Sync every active connection (scheduled mode: incremental).")
@click.option(
    "--failed",
    "sync_failed",
    is_flag=True,
    help="Sync again every active connection whose last sync failed (incremental; needs_reauth ones need reconnect).",
)
@click.option("--since", help="Manual sync of one connection from this date/time (ISO 8601).")
@click.option("--incremental", is_flag=True, help="Sync CONNECTION_ID incrementally from its watermarks.")
@lease_ttl_option
@base_url_option
@engine_options
@json_option
@wide_option
def sync(
    connection_id: str | None,
    sync_all: bool,
    sync_failed: bool,
    since: str | None,
    incremental: bool,
    lease_ttl: dt.timedelta | None,
    base_url_specs: dict[str, str],
    database_url: str | None,
    user_id: str,
    as_json: bool,
) -> None:
    """Sync one connection's trades (all history, or --since), --all connections incrementally, or
    the --failed ones again. CONNECTION_ID may be any unique prefix of the id.

    SIGINT (Ctrl-C), SIGTERM and SIGHUP stop it cleanly: stored trades are kept, the run is recorded
    as interrupted, the connection is free again; exit status 130, 143 and 129. Exit status 1 when
    a sync failed, 2 for usage and configuration errors.

    Data-quality warnings a broker plugin reported (e.g. IB's own P&L disagreeing with brokersync's)
    are counted in the table and the first ten of each run listed on stderr; they do not change the
    exit status. `brokersync runs --json` keeps them.
    """
    if [bool(connection_id), sync_all, sync_failed].count(True) != 1:
        raise click.UsageError("give one of a CONNECTION_ID, --all or --failed")
    if since is not None and not connection_id:
        raise click.UsageError(
            "--since applies to one connection's manual sync: --all and --failed sync each account from its "
            "watermark (use `brokersync sync CONNECTION --since ...`, or `connections state --reset` for a full sync)"
        )
    if since is not None and incremental:
        raise click.UsageError("--since and --incremental exclude each other: incremental syncs start at the watermark")
    since_at = parse_time(since, "--since")
    show_progress = not as_json and sys.stderr.isatty()

    async def go(engine: BrokerSync) -> list[SyncResult]:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TextColumn("[bold]{task.completed}[/] trades"),
            TimeElapsedColumn(),
            disable=not show_progress,
            transient=False,
        ) as progress:
            tasks: dict[str, Any] = {}

            def on_progress(p: SyncProgress) -> None:
                if p.connection_id not in tasks:
                    tasks[p.connection_id] = progress.add_task(f"{p.connection_id[:8]}", total=None)
                progress.update(
                    tasks[p.connection_id],
                    completed=p.imported + p.skipped + p.updated,
                    description=f"{p.connection_id[:8]} account {p.account_id}",
                )

            await _check_keys(engine, None if sync_all or sync_failed else connection_id, user_id)
            if sync_all:
                return await engine.run_scheduled_sync()
            if sync_failed:
                retried = await engine.retry_failed_syncs(on_progress=on_progress)
                if not retried and not as_json:
                    click.echo("No active connection's last sync failed: nothing to retry.", err=True)
                return retried
            assert connection_id is not None
            trigger = "scheduled" if incremental else "manual"
            result = await engine.sync_broker_trades(
                await resolve_connection(engine, connection_id, user_id),
                user_id,
                trigger=trigger,
                since=since_at,
                on_progress=on_progress,
            )
            return [result]

    def make() -> BrokerSync:
        return make_engine(database_url, base_urls=base_url_specs, lease_ttl=lease_ttl)

    results = run_stoppable(go, make)
    if as_json:
        echo_json(to_jsonable(results))
    else:
        summary(results)
    if not all(r.ok for r in results):
        raise SystemExit(1)


async def _check_keys(engine: BrokerSync, connection_id: str | None, user_id: str) -> None:
    """Refuse (exit 2, no run recorded) when the configured keys open none of the secrets to be used."""
    from brokersync.errors import VaultError
    from brokersync.results import ConnectionStatus

    if connection_id is not None:
        ids = [await resolve_connection(engine, connection_id, user_id)]
    else:
        ids = [c.id for c in await engine.list_connections(status=ConnectionStatus.ACTIVE)]
    problems = await engine.verify_secrets(ids)
    if problems and all(problems.values()):
        first = next(iter(problems.values()))
        raise VaultError(
            f"{first} None of the {len(problems)} connection(s) to sync can be decrypted with the configured keys "
            "(BROKERSYNC_ENCRYPTION_KEYS or the key file): nothing was synced"
        )


TRADE_COLUMNS = [
    "connection_id",
    "account_id",
    "broker_trade_id",
    "symbol",
    "direction",
    "opened_at",
    "closed_at",
    "entry_price",
    "exit_price",
    "quantity",
    "realized_pnl",
    "fees",
    "currency",
]
#: Added to the export by ``--include-cancelled``: ``ok`` or ``cancelled``, and the tombstone's when and why.
CANCELLATION_COLUMNS = ["status", "cancelled_at", "cancel_reason"]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(getattr(value, "value", value))


@click.command()
@click.option("--connection", "connection_id", help="Only this connection.")
@click.option("--account", "account_id", help="Only this broker account.")
@click.option("--symbol", help="Only this symbol.")
@click.option("--since", help="Opened at or after (ISO 8601).")
@click.option("--until", help="Opened before (ISO 8601).")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many trades.")
@click.option(
    "--include-cancelled",
    is_flag=True,
    help="Also show trades the broker cancelled (busted), with a status column and when/why.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json", "generic-csv"]),
    default="table",
    show_default=True,
    help="generic-csv writes fills in brokersync's generic CSV layout, to import elsewhere (--timezone UTC).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the same as --format json).")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True, path_type=Path), help="Write to a file.")
@engine_options
@wide_option
def trades(
    connection_id: str | None,
    account_id: str | None,
    symbol: str | None,
    since: str | None,
    until: str | None,
    limit: int | None,
    include_cancelled: bool,
    fmt: str,
    as_json: bool,
    output: Path | None,
    database_url: str | None,
    user_id: str,
) -> None:
    """Show or export the user's stored trades (CSV and JSON stream: any history size).

    Trades the broker cancelled (busted) are left out unless --include-cancelled. --connection
    takes any unique prefix of a connection id.
    """
    if as_json:
        if fmt not in ("table", "json"):
            raise click.UsageError("--json and --format csv exclude each other")
        fmt = "json"
    since_at, until_at = parse_time(since, "--since"), parse_time(until, "--until")
    if since_at is not None and until_at is not None and since_at >= until_at:
        raise click.BadParameter(
            f"--since {since_at.isoformat()} is not before --until {until_at.isoformat()}: no trade can match",
            param_hint="--since/--until",
        )
    if output is not None and not output.parent.is_dir():
        raise click.BadParameter(f"{output.parent} is not an existing directory", param_hint="--output")
    if fmt == "table" and limit is None:
        limit = 50
    columns = TRADE_COLUMNS + CANCELLATION_COLUMNS if include_cancelled else TRADE_COLUMNS

    async def go(engine: BrokerSync) -> int:
        only = await resolve_connection(engine, connection_id, user_id) if connection_id else None
        try:
            stream: TextIO = output.open("w", newline="", encoding="utf-8") if output else sys.stdout
        except OSError as exc:
            raise click.BadParameter(f"cannot write {output}: {exc.strerror}", param_hint="--output") from None
        count = 0
        rows: list[list[str]] = []
        writer = csv.writer(stream) if fmt in ("csv", "generic-csv") else None
        try:
            if writer is not None:
                writer.writerow(EXPORT_COLUMNS if fmt == "generic-csv" else columns)
            if fmt == "json":
                stream.write("[")
            async for trade in engine.iter_trades(
                user_id=user_id,
                connection_id=only,
                account_id=account_id,
                symbol=symbol,
                since=since_at,
                until=until_at,
                limit=limit,
                include_cancelled=include_cancelled,
            ):
                values = [_cell(getattr(trade, c)) for c in TRADE_COLUMNS]
                if include_cancelled:
                    status = "cancelled" if trade.is_cancelled else "ok"
                    values += [status, _cell(trade.cancelled_at), _cell(trade.cancel_reason)]
                if fmt == "generic-csv":
                    assert writer is not None
                    writer.writerows(export_rows(trade))
                elif writer is not None:
                    writer.writerow(values)
                elif fmt == "json":
                    record = {c: (v or None) for c, v in zip(columns, values, strict=True)}
                    stream.write(("," if count else "") + "\n  " + json.dumps({**record, **source_fields(trade)}))
                else:
                    rows.append([*values, source_text(trade)])
                count += 1
            if fmt == "json":
                stream.write("\n]\n" if count else "]\n")
        finally:
            if output:
                stream.close()
        if fmt == "table" and count:
            shown = ["account_id", "broker_trade_id", "symbol", "direction", "opened_at", "closed_at", "quantity"]
            shown += ["entry_price", "exit_price", "realized_pnl", "fees", "currency"]
            if include_cancelled:
                shown += CANCELLATION_COLUMNS
            index = [*(columns.index(c) for c in shown), -1]  # and the source
            print_table(f"Trades (first {limit})", [*shown, "source"], ([r[i] for i in index] for r in rows))
        return count

    count = run(go, database_url, read_only=True)
    if not count:
        click.echo("No trades match.", err=True)
    elif output:
        click.echo(f"Wrote {count} trades to {output}.", err=True)


@click.command()
@click.option("--connection", "connection_id", help="Only this connection.")
@click.option("--account", "account_id", help="Only this broker account.")
@click.option(
    "--without-trade", is_flag=True, help="Only cancellations of trades that are not stored (never received)."
)
@click.option("--limit", type=click.IntRange(min=1), help="At most this many.")
@engine_options
@json_option
@wide_option
def cancellations(
    connection_id: str | None,
    account_id: str | None,
    without_trade: bool,
    limit: int | None,
    database_url: str | None,
    user_id: str,
    as_json: bool,
) -> None:
    """Show the trades brokers cancelled (busted), newest first, and whether each trade is stored."""

    async def go(engine: BrokerSync) -> Any:
        return await engine.list_cancellations(
            user_id=user_id,
            connection_id=await resolve_connection(engine, connection_id, user_id) if connection_id else None,
            account_id=account_id,
            without_trade=without_trade,
            limit=limit,
        )

    found = run(go, database_url, read_only=True)
    if as_json:
        echo_json(to_jsonable(found))
        return
    print_table(
        "Cancelled trades",
        ["connection", "account", "trade id", "cancelled (UTC)", "reason", "trade stored"],
        (
            (
                short_id(c.connection_id),
                c.account_id,
                c.broker_trade_id,
                c.cancelled_at.strftime("%Y-%m-%d %H:%M:%S"),
                c.reason or "",
                "yes" if c.trade_stored else "no",
            )
            for c in found
        ),
    )


@click.command()
@click.option("--connection", "connection_id", help="Only this connection.")
@click.option(
    "--status",
    type=click.Choice(["running", "succeeded", "partial", "failed", "interrupted"]),
    help="Only this status.",
)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@engine_options
@json_option
@wide_option
def runs(
    connection_id: str | None, status: str | None, limit: int, database_url: str | None, user_id: str, as_json: bool
) -> None:
    """Show the sync audit trail (newest first)."""

    async def go(engine: BrokerSync) -> Any:
        only = await resolve_connection(engine, connection_id, user_id) if connection_id else None
        return await engine.list_runs(user_id=user_id, connection_id=only, status=status, limit=limit)

    infos = run(go, database_url, read_only=True)
    if as_json:
        echo_json(to_jsonable(infos))
        return
    print_table(
        "Sync runs",
        [
            "run",
            "connection",
            "trigger",
            "status",
            "started",
            "imported",
            "skipped",
            "updated",
            "cancelled",
            "invalid",
            "warnings",
            "retries",
            "error",
        ],
        (
            (
                short_id(r.id),
                short_id(r.connection_id),
                r.trigger.value,
                r.status.value,
                r.started_at.strftime("%Y-%m-%d %H:%M:%S"),
                r.imported,
                r.skipped,
                r.updated,
                r.cancelled,
                r.error_count,
                r.warning_count,
                r.retries,
                r.error_message or "",
            )
            for r in infos
        ),
    )


@click.command()
@click.option("--database-url", envvar="BROKERSYNC_DATABASE_URL", help="Database URL. Env: BROKERSYNC_DATABASE_URL.")
@json_option
def status(database_url: str | None, as_json: bool) -> None:
    """Show database, schema, connections, trades and key health (exit 1 when no key is available)."""

    async def go(engine: BrokerSync) -> tuple[Any, str | None]:
        from brokersync.errors import BrokerSyncError

        info = await engine.status()
        reason = None
        if info.active_key_id is None:
            try:
                engine.vault.active_key_id  # noqa: B018 - loading the keys says why they are unavailable
            except BrokerSyncError as exc:
                reason = str(exc)
        return info, reason

    info, key_problem = run(go, database_url, read_only=True)
    if as_json:
        echo_json({**to_jsonable(info), "schema_current": info.schema_current, "key_problem": key_problem})
    else:
        rows = [
            ("database", f"{info.database} ({info.dialect})"),
            (
                "schema",
                f"{info.schema_revision or 'none'} (needs {info.head_revision})"
                if not info.schema_current
                else info.head_revision,
            ),
            ("connections", ", ".join(f"{k}: {v}" for k, v in sorted(info.connections.items())) or "none"),
            ("trades", info.trades),
            ("last runs", ", ".join(f"{k}: {v}" for k, v in sorted(info.last_runs.items())) or "none"),
            ("active key", info.active_key_id or f"unavailable: {key_problem or 'no key configured'}"),
        ]
        print_table("brokersync status", ["", ""], rows)
    if info.active_key_id is None:
        if not as_json:
            click.echo(f"Error: no encryption key is available: {key_problem or 'no key configured'}", err=True)
        raise SystemExit(1)
