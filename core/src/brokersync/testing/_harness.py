"""The machinery behind the conformance suite: one broker facade wired to an observed fake API.

A :class:`Scenario` is one :class:`~brokersync.Broker` built through a private
:class:`~brokersync.BrokerRegistry` (the plugin object, or its entry point), whose ``ctx.http`` is
the core's resilient client (limiter, circuit breaker, retry, error mapping, request counters) on a
virtual clock, wrapped so the suite can tell core traffic from bypassing traffic, detect paging
loops, and record rate-limit waits on an injected sleep.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from brokersync._metrics import RequestMetrics
from brokersync._paging import PagingMixin
from brokersync._registry import BrokerRegistry
from brokersync.errors import PluginError
from brokersync.models import Account, AuthResult, Trade
from brokersync.testing._clock import FakeClock
from brokersync.testing._rules import ConformanceFailure
from brokersync.testing._transport import BypassRecord, ObservedTransport, core_request_scope

if TYPE_CHECKING:
    import httpx

    from brokersync._broker import Broker, RecordError
    from brokersync._context import HttpClient

__all__ = ["Fetch", "GuardedHttp", "Scenario", "fetch_trades", "load_registry"]

_FINGERPRINT_KEYS = ("params", "json", "data", "content")


class GuardedHttp(PagingMixin):
    """The core client as the plugin sees it in the suite: marks core traffic, stops paging loops.

    Args:
        inner: The core client.
        broker: The broker key (for messages).
        max_requests: Most requests one ``get_trades`` call may send.
    """

    def __init__(self, inner: HttpClient, *, broker: str, max_requests: int) -> None:
        self.inner = inner
        self.broker = broker
        self.max_requests = max_requests
        self.calls = 0
        self.loop: ConformanceFailure | None = None
        self._seen: dict[tuple[str, ...], int] | None = None

    def begin_fetch(self) -> None:
        """Start watching for repeated requests (one ``get_trades`` call)."""
        self._seen = {}

    def end_fetch(self) -> None:
        """Stop watching."""
        self._seen = None

    def _watch(self, method: str, url: str, kwargs: Mapping[str, Any]) -> None:
        if self._seen is None:
            return
        key = (method.upper(), str(url), *(repr(kwargs.get(k)) for k in _FINGERPRINT_KEYS))
        if key in self._seen:
            params = kwargs.get("params")
            self.loop = ConformanceFailure(
                "pagination-terminates",
                self.broker,
                f"request #{len(self._seen) + 1} of one get_trades call repeats request #{self._seen[key]}: "
                f"{method.upper()} {url} params={params!r}; the plugin is paging in a loop (the cursor or "
                "page number does not advance, or the end of the data is not detected)",
            )
            raise self.loop
        if len(self._seen) >= self.max_requests:
            self.loop = ConformanceFailure(
                "pagination-terminates",
                self.broker,
                f"one get_trades call sent more than {self.max_requests} requests (last: {method.upper()} {url}); "
                "raise max_requests_per_fetch if the fake really serves that many pages",
            )
            raise self.loop
        self._seen[key] = len(self._seen) + 1

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send a request through the core client."""
        self._watch(method, url, kwargs)
        self.calls += 1
        with core_request_scope():
            return await self.inner.request(method, url, **kwargs)

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        """Send a GET request."""
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        """Send a POST request."""
        return await self.request("POST", url, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def aclose(self) -> None:
        """Close the core client."""
        closer = getattr(self.inner, "aclose", None)
        if closer is not None:
            await closer()


def _core_client(
    broker: Broker, transport: ObservedTransport, sleep: Callable[[float], Awaitable[None]], metrics: RequestMetrics
) -> HttpClient:
    """The core's resilient client for ``broker``, on a private memory limiter and a virtual clock.

    The suite's ``sleep`` records waits without sleeping; the clock advances by each wait, so the
    limiter, circuit breaker and retry budget see the time pass.
    """
    from brokersync._resilience import Resilience

    fake = FakeClock(dt.datetime.now(dt.UTC))

    async def virtual_sleep(seconds: float) -> None:
        await fake.sleep(seconds)
        await sleep(seconds)

    resilience = Resilience(clock=fake.monotonic, wall_clock=fake, sleep=virtual_sleep)
    return resilience.client_for(broker, transport=transport, metrics=metrics)


def load_registry(key: str, plugin: Any) -> BrokerRegistry:
    """A private registry holding broker ``key``: ``plugin`` when given, else its entry point.

    Raises:
        PluginError: The plugin does not load or does not satisfy the contract.
    """
    if plugin is not None:
        registry = BrokerRegistry(entry_points=False)
        registry.register(key, plugin)
        return registry
    registry = BrokerRegistry(allow=[key])
    failure = next((f for f in registry.failures() if f.key == key), None)
    if failure is not None:
        raise PluginError(failure.error, broker=key)
    if not registry.is_supported(key):
        raise PluginError(f"no installed plugin provides broker {key!r} (entry point group 'brokersync.brokers')")
    return registry


@attrs.define
class Scenario:
    """One broker facade on one observed fake API, with the injected sleep's record."""

    broker: Broker
    transport: ObservedTransport
    sleeps: list[float]
    http: GuardedHttp | None = None
    bypasses: list[BypassRecord] = attrs.field(factory=list)
    metrics: RequestMetrics = attrs.field(factory=RequestMetrics)

    @classmethod
    def build(
        cls,
        registry: BrokerRegistry,
        key: str,
        fake: httpx.AsyncBaseTransport,
        *,
        environment: str | None,
        clock: Callable[[], dt.datetime],
        max_requests: int,
    ) -> Scenario:
        """Build the facade for ``key`` whose requests reach ``fake`` through the core client."""
        transport = ObservedTransport(fake)
        sleeps: list[float] = []

        async def sleep(seconds: float) -> None:
            sleeps.append(seconds)

        holder: dict[str, GuardedHttp] = {}
        metrics = RequestMetrics()

        def http_factory(broker: Broker) -> HttpClient:
            core = _core_client(broker, transport, sleep, metrics)
            guarded = GuardedHttp(core, broker=key, max_requests=max_requests)
            holder["http"] = guarded
            return guarded

        broker = registry.get(key, environment=environment, http=http_factory, clock=clock, sleep=sleep)
        scenario = cls(broker=broker, transport=transport, sleeps=sleeps, metrics=metrics)
        _ = broker.http  # build the client now, so the scenario can see it
        scenario.http = holder["http"]
        return scenario

    @property
    def key(self) -> str:
        """The broker key."""
        return self.broker.key

    async def authenticate(self, credentials: Mapping[str, Any], rule: str) -> AuthResult:
        """Authenticate, turning any failure into a failure of ``rule``."""
        try:
            return await self.broker.authenticate(credentials)
        except ConformanceFailure:
            raise
        except Exception as exc:
            raise ConformanceFailure(
                rule, self.key, f"authenticate() with the valid credentials failed: {type(exc).__name__}: {exc}"
            ) from exc

    async def accounts(self, auth: AuthResult, rule: str) -> list[Account]:
        """List accounts, turning any failure into a failure of ``rule``."""
        try:
            accounts = await self.broker.get_accounts(auth)
        except ConformanceFailure:
            raise
        except Exception as exc:
            raise ConformanceFailure(rule, self.key, f"get_accounts() failed: {type(exc).__name__}: {exc}") from exc
        if not accounts:
            raise ConformanceFailure(rule, self.key, "get_accounts() returned no account; the fake must serve one")
        return accounts

    async def aclose(self) -> None:
        """Close the facade and its client."""
        await self.broker.aclose()


@attrs.define
class Fetch:
    """Everything one ``get_trades`` call produced for one account."""

    account: Account
    trades: list[Trade] = attrs.field(factory=list)
    errors: list[RecordError] = attrs.field(factory=list)
    cursors: list[str | None] = attrs.field(factory=list)

    @property
    def last_cursor(self) -> str | None:
        """The last non-empty cursor the plugin returned."""
        return next((c for c in reversed(self.cursors) if c is not None), None)


async def fetch_trades(
    scenario: Scenario,
    auth: AuthResult,
    account: Account,
    *,
    rule: str,
    since: dt.datetime | None = None,
    cursor: str | None = None,
) -> Fetch:
    """Run one ``get_trades`` call to the end, watching for paging loops.

    Raises:
        ConformanceFailure: for ``rule`` when the call fails, or for ``pagination-terminates``.
    """
    result = Fetch(account=account)
    http = scenario.http
    if http is not None:
        http.begin_fetch()
    try:
        async for batch in scenario.broker.iter_trades(auth, account, since=since, cursor=cursor):
            result.trades.extend(batch.trades)
            result.errors.extend(batch.errors)
            result.cursors.append(batch.cursor)
    except ConformanceFailure:
        raise
    except Exception as exc:
        if http is not None and http.loop is not None:
            raise http.loop from exc
        where = f"get_trades(account={account.id!r}, since={since.isoformat() if since else None}, cursor={cursor!r})"
        raise ConformanceFailure(rule, scenario.key, f"{where} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        if http is not None:
            http.end_fetch()
    if http is not None and http.loop is not None:
        # The plugin swallowed the loop error; the loop still happened.
        raise http.loop
    return result
