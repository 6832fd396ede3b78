"""Keep-alive connections shared by every HTTP client of one :class:`~brokersync.Resilience`.

Each sync gets its own :class:`~brokersync._http.BrokerHttpClient` (its own headers, cookies,
limiter and metrics), but opening a network transport per client costs a TLS context (reading the
system's certificate bundle: tens of milliseconds of CPU) and a new TCP and TLS handshake per sync.
So the clients of one ``Resilience`` borrow their connections from one pool per event loop: a
thousand scheduled syncs to one broker reuse a few dozen kept-alive connections.

Proxies are honoured as httpx honours them (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``,
``NO_PROXY``), decided once per scheme and host; certificate settings (``SSL_CERT_FILE``,
``SSL_CERT_DIR``) apply to the pooled transports.
"""

from __future__ import annotations

import asyncio
import threading
import urllib.request
import weakref
from typing import Any

import httpx

__all__ = ["ConnectionPools"]

# No cap on connections (the engine's concurrency bounds them), a generous number kept alive so a
# burst of scheduled syncs reuses them, and httpx's default idle expiry.
_LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=200, keepalive_expiry=5.0)


def _environment_proxy(scheme: str, host: str) -> str | None:
    proxies = urllib.request.getproxies()
    proxy = proxies.get(scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


class ConnectionPools:
    """Network transports shared by many clients: one per proxy, per running event loop.

    A pooled connection belongs to the event loop that opened it, so each loop gets its own
    transports; :meth:`aclose` closes those of the calling loop.
    """

    def __init__(self, limits: httpx.Limits = _LIMITS) -> None:
        self._limits = limits
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str | None, Any]] = (
            weakref.WeakKeyDictionary()
        )
        self._proxies: dict[tuple[str, str], str | None] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ConnectionPools(loops={len(self._by_loop)})"

    def transport(self) -> httpx.AsyncBaseTransport:
        """A transport for one client: it sends through the shared pools and closes nothing."""
        return _Borrowed(self)

    def transport_for(self, url: httpx.URL) -> httpx.AsyncBaseTransport:
        key = (url.scheme, url.host)
        if key not in self._proxies:
            self._proxies[key] = _environment_proxy(*key)
        proxy = self._proxies[key]
        loop = asyncio.get_running_loop()
        with self._lock:
            transports = self._by_loop.setdefault(loop, {})
            transport = transports.get(proxy)
            if transport is None:
                transport = httpx.AsyncHTTPTransport(limits=self._limits, proxy=proxy, trust_env=True)
                transports[proxy] = transport
        return transport

    async def aclose(self) -> None:
        """Close the pooled connections of the running event loop."""
        with self._lock:
            transports = self._by_loop.pop(asyncio.get_running_loop(), {})
        for transport in transports.values():
            await transport.aclose()


class _Borrowed(httpx.AsyncBaseTransport):
    # Sends through httpx's network transports, which report when a request is written (the core
    # client then takes the rate-limit slot at that moment, see brokersync._http._SendSlot).
    reports_send_time = True

    def __init__(self, pools: ConnectionPools) -> None:
        self._pools = pools

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._pools.transport_for(request.url).handle_async_request(request)

    async def aclose(self) -> None:
        return  # the pools outlive any one client: Resilience.aclose closes them
