"""A fake of IB's Flex Web Service v3, written from reference §2.1-2.4, for the tests.

It serves ``SendRequest`` and ``GetStatement`` under ``/AccountManagement/FlexWebService/`` and
answers like IB: HTTP 200 with a ``FlexStatementResponse`` envelope for every status and error,
the ``FlexQueryResponse`` once the statement is ready (after ``polls`` "in progress" answers), and
1018 when a token's requests arrive faster than one per second or ten per minute (counted when
they arrive, on the injected clock). The legacy ``/Universal/servlet/`` paths answer 1001.
Failures can be scripted per request (``script``): an error code, or an HTTP status with a body.

Use it in-process (``transport()``) or on loopback (``serve()``) for CLI tests.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import attrs
import httpx

BASE = "https://ndcdyn.interactivebrokers.com/AccountManagement/FlexWebService"
STATEMENT_HOST = "https://gdcdyn.interactivebrokers.com/AccountManagement/FlexWebService/GetStatement"
PATH = "/AccountManagement/FlexWebService/"
MESSAGES = {
    "1001": "Statement could not be generated at this time. Please try again shortly.",
    "1003": "Statement is not available.",
    "1004": "Statement is incomplete at this time. Please try again shortly.",
    "1009": "The server is under heavy load. Statement could not be generated at this time. Please try again shortly.",
    "1010": "Legacy Flex Queries are no longer supported. Please convert over to Activity Flex.",
    "1011": "Service account is inactive.",
    "1012": "Token has expired.",
    "1013": "IP restriction.",
    "1014": "Query is invalid.",
    "1015": "Token is invalid.",
    "1016": "Account in invalid.",
    "1017": "Reference code is invalid.",
    "1018": "Too many requests have been made from this token. Please try again shortly.",
    "1019": "Statement generation in progress. Please try again shortly.",
    "1020": "Invalid request or unable to validate request.",
    "1021": "Statement could not be retrieved at this time. Please try again shortly.",
    "1025": "Too many failed attempts. Please review your configuration.",
}


def envelope(status: str, *, code: str | None = None, reference: str | None = None, url: str | None = None) -> bytes:
    parts = ['<FlexStatementResponse timestamp="28 August, 2024 10:37 AM EDT">', f"<Status>{status}</Status>"]
    if reference:
        parts.append(f"<ReferenceCode>{reference}</ReferenceCode>")
    if url:
        parts.append(f"<Url>\n   {url}\n</Url>")  # IB pads the Url with whitespace: clients must strip it
    if code:
        parts.append(f"<ErrorCode>{code}</ErrorCode><ErrorMessage>{MESSAGES.get(code, 'Error.')}</ErrorMessage>")
    parts.append("</FlexStatementResponse>")
    return "\n".join(parts).encode()


@attrs.define
class Request:
    step: str
    params: dict[str, str]
    user_agent: str | None
    at: float


@attrs.define
class FakeFlex:
    """The fake service's state. ``statements``: query id -> XML; ``tokens``: token -> "ok"|error code."""

    statements: dict[str, bytes]
    tokens: dict[str, str] = attrs.field(factory=lambda: {"good-token-1234": "ok"})
    polls: int = 2
    clock: Callable[[], float] = time.time
    statement_url: str | None = STATEMENT_HOST
    enforce_limits: bool = True
    script: deque[tuple[str, str | int, bytes | None]] = attrs.field(factory=deque)
    requests: list[Request] = attrs.field(factory=list)
    arrivals: dict[str, deque[float]] = attrs.field(factory=dict)
    references: dict[str, tuple[str, int]] = attrs.field(factory=dict)
    served: int = 0
    throttled: int = 0
    _next: int = 1000

    def fail_next(self, step: str, answer: str | int, body: bytes | None = None) -> None:
        """Script the next request of ``step`` ("SendRequest"/"GetStatement"/"any"): a Flex code or an HTTP status."""
        self.script.append((step, answer, body))

    def _scripted(self, step: str) -> tuple[str | int, bytes | None] | None:
        for index, (wanted, answer, body) in enumerate(self.script):
            if wanted in (step, "any"):
                del self.script[index]
                return answer, body
        return None

    def _too_fast(self, token: str, now: float) -> bool:
        seen = self.arrivals.setdefault(token, deque())
        while seen and seen[0] <= now - 60:
            seen.popleft()
        recent_second = sum(1 for t in seen if t > now - 1)
        seen.append(now)
        return recent_second >= 1 or len(seen) > 10

    def handle(self, path: str, query: dict[str, str], user_agent: str | None, base: str | None) -> tuple[int, bytes]:
        now = self.clock()
        if "/Universal/servlet/" in path:
            return 200, envelope("Fail", code="1001")
        if not path.startswith(PATH):
            return 404, b"<html><body>Not Found</body></html>"
        step = path[len(PATH) :]
        self.requests.append(Request(step=step, params=dict(query), user_agent=user_agent, at=now))
        token = query.get("t", "")
        if self.enforce_limits and token and self._too_fast(token, now):
            self.throttled += 1
            return 200, envelope("Fail", code="1018")
        scripted = self._scripted(step)
        if scripted is not None:
            answer, body = scripted
            if isinstance(answer, int):
                return answer, body or b""
            return 200, envelope("Warn" if answer == "1019" else "Fail", code=answer)
        if query.get("v") != "3" or not user_agent:
            return 200, envelope("Fail", code="1020")
        state = self.tokens.get(token)
        if state is None:
            return 200, envelope("Fail", code="1015")
        if state != "ok":
            return 200, envelope("Fail", code=state)
        if step == "SendRequest":
            query_id = query.get("q", "")
            if query_id not in self.statements:
                return 200, envelope("Fail", code="1014")
            self._next += 1
            reference = f"{self._next}5550"
            self.references[reference] = (query_id, 0)
            url = self.statement_url
            if base is not None and url == STATEMENT_HOST:
                url = base + "GetStatement"  # on loopback, step 2 is served here too
            return 200, envelope("Success", reference=reference, url=url)
        if step == "GetStatement":
            reference = query.get("q", "")
            if reference not in self.references:
                return 200, envelope("Fail", code="1017")
            query_id, asked = self.references[reference]
            if asked < self.polls:
                self.references[reference] = (query_id, asked + 1)
                return 200, envelope("Warn", code="1019")
            self.served += 1
            return 200, self.statements[query_id]
        return 404, b"<html><body>Not Found</body></html>"

    # -- in-process ----------------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        def handler(request: httpx.Request) -> httpx.Response:
            query = {k: v for k, v in request.url.params.items()}
            status, body = self.handle(request.url.path, query, request.headers.get("User-Agent"), None)
            content_type = "text/html" if body.lstrip().startswith(b"<html") else "text/xml"
            return httpx.Response(status, content=body, headers={"Content-Type": content_type})

        return httpx.MockTransport(handler)

    # -- loopback ------------------------------------------------------------------------------

    @contextmanager
    def serve(self) -> Iterator[str]:
        """Serve on 127.0.0.1 (a free port); yields the base URL to give the plugin."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                base = f"http://127.0.0.1:{self.server.server_address[1]}{PATH}"
                status, body = fake.handle(parts.path, query, self.headers.get("User-Agent"), base)
                self.send_response(status)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}{PATH.rstrip('/')}"
        finally:
            server.shutdown()
            server.server_close()
