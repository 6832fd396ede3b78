"""The mechanics under every broker request: rate limiters, circuit breakers, retries.

Most integrators only hand a :class:`~brokersync.Resilience` to :class:`~brokersync.BrokerSync`
(both exported from :mod:`brokersync`). This module is for code that drives the mechanics
itself: a rate limiter around a call of its own, a circuit breaker's state, the retry helper.

Until brokersync 0.x+1 these names are also importable from :mod:`brokersync`, with a
``DeprecationWarning``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from brokersync._circuit import CircuitBreaker, CircuitState
from brokersync._exports import show_as
from brokersync._http import BrokerHttpClient
from brokersync._ratelimit import LimiterBackend, RateLimiter, RateLimitStatus
from brokersync._registry import get_registry
from brokersync._resilience import Resilience, get_default_resilience, set_default_resilience
from brokersync._retry import RetryContext, with_retry
from brokersync.errors import BrokerRateLimitError, ConfigurationError, PluginError
from brokersync.models import BrokerMetadata, RateLimit

__all__ = [
    "BrokerHttpClient",
    "CircuitBreaker",
    "CircuitState",
    "RateLimitStatus",
    "RateLimiter",
    "Resilience",
    "RetryContext",
    "create_rate_limiter",
    "get_default_resilience",
    "set_default_resilience",
    "with_rate_limit",
    "with_retry",
]

T = TypeVar("T")


def _metadata(broker: str | BrokerMetadata) -> str | BrokerMetadata:
    """Return the broker's metadata when it is installed (its declared limits apply), else the key."""
    if not isinstance(broker, str):
        return broker
    try:
        return get_registry().metadata(broker)
    except (ConfigurationError, PluginError):  # not installed, or failed to load: no declared limits
        return broker


def create_rate_limiter(
    broker: str | BrokerMetadata,
    account_id: str | None = None,
    *,
    limit: RateLimit | None = None,
    backend: LimiterBackend | None = None,
) -> RateLimiter:
    """Make a sliding-window rate limiter for ``broker`` (per account with ``account_id``).

    Args:
        broker: The broker key or metadata; its declared ``rate_limits`` apply unless configured
            otherwise in the default :class:`Resilience`.
        account_id: The broker account, for ``scope="account"`` limits.
        limit: Enforce this limit instead.
        backend: The store (default: the default :class:`Resilience`'s, in memory).

    Returns:
        A limiter with ``acquire()``, ``check_limit()`` and ``status()``.
    """
    resilience = get_default_resilience()
    resolved = _metadata(broker)
    if backend is None:
        return resilience.limiter(resolved, account_id, limit=limit)
    key = resolved if isinstance(resolved, str) else resolved.key
    limits = (limit,) if limit is not None else resilience.rate_limits(resolved)
    return RateLimiter(broker=key, limits=limits, backend=backend, account_id=account_id)


async def with_rate_limit(
    broker: str | BrokerMetadata, fn: Callable[[], Awaitable[T]], account_id: str | None = None
) -> T:
    """Wait for a slot of ``broker``'s limiter, then call ``fn``.

    A :class:`~brokersync.BrokerRateLimitError` from ``fn`` (a broker's 429 or penalty) pauses
    the key for ``retry_after`` seconds, for every process sharing the store, and is re-raised.
    """
    limiter = create_rate_limiter(broker, account_id)
    await limiter.acquire()
    try:
        return await fn()
    except BrokerRateLimitError as exc:
        await limiter.pause(exc.retry_after if exc.retry_after else 1.0)
        raise


for _name in __all__:
    if _name != "Resilience":  # exported from the package root, shown there
        show_as(globals()[_name], __name__)
