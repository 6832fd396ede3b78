"""The sim API on a loopback HTTP port, for a CLI user or another process.

``brokersync-sim serve`` runs it in the foreground; tests use :class:`SimServer` as a context
manager. It serves exactly what :class:`~brokersync_sim.SimAPI` answers in-process; an injected
timeout closes the connection without an answer.
"""

from __future__ import annotations

import http.server
import threading
import time
from types import TracebackType

import httpx

from brokersync_sim.api import SimAPI

__all__ = ["SimServer"]


class SimServer:
    """Serve ``api`` on ``host:port`` (port 0 picks a free one) in a background thread.

    Args:
        api: The fake API to serve. Its ``latency`` is spent in the serving thread.
        host: The interface to bind; loopback by default.
        port: The TCP port; 0 picks a free one (see :attr:`base_url`).
    """

    def __init__(self, api: SimAPI, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.api = api
        self._lock = threading.Lock()
        self._httpd = http.server.ThreadingHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None
        self._connections = 0

    @property
    def base_url(self) -> str:
        """The API's base URL on this server, e.g. ``http://127.0.0.1:8765/v1``."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}{httpx.URL(self.api.base_url).path}"

    @property
    def connections_opened(self) -> int:
        """TCP connections clients have opened to this server so far (keep-alive reuse shows here)."""
        return self._connections

    def _handler_class(self) -> type[http.server.BaseHTTPRequestHandler]:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body leave in separate writes: without TCP_NODELAY, Nagle's algorithm
            # holds the body back until the client's delayed ACK (~40 ms per response).
            disable_nagle_algorithm = True

            def setup(self) -> None:
                super().setup()
                with server._lock:
                    server._connections += 1

            def log_message(self, format: str, *args: object) -> None:
                return  # quiet: the API's stats say what happened

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = httpx.Request(
                    self.command, f"http://loopback{self.path}", headers=dict(self.headers.items()), content=body
                )
                if server.api.latency:
                    time.sleep(server.api.latency)
                try:
                    with server._lock:
                        response = server.api.handle_now(request)
                except httpx.TimeoutException:
                    self.close_connection = True
                    return
                self.send_response(response.status_code)
                for name, value in response.headers.items():
                    if name.lower() not in ("content-length", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(response.content)))
                self.end_headers()
                self.wfile.write(response.content)

            do_GET = _serve
            do_POST = _serve

        return Handler

    def start(self) -> SimServer:
        """Start serving in a daemon thread; returns ``self``."""
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="sim-api", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted."""
        self._httpd.serve_forever()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
