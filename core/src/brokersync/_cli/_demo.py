"""``brokersync demo``: the whole job on the embedded defaults, offline, against the simulated broker.

Connects the ``sim`` broker (brokersync-sim's in-process fake API, faults switched on), syncs tens of
thousands of trades into a SQLite file with a live progress bar, shows what happened, syncs again to
show that nothing is imported twice (the broker's corrections arrive as updates), and lists a few
trades. Everything lives in one directory (a fresh temporary one unless ``--data-dir`` is given):
the database and the generated encryption key file.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console

    from brokersync._engine import BrokerSync
    from brokersync.results import SyncResult

INSTALL_HINT = "the demo needs the simulated broker: pip install brokersync-sim"
DEMO_USER = "demo-user"
DEMO_CREDENTIALS = {"username": "demo", "password": "sim-password"}
FAULT_NAMES = {
    "rate_limit": "429 rate limit",
    "server_error": "503 server error",
    "timeout": "timeout",
    "token_expiry": "session ended mid-sync",
}


def _result_dict(result: SyncResult) -> dict[str, Any]:
    return {
        "status": result.status.value,
        "imported": result.imported,
        "skipped": result.skipped,
        "updated": result.updated,
        "cancelled": result.cancelled,
        "invalid_records": result.error_count,
        "requests": result.requests,
        "retries": result.retries,
        "rate_limit_waits": result.rate_limit_waits,
        "rate_limit_wait_seconds": round(result.rate_limit_wait_seconds, 3),
        "duration_ms": result.duration_ms,
        "error": result.error.user_message if result.error else None,
    }


async def _sync(engine: BrokerSync, connection_id: str, total: int, label: str, console: Console | None) -> SyncResult:
    if console is None:
        return await engine.sync_broker_trades(connection_id, DEMO_USER)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("[dim]{task.fields[detail]}"),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(label, total=total, detail="")

        def on_progress(p: Any) -> None:
            done = p.imported + p.skipped + p.updated + p.errors
            detail = f"{p.imported} new {p.skipped} same {p.updated} upd {p.cancelled} cxl {p.errors} bad"
            progress.update(task, completed=done, detail=detail)

        result = await engine.sync_broker_trades(connection_id, DEMO_USER, on_progress=on_progress)
        progress.update(task, completed=total)
    return result


def _summary_table(first: SyncResult, second: SyncResult) -> Any:
    from rich.table import Table

    table = Table(title="Sync summary", title_justify="left", header_style="bold")
    table.add_column("")
    table.add_column("first sync", justify="right")
    table.add_column("second sync", justify="right")
    rows = [
        ("imported (new trades)", "imported"),
        ("skipped (unchanged duplicates)", "skipped"),
        ("updated (broker corrections)", "updated"),
        ("cancelled (busted by the broker)", "cancelled"),
        ("invalid records (reported, not stored)", "error_count"),
        ("requests", "requests"),
        ("retries", "retries"),
        ("rate-limit waits", "rate_limit_waits"),
    ]
    for label, field in rows:
        table.add_row(label, str(getattr(first, field)), str(getattr(second, field)))
    table.add_row("duration", f"{first.duration_ms / 1000:.2f} s", f"{second.duration_ms / 1000:.2f} s")
    table.add_row("status", first.status.value, second.status.value)
    return table


async def _trades_table(engine: BrokerSync, connection_id: str, count: int) -> Any:
    from rich.table import Table

    stored = await engine.count_trades(connection_id=connection_id)
    table = Table(title=f"A few stored trades (of {stored}, cancelled ones left out)", title_justify="left")
    for column in ("trade id", "symbol", "side", "qty", "opened (UTC)", "entry", "exit", "P&L", "fees"):
        table.add_column(column, justify="right" if column in ("qty", "entry", "exit", "P&L", "fees") else "left")
    async for t in engine.iter_trades(connection_id=connection_id, limit=count):
        table.add_row(
            t.broker_trade_id,
            t.symbol,
            t.direction.value,
            str(t.quantity),
            t.opened_at.strftime("%Y-%m-%d %H:%M"),
            str(t.entry_price),
            "" if t.exit_price is None else str(t.exit_price),
            "" if t.realized_pnl is None else f"{t.realized_pnl} {t.currency}",
            str(t.fees),
        )
    return table


async def _round_trips(engine: BrokerSync, connection_id: str, account_id: str) -> dict[str, dict[str, Any]]:
    """The account's round trips the core paired, by id (tombstoned ones too)."""
    return {
        t.broker_trade_id: {
            "symbol": t.symbol,
            "side": t.direction.value,
            "quantity": str(t.quantity),
            "entry": str(t.entry_price),
            "exit": "" if t.exit_price is None else str(t.exit_price),
            "pnl": "" if t.realized_pnl is None else str(t.realized_pnl),
        }
        async for t in engine.iter_trades(connection_id=connection_id, account_id=account_id, include_cancelled=True)
    }


async def _fills_report(
    engine: BrokerSync, connection_id: str, account_id: str, first: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """What pairing the fills account's executions gave: after the first sync and what the second changed."""
    now = await _round_trips(engine, connection_id, account_id)
    tombstones = await engine.list_cancellations(connection_id=connection_id, account_id=account_id)
    positions = await engine.positions(connection_id=connection_id, account=account_id)
    return {
        "account": account_id,
        "round_trips_first_sync": first,
        "new_in_second_sync": sorted(set(now) - set(first)),
        "re_paired_in_second_sync": {
            k: {"quantity_before": first[k]["quantity"], "quantity_after": now[k]["quantity"]}
            for k in sorted(set(now) & set(first))
            if now[k] != first[k]
        },
        "tombstones": {c.broker_trade_id: c.reason for c in tombstones},
        "open_positions": [
            {"symbol": p.instrument.symbol, "quantity": str(p.quantity), "average_price": str(p.average_price)}
            for p in positions
        ],
    }


def _print_fills(console: Console, fills: dict[str, Any]) -> None:
    from rich.table import Table

    first = fills["round_trips_first_sync"]
    table = Table(title=f"Executions paired into round trips (FIFO) in {fills['account']}", title_justify="left")
    for column in ("round trip", "symbol", "side", "qty", "entry", "exit", "P&L"):
        table.add_column(column)
    for key, t in first.items():
        table.add_row(key, t["symbol"], t["side"], t["quantity"], t["entry"], t["exit"], t["pnl"])
    console.print(table)
    opened = ", ".join(f"{p['symbol']} {p['quantity']} @ {p['average_price']}" for p in fills["open_positions"])
    console.print(f"Second sync - open positions: {opened or 'none'}")
    for key, change in fills["re_paired_in_second_sync"].items():
        console.print(
            f"Late fill re-paired: {key} updated, qty {change['quantity_before']} -> {change['quantity_after']}"
        )
    for key in fills["new_in_second_sync"]:
        console.print(f"Late fill paired: new round trip {key}")
    for key, reason in fills["tombstones"].items():
        console.print(f"Tombstone: {key} ({reason})")


@click.command()
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Keep the demo's database here.")
@click.option("--trades", type=click.IntRange(min=1), default=30_000, show_default=True, help="Trades at the broker.")
@click.option("--accounts", type=click.IntRange(1, 20), default=3, show_default=True, help="Broker accounts.")
@click.option(
    "--fault-rate",
    type=click.FloatRange(0, 0.5),
    default=0.05,
    show_default=True,
    help="Share of requests the broker fails (429, 503, timeouts, ended sessions).",
)
@click.option("--seed", type=int, default=7, show_default=True, help="The simulated broker's seed.")
@click.option("--latency", type=click.FloatRange(min=0), default=0.0, help="Seconds per broker request.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON instead of tables.")
def demo(
    data_dir: Path | None, trades: int, accounts: int, fault_rate: float, seed: int, latency: float, as_json: bool
) -> None:
    """Run the whole job offline against a simulated broker: connect, sync, re-sync, show trades."""
    try:
        from brokersync_sim import SimAPI
    except ImportError:
        click.echo(f"Error: {INSTALL_HINT}", err=True)
        raise SystemExit(2) from None
    from brokersync import is_broker_supported

    if not is_broker_supported("sim"):
        click.echo(f"Error: the 'sim' broker is not available (check BROKERSYNC_PLUGINS); {INSTALL_HINT}", err=True)
        raise SystemExit(2)

    directory = data_dir or Path(tempfile.mkdtemp(prefix="brokersync-demo-"))
    directory.mkdir(parents=True, exist_ok=True)
    per_account = -(-trades // accounts)
    api = SimAPI(
        seed=seed,
        accounts=accounts,
        trades_per_account=per_account,
        fault_rate=fault_rate,
        malformed_rate=0.0005 if fault_rate else 0.0,
        cancel_rate=0.001,
        latency=latency,
        fills=True,
    )
    console = None
    if not as_json:
        from rich.console import Console

        console = Console()
        if not console.is_terminal:  # a log file or a CI page: wide enough for the tables
            console = Console(width=120)

    async def main() -> dict[str, Any]:
        from brokersync._engine import BrokerSync
        from brokersync._vault import Vault

        database_url = f"sqlite+aiosqlite:///{directory / 'brokersync.db'}"
        vault = Vault.from_data_dir(directory)
        async with BrokerSync(database_url, vault=vault, transports={"sim": api.transport()}) as engine:
            # Run again in the same directory: start over. The simulated login is the same one, and a
            # user cannot connect a broker account twice (its trades would be stored twice).
            for earlier in await engine.list_connections(user_id=DEMO_USER, broker="sim"):
                await engine.disconnect_broker(earlier.id, DEMO_USER, delete_trades=True)
            connected = await engine.connect_broker(DEMO_USER, "sim", DEMO_CREDENTIALS)
            total = per_account * accounts
            if console is not None:
                console.print(f"[bold]brokersync demo[/] - data in {directory}")
                console.print(
                    f"Connected the simulated broker: {len(connected.accounts)} accounts "
                    f"({', '.join(a.id for a in connected.accounts)}), {total} trades, "
                    f"faults on {fault_rate:.0%} of requests.\n"
                )
            fills_account = next(a.id for a in connected.accounts if a.type == "fills")
            first = await _sync(engine, connected.connection_id, total, "first sync ", console)
            paired_first = await _round_trips(engine, connected.connection_id, fills_account)
            second = await _sync(engine, connected.connection_id, total, "second sync", console)
            stored = await engine.count_trades(connection_id=connected.connection_id, include_cancelled=True)
            cancelled = stored - await engine.count_trades(connection_id=connected.connection_id)
            fills = await _fills_report(engine, connected.connection_id, fills_account, paired_first)
            if console is not None:
                console.print()
                console.print(_summary_table(first, second))
                faults = ", ".join(f"{n} x {FAULT_NAMES.get(k, k)}" for k, n in sorted(api.stats.faults.items()))
                console.print(
                    f"Faults the broker injected: {faults or 'none'}; all absorbed by retries, rate-limit waits "
                    f"and {api.stats.renewals} token renewal(s).\nThe second sync imported {second.imported} trades "
                    f"(dedupe), applied {second.updated} corrections the broker made in between and recorded "
                    f"{second.cancelled} trades it cancelled (kept for audit, left out of listings).\n"
                )
                console.print(await _trades_table(engine, connected.connection_id, 5))
                _print_fills(console, fills)
            return {
                "data_dir": str(directory),
                "connection_id": connected.connection_id,
                "accounts": [a.id for a in connected.accounts],
                "broker_trades": total,
                "stored_trades": stored,
                "cancelled_trades": cancelled,
                "first_sync": _result_dict(first),
                "second_sync": _result_dict(second),
                "faults_injected": dict(api.stats.faults),
                "token_renewals": api.stats.renewals,
                "broker_requests": api.stats.requests,
                "fills": fills,
            }

    from brokersync.errors import BrokerSyncError

    try:
        report = asyncio.run(main())
    except BrokerSyncError as exc:
        click.echo(f"Error: the demo failed: {exc}", err=True)
        raise SystemExit(1) from None
    if as_json:
        click.echo(json.dumps(report, indent=2))
    ok = report["first_sync"]["status"] != "failed" and report["second_sync"]["status"] != "failed"
    if not ok:
        raise SystemExit(1)
