"""Transports for testing plugins: observe every request, inject failures, serve fixed sequences.

:class:`ObservedTransport` wraps the author's fake broker API. It records each request, tells
whether it was sent through the core client (``ctx.http``) or around it, and can answer the next
requests with injected responses (a 429 with ``Retry-After``, a 401, a 5xx) before they reach the
fake. :func:`network_guard` catches requests a plugin sends with its own httpx client.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping

import attrs
import httpx

__all__ = [
    "BypassRecord",
    "ObservedTransport",
    "RecordedRequest",
    "core_request_scope",
    "network_guard",
    "response_sequence",
]

#: True while the core client (as wrapped by the suite) is sending a request for the plugin.
_IN_CORE: contextvars.ContextVar[bool] = contextvars.ContextVar("brokersync_testing_in_core", default=False)


@contextlib.contextmanager
def core_request_scope() -> Iterator[None]:
    """Mark requests sent inside this block as sent through the core client."""
    token = _IN_CORE.set(True)
    try:
        yield
    finally:
        _IN_CORE.reset(token)


@attrs.frozen(kw_only=True)
class RecordedRequest:
    """One request the fake broker API was asked to answer."""

    method: str
    url: str
    via_core: bool
    injected_status: int | None = None


def _as_response(spec: httpx.Response | int | tuple[int, Mapping[str, str]]) -> httpx.Response:
    if isinstance(spec, httpx.Response):
        return spec
    if isinstance(spec, int):
        return httpx.Response(spec, json={"error": f"injected HTTP {spec}"})
    status, headers = spec
    return httpx.Response(status, headers=dict(headers), json={"error": f"injected HTTP {status}"})


class ObservedTransport(httpx.AsyncBaseTransport):
    """Wrap ``inner`` (the fake broker API): record requests, inject responses.

    Args:
        inner: The fake broker API as an httpx async transport (e.g. ``httpx.MockTransport``).
    """

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.requests: list[RecordedRequest] = []
        self._injected: deque[httpx.Response | int | tuple[int, Mapping[str, str]]] = deque()
        self._persistent: httpx.Response | int | tuple[int, Mapping[str, str]] | None = None
        #: End the event loop's step at each request, as a network wait would.
        self.yield_per_request = False

    def inject(self, *responses: httpx.Response | int | tuple[int, Mapping[str, str]]) -> None:
        """Answer the next requests with ``responses`` (a status, ``(status, headers)`` or a Response)."""
        self._injected.extend(responses)

    def inject_always(self, response: httpx.Response | int | tuple[int, Mapping[str, str]] | None) -> None:
        """Answer every following request with ``response`` (``None`` stops)."""
        self._persistent = response

    @property
    def core_requests(self) -> list[RecordedRequest]:
        """Requests that came through the core client."""
        return [r for r in self.requests if r.via_core]

    @property
    def bypassing_requests(self) -> list[RecordedRequest]:
        """Requests that reached the fake without going through the core client."""
        return [r for r in self.requests if not r.via_core]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.yield_per_request:
            await asyncio.sleep(0)
        spec = self._injected.popleft() if self._injected else self._persistent
        via_core = _IN_CORE.get()
        if spec is not None:
            response = _as_response(spec)
            self.requests.append(
                RecordedRequest(
                    method=request.method, url=str(request.url), via_core=via_core, injected_status=response.status_code
                )
            )
            # A fresh Response per request: the same object cannot be read twice.
            return httpx.Response(
                response.status_code, headers=response.headers, content=response.content, request=request
            )
        self.requests.append(RecordedRequest(method=request.method, url=str(request.url), via_core=via_core))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def response_sequence(
    *responses: httpx.Response | int | tuple[int, Mapping[str, str]],
    then: httpx.AsyncBaseTransport | Callable[[httpx.Request], httpx.Response] | None = None,
) -> ObservedTransport:
    """A transport that answers with ``responses`` in order, then hands over to ``then``.

    Use it for "429, then 200" scenarios::

        transport = response_sequence((429, {"Retry-After": "2"}), then=fake_api.transport())

    Args:
        responses: The first answers: a status code, ``(status, headers)`` or an ``httpx.Response``.
        then: What answers afterwards: a transport or a request handler (default: 404 for everything).

    Returns:
        An :class:`ObservedTransport`; its ``requests`` list shows what was asked.
    """
    if then is None:
        inner: httpx.AsyncBaseTransport = httpx.MockTransport(lambda request: httpx.Response(404))
    elif isinstance(then, httpx.AsyncBaseTransport):
        inner = then
    else:
        inner = httpx.MockTransport(then)
    transport = ObservedTransport(inner)
    transport.inject(*responses)
    return transport


@attrs.frozen(kw_only=True)
class BypassRecord:
    """A request a plugin sent with its own httpx client instead of ``ctx.http``."""

    method: str
    url: str


class _BypassError(httpx.TransportError):
    pass


_guard_lock = threading.Lock()


@contextlib.contextmanager
def network_guard(allowed: Iterable[object] = ()) -> Iterator[list[BypassRecord]]:
    """Refuse and record every request sent through httpx's network transports inside the block.

    The suite hands the core client the author's fake transport, so any request that reaches
    httpx's real network transport came from a client the plugin built itself. Transports in
    ``allowed`` (an author's loopback transport) pass through.

    Yields:
        The list the bypassing requests are appended to.
    """
    records: list[BypassRecord] = []
    allowed_ids = {id(t) for t in allowed}
    with _guard_lock:
        original_async = httpx.AsyncHTTPTransport.handle_async_request
        original_sync = httpx.HTTPTransport.handle_request

        async def guarded_async(self: httpx.AsyncHTTPTransport, request: httpx.Request) -> httpx.Response:
            if id(self) in allowed_ids:
                return await original_async(self, request)
            records.append(BypassRecord(method=request.method, url=str(request.url)))
            raise _BypassError(
                f"brokersync conformance: {request.method} {request.url} was sent with the plugin's own "
                "httpx client; send every request through ctx.http"
            )

        def guarded_sync(self: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
            if id(self) in allowed_ids:
                return original_sync(self, request)
            records.append(BypassRecord(method=request.method, url=str(request.url)))
            raise _BypassError(
                f"brokersync conformance: {request.method} {request.url} was sent with the plugin's own "
                "httpx client; send every request through ctx.http"
            )

        httpx.AsyncHTTPTransport.handle_async_request = guarded_async  # type: ignore[method-assign]
        httpx.HTTPTransport.handle_request = guarded_sync  # type: ignore[method-assign]
        try:
            yield records
        finally:
            httpx.AsyncHTTPTransport.handle_async_request = original_async  # type: ignore[method-assign]
            httpx.HTTPTransport.handle_request = original_sync  # type: ignore[method-assign]
