"""``connections state``: where each account's incremental sync resumes, and ``--reset`` to start over."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from brokersync._cli._engine import engine_options, json_option, resolve_connection, run, wide_option
from brokersync._cli._output import echo_json, print_table

if TYPE_CHECKING:
    from brokersync._engine import BrokerSync


@click.command()
@click.argument("connection_id")
@click.option("--reset", is_flag=True, help="Forget the watermarks and cursors: the next sync reads all history.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (needed with --reset without a terminal).")
@engine_options
@json_option
@wide_option
def state(connection_id: str, reset: bool, yes: bool, database_url: str | None, user_id: str, as_json: bool) -> None:
    """Show CONNECTION_ID's sync position per account (watermark and cursor), or --reset it.

    After --reset the next sync, scheduled or not, is a full one; stored trades stay and are found
    unchanged. CONNECTION_ID may be any unique prefix of the id.
    """

    async def show(engine: BrokerSync) -> Any:
        full_id = await resolve_connection(engine, connection_id, user_id)
        return await engine.get_connection(full_id, user_id)

    info = run(show, database_url, read_only=not reset)
    if reset:
        if not yes:
            if not sys.stdin.isatty():
                raise click.UsageError("--reset makes the next sync read all history: without a terminal, add --yes")
            click.confirm(f"Forget where {info.id}'s accounts sync from (the next sync is a full one)?", abort=True)

        async def forget(engine: BrokerSync) -> int:
            return await engine.reset_sync_state(info.id, user_id)

        forgotten = run(forget, database_url)
        if as_json:
            echo_json({"connection_id": info.id, "reset": True, "accounts_reset": forgotten})
        else:
            click.echo(f"Forgot the sync position of {forgotten} account(s) of {info.id}: the next sync is a full one.")
        return
    accounts = [
        {
            "account_id": a.account_id,
            "watermark": a.watermark.isoformat() if a.watermark else None,
            "cursor": a.cursor,
        }
        for a in info.accounts
    ]
    if as_json:
        echo_json({"connection_id": info.id, "broker": info.broker, "accounts": accounts})
        return
    print_table(
        f"Sync state of {info.id} ({info.broker})",
        ["account", "watermark (UTC)", "cursor"],
        ((a["account_id"], a["watermark"] or "none (next sync is a full one)", a["cursor"] or "") for a in accounts),
    )
