"""Run a docs example with the network switched off: ``python _offline.py example.py``.

Docs examples promise to run on a machine without network access (brokers are served in-process by
``httpx.MockTransport``). This runner makes that promise checkable: any attempt to resolve a host
name or open an internet socket raises ``OSError`` naming the destination, so an example that would
quietly need the network fails its test instead. Unix sockets (used by nothing in brokersync, but
harmless) stay allowed.
"""

from __future__ import annotations

import runpy
import socket
import sys
from typing import Any

_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


def _refuse(what: object) -> OSError:
    return OSError(f"docs examples must run offline, but this one tried to reach {what!r}")


def _guarded_connect(self: socket.socket, address: Any) -> None:
    if self.family == getattr(socket, "AF_UNIX", None):
        return _connect(self, address)
    raise _refuse(address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    if self.family == getattr(socket, "AF_UNIX", None):
        return _connect_ex(self, address)
    raise _refuse(address)


def _guarded_getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
    raise _refuse(f"{host}:{port}")


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
socket.getaddrinfo = _guarded_getaddrinfo

if __name__ == "__main__":
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    runpy.run_path(script, run_name="__main__")
