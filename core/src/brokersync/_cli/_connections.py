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

from brokersync._cli._engine import engine_options, json_option, run, to_jsonable
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
@engine_options
@json_option
def connect(
    broker: str,
    environment: str | None,
    credentials_file: Path | None,
    settings: tuple[str, ...],
    database_url: str | None,
    user_id: str,
    as_json: bool,
) -> None:
    """Connect a BROKER account: check the credentials with the broker, then store them encrypted."""
    meta = _broker_metadata(broker)
    credentials = gather_credentials(meta, file=credentials_file, settings=settings)

    async def go(engine: BrokerSync) -> Any:
        return await engine.connect_broker(user_id, broker, credentials, environment)

    _show_connection(run(go, database_url), as_json)


@click.command()
@click.argument("connection_id")
@_with_credential_options
@engine_options
@json_option
def reconnect(
    connection_id: str,
    credentials_file: Path | None,
    settings: tuple[str, ...],
    database_url: str | None,
    user_id: str,
    as_json: bool,
) -> None:
    """Give CONNECTION_ID new credentials (keeps its id and trades; status back to active)."""

    async def broker_of(engine: BrokerSync) -> str:
        return (await engine.get_connection(connection_id, user_id)).broker

    meta = _broker_metadata(run(broker_of, database_url))
    credentials = gather_credentials(meta, file=credentials_file, settings=settings)

    async def go(engine: BrokerSync) -> Any:
        return await engine.reconnect_broker(connection_id, user_id, credentials)

    _show_connection(run(go, database_url), as_json)


@click.command()
@click.argument("connection_id")
@click.option("--delete-trades", is_flag=True, help="Also delete the connection's stored trades.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@engine_options
def disconnect(connection_id: str, delete_trades: bool, yes: bool, database_url: str | None, user_id: str) -> None:
    """Disconnect CONNECTION_ID: its credentials and token are deleted."""
    if not yes and sys.stdin.isatty():
        what = "and delete its trades" if delete_trades else "(its trades are kept)"
        click.confirm(f"Disconnect {connection_id} {what}?", abort=True)

    async def go(engine: BrokerSync) -> None:
        await engine.disconnect_broker(connection_id, user_id, delete_trades=delete_trades)

    run(go, database_url)
    click.echo(f"Disconnected {connection_id}.")


@click.command()
@click.option("--all-users", is_flag=True, help="List every user's connections (operator view).")
@click.option("--status", type=click.Choice(["active", "needs_reauth", "disabled"]), help="Only this status.")
@engine_options
@json_option
def connections(all_users: bool, status: str | None, database_url: str | None, user_id: str, as_json: bool) -> None:
    """List connections with their status, accounts and last sync."""

    async def go(engine: BrokerSync) -> Any:
        return await engine.list_connections(user_id=None if all_users else user_id, status=status)

    infos = run(go, database_url)
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
