"""One object that makes broker traffic safe: limiter store, circuit breakers, policies, time.

An engine holds one :class:`Resilience` and asks it for each broker facade's HTTP client::

    resilience = Resilience(redis="redis://localhost:6379/0")
    broker = get_broker("tradovate", http=lambda b: resilience.client_for(b, metrics=run_metrics))

A facade built without ``http=`` uses :func:`get_default_resilience` (memory store), so even
``get_broker(...)`` used directly is rate limited, retried and circuit-broken.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from brokersync._circuit import CircuitBreaker
from brokersync._clocks import MonotonicClock, WallClock
from brokersync._http import BrokerHttpClient
from brokersync._metrics import RequestMetrics
from brokersync._pool import ConnectionPools
from brokersync._ratelimit import LimiterBackend, MemoryBackend, RateLimiter
from brokersync.models import BrokerMetadata, RateLimit, RetryPolicy

if TYPE_CHECKING:
    import httpx
    import redis.asyncio as aioredis

    from brokersync._reauth import TokenSession

__all__ = ["BrokerEndpoint", "Resilience", "get_default_resilience", "set_default_resilience"]


class BrokerEndpoint(Protocol):
    """What :meth:`Resilience.client_for` needs of a broker facade (:class:`~brokersync.Broker` is one)."""

    @property
    def key(self) -> str: ...

    @property
    def metadata(self) -> BrokerMetadata: ...

    @property
    def base_url(self) -> str: ...

    @property
    def connection_id(self) -> str | None: ...

    @property
    def transport(self) -> httpx.AsyncBaseTransport | None: ...

    @property
    def token_session(self) -> TokenSession: ...

    def validate_response(self, response: httpx.Response) -> Awaitable[None] | None: ...


def _check_limits(broker: str, value: Any) -> tuple[RateLimit, ...]:
    limits = (value,) if isinstance(value, RateLimit) else value
    if isinstance(limits, str | bytes | Mapping) or not isinstance(limits, Sequence):
        raise TypeError(f"rate_limits[{broker!r}] must be a RateLimit or a list of them, got {type(value).__name__}")
    for index, limit in enumerate(limits):
        if not isinstance(limit, RateLimit):
            raise TypeError(f"rate_limits[{broker!r}][{index}] must be a RateLimit, got {type(limit).__name__}")
    return tuple(limits)


class Resilience:
    """Rate limiter store, circuit breakers and retry policies shared by every client it makes.

    Args:
        redis: A Redis URL or ``redis.asyncio.Redis`` client: share limits across processes and
            hosts. Default: limits kept in this process's memory.
        backend: A ready limiter store instead of ``redis`` (tests, custom stores).
        rate_limits: Broker key -> limits replacing the broker's declared ones (configuration).
        retry: Broker key -> retry policy replacing the broker's declared one.
        circuit_failure_threshold: Consecutive failures that open a circuit.
        circuit_reset_timeout: Seconds an open circuit waits before a probe.
        circuit_per_connection: One circuit per connection instead of one per broker.
        clock: Monotonic seconds, injected in tests (limiter windows, circuits, retry budget).
        wall_clock: The wall clock (tz-aware ``datetime``) for ``Retry-After`` dates and
            rate-limit resets; default: ``clock`` when given (tests), else the system time.
        sleep: Awaitable sleep, injected in tests.
        key_prefix: Prefix of the limiter's store keys.
        redis_retry_interval: Seconds between attempts to reach Redis again during an outage.
        share_connections: Clients without a transport of their own send through keep-alive
            connection pools shared by every client of this object (one per event loop), instead
            of opening a transport (a TLS context and new connections) per client. Closed by
            :meth:`aclose`.
    """

    def __init__(
        self,
        *,
        redis: str | aioredis.Redis | None = None,
        backend: LimiterBackend | None = None,
        rate_limits: Mapping[str, RateLimit | Sequence[RateLimit]] | None = None,
        retry: Mapping[str, RetryPolicy] | None = None,
        circuit_failure_threshold: int = 5,
        circuit_reset_timeout: float = 60.0,
        circuit_per_connection: bool = False,
        clock: MonotonicClock | None = None,
        wall_clock: WallClock | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        key_prefix: str = "brokersync",
        redis_retry_interval: float = 5.0,
        share_connections: bool = True,
    ) -> None:
        if redis is not None and backend is not None:
            raise ValueError("Resilience takes either redis= or backend=, not both")
        self._rate_limits = {key: _check_limits(key, value) for key, value in (rate_limits or {}).items()}
        self._retry = dict(retry or {})
        for key, policy in self._retry.items():
            if not isinstance(policy, RetryPolicy):
                raise TypeError(f"retry[{key!r}] must be a RetryPolicy, got {type(policy).__name__}")
        # Validate now, so a bad configuration fails here and not on the first failing request.
        CircuitBreaker(circuit_failure_threshold, circuit_reset_timeout)
        self._threshold = circuit_failure_threshold
        self._reset_timeout = circuit_reset_timeout
        self._per_connection = circuit_per_connection
        self._clock = clock
        self._wall_seconds: Callable[[], float] = (
            (lambda: wall_clock().timestamp()) if wall_clock is not None else clock or time.time
        )
        self._sleep = sleep
        self._prefix = key_prefix
        if backend is None:
            if redis is not None:
                from brokersync._ratelimit._redis import RedisBackend

                backend = RedisBackend(redis, retry_interval=redis_retry_interval, clock=clock or time.monotonic)
            else:
                backend = MemoryBackend(clock=clock or time.time)
        self.backend: LimiterBackend = backend
        self._circuits: dict[tuple[str, str | None], CircuitBreaker] = {}
        self._lock = threading.Lock()
        self._pools = ConnectionPools() if share_connections else None

    def __repr__(self) -> str:
        return f"Resilience(backend={type(self.backend).__name__}, circuits={len(self._circuits)})"

    def rate_limits(self, broker: str | BrokerMetadata) -> tuple[RateLimit, ...]:
        """The limits applied to ``broker``: configured ones, else the broker's declared ones."""
        key, metadata = _resolve(broker)
        if key in self._rate_limits:
            return self._rate_limits[key]
        return tuple(metadata.rate_limits) if metadata is not None else ()

    def retry_policy(self, broker: str | BrokerMetadata) -> RetryPolicy:
        """The retry policy of ``broker``: the configured one, else the broker's declared one."""
        key, metadata = _resolve(broker)
        if key in self._retry:
            return self._retry[key]
        return metadata.retry if metadata is not None else RetryPolicy()

    def limiter(
        self, broker: str | BrokerMetadata, account_id: str | None = None, *, limit: RateLimit | None = None
    ) -> RateLimiter:
        """A rate limiter for ``broker`` (per account for ``scope="account"`` limits) on this store.

        Args:
            broker: The broker key or metadata.
            account_id: The broker account, for per-account limits.
            limit: Use this limit instead of the configured or declared ones.
        """
        key, _ = _resolve(broker)
        limits = (limit,) if limit is not None else self.rate_limits(broker)
        return RateLimiter(
            broker=key,
            limits=limits,
            backend=self.backend,
            account_id=account_id,
            sleep=self._sleep_fn(),
            prefix=self._prefix,
        )

    def circuit(self, broker: str, connection_id: str | None = None) -> CircuitBreaker:
        """The circuit breaker of ``broker`` (of the connection, with ``circuit_per_connection``)."""
        scope = connection_id if self._per_connection else None
        with self._lock:
            breaker = self._circuits.get((broker, scope))
            if breaker is None:
                breaker = self._new_circuit(broker, scope)
                self._circuits[(broker, scope)] = breaker
            return breaker

    def _new_circuit(self, broker: str, connection_id: str | None) -> CircuitBreaker:
        return CircuitBreaker(
            self._threshold,
            self._reset_timeout,
            broker=broker,
            connection_id=connection_id,
            clock=self._clock or time.monotonic,
        )

    def circuits(self) -> dict[tuple[str, str | None], CircuitBreaker]:
        """Every circuit breaker made so far, by (broker, connection or None): their state is visible."""
        with self._lock:
            return dict(self._circuits)

    def client_for(
        self,
        broker: BrokerEndpoint,
        *,
        metrics: RequestMetrics | None = None,
        account_id: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        own_circuit: bool = False,
    ) -> BrokerHttpClient:
        """The core HTTP client for a broker facade: limiter -> circuit -> retry -> timeout -> errors -> log.

        Args:
            broker: The facade (its key, metadata, base URL, connection, plugin checks, transport).
            metrics: Counters the client updates (e.g. one object per sync run).
            account_id: Count ``scope="account"`` limits for this broker account. Without one they
                are counted per connection (one set of credentials: brokers limit per user), or
                per broker when the facade has no connection either.
            transport: Use this transport instead of the facade's.
            own_circuit: Give the client a circuit breaker of its own instead of the shared one
                (a facade's default client does, so unrelated direct users of one broker do not
                trip each other's breaker; an engine's clients share theirs).
        """
        policy = self.retry_policy(broker.metadata)
        if account_id is None and broker.connection_id is not None:
            account_id = f"connection:{broker.connection_id}"
        if transport is None:
            transport = broker.transport
        if transport is None and self._pools is not None:
            transport = self._pools.transport()
        return BrokerHttpClient(
            broker=broker.key,
            base_url=broker.base_url,
            transport=transport,
            timeout=policy.request_timeout,
            validate_response=broker.validate_response,
            connection_id=broker.connection_id,
            limiter=self.limiter(broker.metadata, account_id),
            circuit=self._new_circuit(broker.key, broker.connection_id)
            if own_circuit
            else self.circuit(broker.key, broker.connection_id),
            retry=policy,
            metrics=metrics,
            sleep=self._sleep_fn(),
            clock=self._clock or time.monotonic,
            wall_clock=self._wall_seconds,
            tokens=broker.token_session,
        )

    def _sleep_fn(self) -> Callable[[float], Awaitable[None]]:
        if self._sleep is not None:
            return self._sleep
        import asyncio

        return asyncio.sleep

    async def aclose(self) -> None:
        """Release the limiter store's connections and this event loop's pooled HTTP connections."""
        if self._pools is not None:
            await self._pools.aclose()
        await self.backend.aclose()


def _resolve(broker: str | BrokerMetadata) -> tuple[str, BrokerMetadata | None]:
    # A key alone has no declared limits here: callers that know the registry resolve it first
    # (see brokersync.resilience.create_rate_limiter), so this module never looks a broker up.
    if isinstance(broker, BrokerMetadata):
        return broker.key, broker
    if not isinstance(broker, str):
        raise TypeError(f"broker must be a broker key or BrokerMetadata, got {type(broker).__name__}")
    return broker, None


_default: Resilience | None = None
_default_lock = threading.Lock()


def get_default_resilience() -> Resilience:
    """The process-wide :class:`Resilience` (memory store) used by facades built without ``http=``."""
    global _default
    with _default_lock:
        if _default is None:
            # Nobody closes the process-wide object: its clients keep transports of their own,
            # closed with each facade, rather than pooled connections left open at exit.
            _default = Resilience(share_connections=False)
        return _default


def set_default_resilience(resilience: Resilience | None) -> None:
    """Replace the process-wide :class:`Resilience` (``None``: a fresh memory one on next use)."""
    global _default
    if resilience is not None and not isinstance(resilience, Resilience):
        raise TypeError(f"expected a Resilience, got {type(resilience).__name__}")
    with _default_lock:
        _default = resilience
