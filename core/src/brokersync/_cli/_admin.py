"""``keys`` (generate, rotate) and ``db`` (upgrade): operator commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from brokersync._cli._engine import json_option, run
from brokersync._cli._output import echo_json

if TYPE_CHECKING:
    from brokersync._engine import BrokerSync

database_option = click.option(
    "--database-url", envvar="BROKERSYNC_DATABASE_URL", help="Database URL. Env: BROKERSYNC_DATABASE_URL."
)


@click.group()
def keys() -> None:
    """Manage the encryption keys that protect stored credentials and tokens."""


@keys.command()
def generate() -> None:
    """Print a new key entry (key_id:base64) for BROKERSYNC_ENCRYPTION_KEYS."""
    from brokersync._vault import Vault

    click.echo(Vault.generate_key())


@keys.command()
@click.option(
    "--new-key/--no-new-key",
    default=True,
    show_default=True,
    help="With a key file: add a fresh active key first. With BROKERSYNC_ENCRYPTION_KEYS: put the new key first "
    "in the variable yourself and pass --no-new-key.",
)
@database_option
@json_option
def rotate(new_key: bool, database_url: str | None, as_json: bool) -> None:
    """Re-encrypt every stored credential and token under the active key."""

    async def go(engine: BrokerSync) -> tuple[str, int]:
        vault = engine.vault
        if new_key:
            vault.add_key()
        return vault.active_key_id, await engine.rotate_keys()

    key_id, moved = run(go, database_url)
    if as_json:
        echo_json({"active_key_id": key_id, "reencrypted": moved})
    else:
        click.echo(f"Re-encrypted {moved} values under key {key_id}.")


@click.group()
def db() -> None:
    """Database schema commands."""


@db.command()
@database_option
@json_option
def upgrade(database_url: str | None, as_json: bool) -> None:
    """Migrate the database schema to this brokersync's revision."""

    async def go(engine: BrokerSync) -> tuple[str | None, str | None]:
        return await engine.upgrade_database()

    before, after = run(go, database_url)
    if as_json:
        echo_json({"before": before, "after": after, "upgraded": before != after})
    elif before == after:
        click.echo(f"Schema already at {after}.")
    else:
        click.echo(f"Schema upgraded from {before or 'empty'} to {after}.")
