"""``brokersync doctor``: check an installation end to end, one line per check."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path
from typing import Any

import attrs
import click

from brokersync._cli._engine import json_option
from brokersync._cli._output import echo_json


@attrs.frozen
class Check:
    """One check's outcome: ``ok`` is False for a failure; ``detail`` says what was found or what to do."""

    name: str
    ok: bool
    detail: str


def _plugins() -> Check:
    from brokersync import list_plugins

    infos = list_plugins()
    failures = [f"{f.key} ({f.distribution}): {f.error}" for info in infos for f in info.failures]
    if failures:
        return Check("plugins", False, "failed to load: " + "; ".join(failures))
    brokers = sorted(b for info in infos for b in info.brokers)
    if not brokers:
        return Check("plugins", False, "no broker plugin installed (e.g. install brokersync-sim)")
    return Check("plugins", True, f"{len(brokers)} broker(s) load: {', '.join(brokers)}")


def _mode(path: Path, wanted: int, what: str) -> Check:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        return Check(f"permissions: {what}", False, f"{path}: {exc.strerror}")
    if mode & ~wanted & 0o777:
        return Check(
            f"permissions: {what}", False, f"{path} is {mode:04o}, should be {wanted:04o}: chmod {wanted:o} {path}"
        )
    return Check(f"permissions: {what}", True, f"{path} is {mode:04o}")


def _sqlite_path(url: str) -> Path | None:
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        return None
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return Path(parsed.database).expanduser()


async def _database_checks(database_url: str | None) -> list[Check]:
    from brokersync._cli._engine import database_for
    from brokersync._engine import BrokerSync
    from brokersync._store import Store
    from brokersync.errors import BrokerSyncError

    checks: list[Check] = []
    try:
        url, writable = database_for(database_url, read_only=True)
    except BrokerSyncError as exc:
        return [Check("database", False, str(exc))]
    engine = BrokerSync(url, auto_upgrade=False)
    try:
        try:
            revision = await engine.store.revision()
        except Exception as exc:  # the store's errors name the database, never a password
            return [Check("database", False, f"cannot be opened ({type(exc).__name__}): {exc}")]
        head = Store.head()
        if revision != head:
            checks.append(
                Check(
                    "schema", False, f"at {revision or 'none'}, this brokersync needs {head}: `brokersync db upgrade`"
                )
            )
            return checks
        checks.append(Check("schema", True, f"at head {head}{'' if writable else ' (read-only database)'}"))
        try:
            vault = engine.vault
            checks.append(Check("keys", True, f"active key {vault.active_key_id} from {vault.source}"))
        except BrokerSyncError as exc:
            checks.append(Check("keys", False, str(exc)))
            return checks
        problems = await engine.verify_secrets()
        bad = {k: v for k, v in problems.items() if v}
        if bad:
            checks.append(
                Check(
                    "secrets",
                    False,
                    f"{len(bad)} of {len(problems)} cannot be decrypted: "
                    + "; ".join(f"{k}: {v}" for k, v in bad.items()),
                )
            )
        else:
            checks.append(Check("secrets", True, f"the secrets of all {len(problems)} connection(s) decrypt"))
        if vault.key_file is not None:
            checks.append(_mode(vault.key_file, 0o600, "key file"))
    finally:
        await engine.aclose()
    return checks


async def _redis(name: str, url: str) -> Check:
    try:
        import redis.asyncio as redis
    except ImportError:
        return Check(name, False, "configured, but the redis client is missing: pip install 'brokersync[queue]'")
    client: Any = redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        await asyncio.wait_for(client.ping(), timeout=5)
    except Exception as exc:  # only the type: redis-py's messages can name the host and password
        return Check(name, False, f"cannot be reached ({type(exc).__name__})")
    finally:
        await client.aclose()
    return Check(name, True, "reachable")


def _permission_checks(database_url: str | None) -> list[Check]:
    from brokersync._config import data_dir, default_database_url, normalize_database_url

    url = normalize_database_url(database_url) if database_url else default_database_url()
    checks = []
    directory = data_dir()
    if directory.is_dir():
        checks.append(_mode(directory, 0o700, "data directory"))
    path = _sqlite_path(url)
    if path is not None and path.is_file():
        checks.append(_mode(path, 0o600, "database"))
    return checks


@click.command()
@click.option("--database-url", envvar="BROKERSYNC_DATABASE_URL", help="Database URL. Env: BROKERSYNC_DATABASE_URL.")
@click.option("--queue-url", envvar="BROKERSYNC_QUEUE_URL", help="Redis of the job queue. Env: BROKERSYNC_QUEUE_URL.")
@click.option("--redis-url", help="Redis of the shared rate limiter, if it is not the queue's.")
@json_option
def doctor(database_url: str | None, queue_url: str | None, redis_url: str | None, as_json: bool) -> None:
    """Check the installation: plugins, schema, keys, stored secrets, file permissions, Redis.

    One line per check; exit status 1 when any check fails.
    """

    async def gather() -> list[Check]:
        checks = [_plugins(), *await _database_checks(database_url)]
        checks += _permission_checks(database_url)
        if queue_url:
            checks.append(await _redis("queue", queue_url))
        if redis_url and redis_url != queue_url:
            checks.append(await _redis("rate-limit redis", redis_url))
        return checks

    from brokersync.errors import BrokerSyncError

    try:
        checks = asyncio.run(gather())
    except BrokerSyncError as exc:
        checks = [Check("configuration", False, str(exc))]
    if as_json:
        echo_json([{"check": c.name, "ok": c.ok, "detail": c.detail} for c in checks])
    else:
        for c in checks:
            click.echo(f"{'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}")
    if not all(c.ok for c in checks):
        raise SystemExit(1)


__all__ = ["doctor"]
