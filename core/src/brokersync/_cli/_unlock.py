"""``brokersync unlock CONNECTION``: free the lease a dead sync left on its connection."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from brokersync._cli._engine import engine_options, json_option, resolve_connection, run, to_jsonable
from brokersync._cli._output import echo_json

if TYPE_CHECKING:
    from brokersync._engine import BrokerSync
    from brokersync.results import LeaseInfo


def _describe(info: LeaseInfo) -> str:
    beat = info.heartbeat_at.isoformat() if info.heartbeat_at else "never"
    return f"held by {info.holder} since {info.acquired_at.isoformat()}, last heartbeat {beat}"


@click.command()
@click.argument("connection_id")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (needed without a terminal).")
@engine_options
@json_option
def unlock(connection_id: str, yes: bool, database_url: str | None, user_id: str, as_json: bool) -> None:
    """Free CONNECTION_ID's sync lease after the process holding it died (its run becomes interrupted).

    A dead holder's lease lapses by itself after the lease TTL (default 60 s); this frees it at once.
    Refused (exit 1) while the holder's heartbeat is fresh: that sync is alive, stop it instead.
    CONNECTION_ID may be any unique prefix of the id.
    """

    async def look(engine: BrokerSync) -> tuple[str, LeaseInfo | None]:
        full_id = await resolve_connection(engine, connection_id, user_id)
        return full_id, await engine.lease_info(full_id, user_id)

    connection_id, current = run(look, database_url)
    if current is None:
        if as_json:
            echo_json({"connection_id": connection_id, "unlocked": None})
        else:
            click.echo(f"Connection {connection_id} is not locked: nobody is syncing it.")
        return
    if not yes and not current.fresh:
        if not sys.stdin.isatty():
            raise click.UsageError("standard input is not a terminal: pass --yes to unlock without confirmation")
        click.confirm(
            f"Connection {connection_id} is {_describe(current)}. Free it? Only do this if that process is gone",
            abort=True,
        )

    async def go(engine: BrokerSync) -> LeaseInfo | None:
        return await engine.unlock_connection(connection_id, user_id)

    freed = run(go, database_url)
    if as_json:
        echo_json({"connection_id": connection_id, "unlocked": to_jsonable(freed)})
    elif freed is None:
        click.echo(f"Connection {connection_id} is not locked: nobody is syncing it.")
    else:
        click.echo(f"Unlocked connection {connection_id} ({_describe(freed)}); its run is recorded as interrupted.")
