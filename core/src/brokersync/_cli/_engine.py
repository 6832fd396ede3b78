"""How CLI commands get an engine and run it: shared options, error handling, exit codes."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
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


def make_engine(
    database_url: str | None,
    *,
    base_urls: dict[str, str] | None = None,
    read_only: bool = False,
    lease_ttl: dt.timedelta | None = None,
) -> BrokerSync:
    """Build the engine from configuration (environment variables and defaults).

    ``base_urls`` (from ``--base-url``) win over ``BROKERSYNC_BASE_URLS``. ``read_only``: the command
    only reads, so a missing SQLite database is an error (instead of creating one), and one this
    process cannot write is opened read-only. ``lease_ttl`` (from ``sync --lease-ttl``) wins over
    ``BROKERSYNC_LEASE_TTL``.
    """
    from brokersync._engine import BrokerSync

    urls = {**env_base_urls(), **(base_urls or {})}
    url, writable = database_for(database_url, read_only=read_only)
    return BrokerSync(url, base_urls=urls or None, auto_upgrade=None if writable else False, lease_ttl=lease_ttl)


def database_for(database_url: str | None, *, read_only: bool) -> tuple[str, bool]:
    """The database URL to open and whether it may be written (SQLite files only are looked at)."""
    import os
    from pathlib import Path

    from sqlalchemy.engine import make_url

    from brokersync._config import default_database_url, normalize_database_url
    from brokersync.errors import ConfigurationError

    url = normalize_database_url(database_url) if database_url else default_database_url()
    if not read_only:
        return url, True
    try:
        parsed = make_url(url)
    except Exception:  # invalid URLs are reported by the engine, with the details hidden
        return url, True
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.query.get("uri"):
        return url, True
    path = Path(parsed.database).expanduser()
    if not path.is_file():
        raise ConfigurationError(
            f"there is no brokersync database at {path}: connect a broker first (`brokersync connect BROKER`), "
            "or point --database-url, BROKERSYNC_DATABASE_URL or BROKERSYNC_DATA_DIR at your database"
        )
    directory_writable = os.access(path.parent, os.W_OK)
    if os.access(path, os.W_OK) and directory_writable:
        return url, True
    # Read-only. A WAL database needs its -shm file: in a directory we cannot write, without one,
    # SQLite can read the file only as immutable (nobody can be writing it there either).
    shm = path.with_name(path.name + "-shm")
    immutable = "" if directory_writable or shm.exists() else "&immutable=1"
    return f"sqlite+aiosqlite:///file:{path.resolve()}?mode=ro{immutable}&uri=true", False


def known_brokers() -> set[str]:
    """The keys of the brokers the installed plugins provide."""
    from brokersync import list_brokers

    return {meta.key for meta in list_brokers()}


def check_base_url(broker: str, url: str, where: str) -> str:
    """``url`` if it is an absolute http(s) URL for an installed broker; else a ConfigurationError naming ``where``."""
    from urllib.parse import urlsplit

    from brokersync.errors import ConfigurationError

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"{where}: {broker}={url!r}: the URL must look like http(s)://HOST[:PORT]/PATH")
    brokers = known_brokers()
    if broker not in brokers:
        raise ConfigurationError(
            f"{where}: no broker {broker!r} is installed (brokers: {', '.join(sorted(brokers)) or 'none'})"
        )
    return url


def env_base_urls() -> dict[str, str]:
    """``BROKERSYNC_BASE_URLS=broker=url,broker2=url2``: send brokers' requests to other base URLs (local fakes)."""
    import os

    from brokersync.errors import ConfigurationError

    text = os.environ.get("BROKERSYNC_BASE_URLS", "").strip()
    urls: dict[str, str] = {}
    for spec in filter(None, (part.strip() for part in text.split(","))):
        key, sep, url = spec.partition("=")
        if not sep or not key.strip() or not url.strip().startswith(("http://", "https://")):
            raise ConfigurationError(f"BROKERSYNC_BASE_URLS: {spec!r} must look like BROKER=http(s)://HOST/PATH")
        urls[key.strip()] = check_base_url(key.strip(), url.strip(), "BROKERSYNC_BASE_URLS")
    return urls


def _filesystem_error(exc: OSError) -> str:
    where = f" {exc.filename}" if exc.filename else ""
    return (
        f"cannot use{where}: {exc.strerror or type(exc).__name__}. Set BROKERSYNC_DATA_DIR (or --database-url) "
        "to a directory this user can write"
    )


def run(
    coro_fn: Callable[[BrokerSync], Awaitable[T]],
    database_url: str | Callable[[], BrokerSync] | None,
    *,
    base_urls: dict[str, str] | None = None,
    read_only: bool = False,
) -> T:
    """Run ``coro_fn(engine)`` and translate brokersync errors into messages and exit codes.

    ``database_url`` may instead be a function that makes the engine (commands with more engine
    options, e.g. ``sync --lease-ttl``); ``base_urls`` and ``read_only`` then do not apply.
    Exit 2 for usage and configuration errors (unknown connection, unusable keys or data
    directory, an account connected already), 1 for failures (the broker, the database).
    """
    from brokersync.errors import (
        AccountAlreadyConnectedError,
        BrokerAuthError,
        BrokerSyncError,
        ConfigurationError,
        ConnectionNotFoundError,
        VaultError,
    )

    async def main() -> T:
        engine = (
            database_url()
            if callable(database_url)
            else make_engine(database_url, base_urls=base_urls, read_only=read_only)
        )
        async with engine:
            return await coro_fn(engine)

    try:
        return asyncio.run(main())
    except (ConfigurationError, ConnectionNotFoundError, VaultError, AccountAlreadyConnectedError) as exc:
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(2) from None
    except BrokerAuthError as exc:
        click.echo(f"Error: {auth_message(exc)}", err=True)
        raise SystemExit(1) from None
    except BrokerSyncError as exc:
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(1) from None
    except (PermissionError, FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
        click.echo(f"Error: {_filesystem_error(exc)}", err=True)
        raise SystemExit(2) from None


_HTTP_EXCHANGE = re.compile(r"\b(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) \S+ answered \d{3}")


def auth_message(exc: BaseException) -> str:
    """What a user reads when a broker rejected credentials.

    The core's own mapping of a 401/403 quotes the HTTP exchange: that is replaced by a plain
    sentence. A plugin's own message (a captcha to solve, a token for the other environment, an
    expired Flex token) says what to do and is kept, with the reconnect hint after it.
    """
    broker = getattr(exc, "broker", None)
    status = getattr(exc, "status_code", None)
    hint = "for an existing connection use `brokersync reconnect CONNECTION`"
    text = str(exc).strip()
    if text and not _HTTP_EXCHANGE.search(text):
        return f"{text.rstrip('.')} ({hint})"
    return (
        f"the broker{f' {broker!r}' if broker else ''} rejected the credentials"
        f"{f' (HTTP {status})' if status else ''}. "
        f"Check the username, password or key and try again; {hint}"
    )


async def resolve_connection(engine: BrokerSync, text: str, user_id: str | None) -> str:
    """The id of the connection ``text`` names: a full id or any unique prefix of one (like git).

    Raises:
        ConnectionNotFoundError: No connection of ``user_id`` (of anyone when None) starts with ``text``.
        ConfigurationError: Several do; the message lists them.
    """
    from brokersync.errors import ConfigurationError, ConnectionNotFoundError

    ids = [c.id for c in await engine.list_connections(user_id=user_id)]
    if text in ids:
        return text
    matches = [i for i in ids if text and i.startswith(text)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        owner = f" for user {user_id}" if user_id is not None else ""
        raise ConnectionNotFoundError(f"no connection {text}{owner} (`brokersync connections` lists them)")
    raise ConfigurationError(f"{text!r} matches {len(matches)} connections: {', '.join(matches)}; give more of the id")


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


def _base_url_callback(ctx: click.Context, param: click.Parameter, specs: Sequence[str]) -> dict[str, str]:
    from brokersync.errors import ConfigurationError

    urls = {}
    for broker, url in parse_pairs(specs, "--base-url", "BROKER=URL"):
        try:
            urls[broker] = check_base_url(broker, url, "--base-url")
        except ConfigurationError as exc:
            raise click.BadParameter(str(exc).removeprefix("--base-url: "), ctx=ctx, param=param) from None
    return urls


#: ``--base-url BROKER=URL`` (repeatable), for commands that talk to a test or local broker; checked when
#: parsed (an installed broker, an http(s) URL). The command receives ``base_url_specs`` as broker -> URL.
base_url_option = click.option(
    "--base-url",
    "base_url_specs",
    multiple=True,
    metavar="BROKER=URL",
    callback=_base_url_callback,
    help="Send a broker's requests to another base URL, e.g. sim=http://127.0.0.1:8765/v1 (repeatable; "
    "adds to BROKERSYNC_BASE_URLS).",
)


def base_urls(specs: Sequence[str] | dict[str, str]) -> dict[str, str]:
    """``--base-url`` values as broker key -> base URL."""
    if isinstance(specs, dict):
        return specs
    return dict(parse_pairs(specs, "--base-url", "BROKER=URL"))


def wide_option(func: Callable[P, T]) -> Callable[P, T]:
    """Add ``--wide``: tables show every column in full (ids, times) however wide that gets."""

    def set_wide(ctx: click.Context, param: click.Parameter, value: bool) -> None:
        from brokersync._cli import _output

        _output.WIDE = _output.WIDE or value

    return click.option(
        "--wide", is_flag=True, expose_value=False, callback=set_wide, help="Show tables untruncated (full ids)."
    )(func)


def short_id(value: str) -> str:
    """A connection or run id as tables show it: its first 8 characters, or all of it with ``--wide``."""
    from brokersync._cli import _output

    return value if _output.WIDE else value[:8]
