"""``connect``, ``reconnect``, ``disconnect`` and ``connections``.

Secrets are never taken from the command line (it ends up in shell history and ``ps``): they are
prompted without echo, or read from ``BROKERSYNC_CREDENTIAL_<FIELD>`` environment variables, or from
a JSON/TOML file given with ``--credentials-file``.
"""

from __future__ import annotations

import json
import os
import sys
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from brokersync._cli._engine import (
    base_url_option,
    engine_options,
    json_option,
    resolve_connection,
    run,
    to_jsonable,
    wide_option,
)
from brokersync._cli._output import echo_json, print_table

if TYPE_CHECKING:
    from brokersync._engine import BrokerSync
    from brokersync.models import BrokerMetadata

ENV_PREFIX = "BROKERSYNC_CREDENTIAL_"


def _read_file(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise click.BadParameter(f"{path} is not valid {'TOML' if path.suffix == '.toml' else 'JSON'}: {exc}") from None
    if not isinstance(data, dict):
        raise click.BadParameter(f"{path} must hold an object of credential field -> value")
    return {str(k): (str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v) for k, v in data.items()}


def gather_credentials(meta: BrokerMetadata, *, file: Path | None, settings: tuple[str, ...]) -> dict[str, Any]:
    """Collect credential values: file, then environment, then ``--set`` (non-secret), then prompts."""
    values: dict[str, Any] = _read_file(file) if file else {}
    for field in meta.credential_fields:
        env_value = os.environ.get(ENV_PREFIX + field.name.upper())
        if env_value:
            values[field.name] = env_value
    secret = meta.secret_fields
    for item in settings:
        name, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} must look like FIELD=VALUE", param_hint="--set")
        if name in secret:
            raise click.BadParameter(
                f"{name!r} is a secret: give it at the prompt, in {ENV_PREFIX}{name.upper()}, or in --credentials-file",
                param_hint="--set",
            )
        values[name] = value
    interactive = sys.stdin.isatty()
    for field in meta.credential_fields:
        if values.get(field.name) or not (field.required or interactive):
            continue
        if not interactive:
            break  # validate_credentials names every missing field
        label = field.label or field.name
        values[field.name] = click.prompt(
            label, hide_input=field.secret, default=field.default, show_default=not field.secret
        )
    return values


def _broker_metadata(key: str) -> BrokerMetadata:
    from brokersync import ConfigurationError, get_broker_metadata

    try:
        return get_broker_metadata(key)
    except ConfigurationError as exc:
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(2) from None


def _show_connection(result: Any, as_json: bool) -> None:
    if as_json:
        echo_json(to_jsonable(result))
        return
    click.echo(f"Connection {result.connection_id} ({result.broker}, {result.environment}): {result.status.value}")
    print_table(
        "Accounts",
        ["account", "name", "currency", "type"],
        ((a.id, a.name, a.currency, a.type) for a in result.accounts),
    )


credential_options = [
    click.option(
        "--credentials-file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="JSON or TOML file with credential field -> value.",
    ),
    click.option("--set", "settings", multiple=True, metavar="FIELD=VALUE", help="A non-secret credential field."),
]


def _with_credential_options(func: Any) -> Any:
    for option in reversed(credential_options):
        func = option(func)
    return func


@click.command()
@click.argument("broker")
@click.option("--environment", "-e", help="Broker environment (default: the broker's default).")
@_with_credential_options
@base_url_option
@engine_options
@json_option
def connect(
    broker: str,
    environment: str | None,
    credentials_file: Path | None,
    settings: tuple[str, ...],
    base_url_specs: dict[str, str],
    database_url: str | None,
    user_id: str,
    as_json: bool,
) -> None:
    """Connect a BROKER account: check the credentials with the broker, then store them encrypted."""
    meta = _broker_metadata(broker)
    credentials = gather_credentials(meta, file=credentials_file, settings=settings)

    async def go(engine: BrokerSync) -> Any:
        return await engine.connect_broker(user_id, broker, credentials, environment)

    _show_connection(run(go, database_url, base_urls=base_url_specs), as_json)


@click.command()
@click.argument("connection_id")
@_with_credential_options
@base_url_option
@engine_options
@json_option
def reconnect(
    connection_id: str,
    credentials_file: Path | None,
    settings: tuple[str, ...],
    base_url_specs: dict[str, str],
    database_url: str | None,
    user_id: str,
    as_json: bool,
) -> None:
    """Give CONNECTION_ID (or a unique prefix) new credentials (keeps its id and trades; status back to active)."""

    async def broker_of(engine: BrokerSync) -> tuple[str, str]:
        full_id = await resolve_connection(engine, connection_id, user_id)
        return full_id, (await engine.get_connection(full_id, user_id)).broker

    full_id, broker = run(broker_of, database_url, read_only=True)
    meta = _broker_metadata(broker)
    credentials = gather_credentials(meta, file=credentials_file, settings=settings)

    async def go(engine: BrokerSync) -> Any:
        return await engine.reconnect_broker(full_id, user_id, credentials)

    _show_connection(run(go, database_url, base_urls=base_url_specs), as_json)


@click.command()
@click.argument("connection_id")
@click.option("--delete-trades", is_flag=True, help="Also delete the connection's stored trades.")
@click.option("--yes", is_flag=True, help="Do not ask (needed with --delete-trades without a terminal).")
@engine_options
@json_option
def disconnect(
    connection_id: str, delete_trades: bool, yes: bool, database_url: str | None, user_id: str, as_json: bool
) -> None:
    """Disconnect CONNECTION_ID (or a unique prefix of it): its credentials and token are deleted."""
    if not yes and delete_trades and not sys.stdin.isatty():
        raise click.UsageError("--delete-trades deletes the trades: without a terminal, confirm with --yes")

    async def full_id_of(engine: BrokerSync) -> str:
        return await resolve_connection(engine, connection_id, user_id)

    full_id = run(full_id_of, database_url, read_only=True)
    if not yes and sys.stdin.isatty():
        what = "and delete its trades" if delete_trades else "(its trades are kept)"
        click.confirm(f"Disconnect {full_id} {what}?", abort=True)

    async def go(engine: BrokerSync) -> None:
        await engine.disconnect_broker(full_id, user_id, delete_trades=delete_trades)

    run(go, database_url)
    if as_json:
        echo_json({"connection_id": full_id, "disconnected": True, "trades_deleted": delete_trades})
    else:
        click.echo(f"Disconnected {full_id}.")


@click.group(invoke_without_command=True)
@click.option("--all-users", is_flag=True, help="List every user's connections (operator view).")
@click.option("--status", type=click.Choice(["active", "needs_reauth", "disabled"]), help="Only this status.")
@engine_options
@json_option
@wide_option
@click.pass_context
def connections(
    ctx: click.Context, all_users: bool, status: str | None, database_url: str | None, user_id: str, as_json: bool
) -> None:
    """List connections with their status, accounts and last sync (`connections state` shows sync positions)."""
    if ctx.invoked_subcommand is not None:
        return

    async def go(engine: BrokerSync) -> Any:
        return await engine.list_connections(user_id=None if all_users else user_id, status=status)

    infos = run(go, database_url, read_only=True)
    if as_json:
        echo_json(to_jsonable(infos))
        return
    if not infos:
        click.echo("No connections. Add one with `brokersync connect <broker>`.")
        return
    print_table(
        "Connections",
        ["id", "user", "broker", "env", "status", "accounts", "last sync", "last result"],
        (
            (
                c.id,
                c.user_id,
                c.broker,
                c.environment,
                c.status.value,
                ", ".join(a.account_id for a in c.accounts),
                c.last_sync_at.strftime("%Y-%m-%d %H:%M:%S") if c.last_sync_at else "never",
                c.last_sync_status.value if c.last_sync_status else "",
            )
            for c in infos
        ),
    )


def _add_subcommands() -> None:
    from brokersync._cli._state import state

    connections.add_command(state)


_add_subcommands()
