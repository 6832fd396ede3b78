"""How CLI commands get an engine and run it: shared options, error handling, exit codes."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import click

if TYPE_CHECKING:
    from brokersync._engine import BrokerSync

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_USER = "local"


def engine_options(func: Callable[P, T]) -> Callable[P, T]:
    """Add ``--database-url`` and ``--user`` (both also read from the environment)."""
    func = click.option(
        "--database-url",
        envvar="BROKERSYNC_DATABASE_URL",
        help="Database URL (default: a SQLite file in the data directory). Env: BROKERSYNC_DATABASE_URL.",
    )(func)
    return click.option(
        "--user",
        "user_id",
        envvar="BROKERSYNC_USER",
        default=DEFAULT_USER,
        show_default=True,
        help="The user whose connections to work on. Env: BROKERSYNC_USER.",
    )(func)


def make_engine(database_url: str | None) -> BrokerSync:
    """Build the engine from configuration (environment variables and defaults)."""
    from brokersync._engine import BrokerSync

    return BrokerSync(database_url or None)


def run(coro_fn: Callable[[BrokerSync], Awaitable[T]], database_url: str | Callable[[], BrokerSync] | None) -> T:
    """Run ``coro_fn(engine)`` and translate brokersync errors into messages and exit codes.

    ``database_url`` may instead be a function that makes the engine (commands with engine options).
    """
    from brokersync.errors import (
        AccountAlreadyConnectedError,
        BrokerSyncError,
        ConfigurationError,
        ConnectionNotFoundError,
        VaultError,
    )

    async def main() -> T:
        async with database_url() if callable(database_url) else make_engine(database_url) as engine:
            return await coro_fn(engine)

    try:
        return asyncio.run(main())
    except (ConfigurationError, ConnectionNotFoundError, VaultError, AccountAlreadyConnectedError) as exc:
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(2) from None
    except BrokerSyncError as exc:
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(1) from None


def parse_time(value: str | None, option: str) -> dt.datetime | None:
    """Parse an ISO date or time from the command line; naive values are taken as UTC."""
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO date or time (e.g. 2024-01-31 or 2024-01-31T12:00Z)", param_hint=option
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def json_option(func: Callable[P, T]) -> Callable[P, T]:
    """Add ``--json``."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(func)


def to_jsonable(value: Any) -> Any:
    """attrs objects, enums, Decimals and datetimes as plain JSON values."""
    import attrs

    if attrs.has(type(value)):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in attrs.fields(type(value)) if f.name != "raw"}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if hasattr(value, "value") and isinstance(getattr(value, "value", None), str):
        return value.value
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def parse_pairs(values: Sequence[str], option: str, what: str) -> list[tuple[str, str]]:
    """Split repeated ``LEFT=RIGHT`` option values; a malformed one is a usage error naming ``option``."""
    pairs = []
    for value in values:
        left, sep, right = value.partition("=")
        if not sep or not left.strip() or not right.strip():
            raise click.BadParameter(f"{value!r} must look like {what}", param_hint=option)
        pairs.append((left.strip(), right.strip()))
    return pairs


#: ``--base-url BROKER=URL`` (repeatable), for commands that run syncs against a test or local broker.
base_url_option = click.option(
    "--base-url",
    "base_url_specs",
    multiple=True,
    metavar="BROKER=URL",
    help="Send a broker's requests to another base URL, e.g. sim=http://127.0.0.1:8765/v1 (repeatable).",
)


def base_urls(specs: Sequence[str]) -> dict[str, str]:
    """``--base-url`` values as broker key -> base URL."""
    return dict(parse_pairs(specs, "--base-url", "BROKER=URL"))
