"""Where brokersync keeps its data, and how the engine is tuned.

Environment variables (all optional):

* ``BROKERSYNC_DATA_DIR``: directory for the default SQLite database and key file
  (default: the platform's user data directory, e.g. ``~/.local/share/brokersync``).
* ``BROKERSYNC_DATABASE_URL``: an SQLAlchemy async URL, e.g. ``postgresql+asyncpg://user@host/db``
  (default: ``sqlite+aiosqlite:///<data dir>/brokersync.db``). ``postgresql://`` and
  ``sqlite://`` are accepted and given their async driver.
* ``BROKERSYNC_LEASE_TTL``: seconds a sync's lease on its connection lasts without a heartbeat
  (default 60): how long a crashed sync blocks its connection.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import attrs

from brokersync.errors import ConfigurationError

__all__ = [
    "EngineSettings",
    "data_dir",
    "default_database_url",
    "lease_ttl_from_env",
    "normalize_database_url",
    "parse_lease_ttl",
]

DATA_DIR_ENV = "BROKERSYNC_DATA_DIR"
DATABASE_URL_ENV = "BROKERSYNC_DATABASE_URL"
DATABASE_FILE = "brokersync.db"
LEASE_TTL_ENV = "BROKERSYNC_LEASE_TTL"
#: The shortest lease brokersync accepts: its heartbeat renews it every third of it.
MIN_LEASE_TTL = dt.timedelta(seconds=1)


def data_dir() -> Path:
    """The directory for brokersync's own files (created on demand by whoever writes there)."""
    configured = os.environ.get(DATA_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("brokersync", appauthor=False))


def normalize_database_url(url: str) -> str:
    """Give a database URL its async driver; refuse databases brokersync does not support.

    Raises:
        ConfigurationError: the URL is not SQLite or PostgreSQL (the message never shows a password).
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigurationError(
            f"database URL must look like 'sqlite+aiosqlite:///path' or 'postgresql+asyncpg://...', got {scheme!r}..."
        )
    base = scheme.split("+", 1)[0].lower()
    if base in ("postgres", "postgresql"):
        return f"postgresql+asyncpg://{rest}"
    if base == "sqlite":
        return f"sqlite+aiosqlite://{rest}"
    raise ConfigurationError(
        f"unsupported database {scheme!r} in the database URL (BrokerSync(database_url=...), --database-url or "
        f"{DATABASE_URL_ENV}): brokersync supports SQLite and PostgreSQL"
    )


def default_database_url() -> str:
    """``BROKERSYNC_DATABASE_URL`` if set, else a SQLite file in :func:`data_dir`."""
    configured = os.environ.get(DATABASE_URL_ENV)
    if configured:
        return normalize_database_url(configured)
    return f"sqlite+aiosqlite:///{data_dir() / DATABASE_FILE}"


def parse_lease_ttl(value: str | float, source: str) -> dt.timedelta:
    """A lease TTL in seconds (text or number) as a timedelta; ``ConfigurationError`` naming ``source``."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not seconds >= MIN_LEASE_TTL.total_seconds() or seconds == float("inf"):
        raise ConfigurationError(
            f"{source} must be a number of seconds of at least {MIN_LEASE_TTL.total_seconds():g}, got {value!r}"
        )
    return dt.timedelta(seconds=seconds)


def lease_ttl_from_env() -> dt.timedelta | None:
    """``BROKERSYNC_LEASE_TTL`` as a timedelta, or ``None`` when it is not set."""
    configured = os.environ.get(LEASE_TTL_ENV)
    if configured is None or not configured.strip():
        return None
    return parse_lease_ttl(configured.strip(), LEASE_TTL_ENV)


def _positive_delta(instance: object, attribute: attrs.Attribute[dt.timedelta], value: dt.timedelta) -> None:
    if not isinstance(value, dt.timedelta) or value < dt.timedelta(0):
        raise ValueError(f"EngineSettings.{attribute.name} must be a non-negative timedelta, got {value!r}")


@attrs.frozen(kw_only=True)
class EngineSettings:
    """Tuning of the sync engine. Every value has a safe default.

    Attributes:
        lookback: Scheduled syncs re-read this much history before each account's watermark,
            because brokers correct trades and report some late.
        settle: The watermark never moves past ``sync start - settle``: what the broker may still
            be publishing at sync time is fetched again next time.
        lease_ttl: How long a sync's lease on its connection lasts without renewal. A heartbeat
            renews it every third of it while the sync is alive, so a crashed worker blocks its
            connection for at most this long (``BROKERSYNC_LEASE_TTL`` when the engine is not
            given settings; default one minute).
        token_refresh_margin: Refresh a token this long before it expires.
        concurrency: How many connections :meth:`BrokerSync.run_scheduled_sync` syncs at once.
        max_record_errors: How many invalid records a run keeps (with reasons) in its audit row;
            all of them are counted.
    """

    lookback: dt.timedelta = attrs.field(default=dt.timedelta(days=3), validator=_positive_delta)
    settle: dt.timedelta = attrs.field(default=dt.timedelta(minutes=5), validator=_positive_delta)
    lease_ttl: dt.timedelta = attrs.field(default=dt.timedelta(minutes=1), validator=_positive_delta)
    token_refresh_margin: dt.timedelta = attrs.field(default=dt.timedelta(minutes=5), validator=_positive_delta)
    concurrency: int = attrs.field(default=4)
    max_record_errors: int = 100

    @property
    def heartbeat_interval(self) -> dt.timedelta:
        """How often a running sync renews its lease: a third of :attr:`lease_ttl`."""
        return self.lease_ttl / 3

    def __attrs_post_init__(self) -> None:
        if isinstance(self.concurrency, bool) or not isinstance(self.concurrency, int) or self.concurrency < 1:
            raise ValueError(f"EngineSettings.concurrency must be a positive integer, got {self.concurrency!r}")
