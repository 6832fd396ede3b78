"""Broker facades for the engine: the registry's facade, sending through the engine's resilience."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from brokersync._clocks import Sleep, WallClock

if TYPE_CHECKING:
    import httpx

    from brokersync._broker import Broker
    from brokersync._metrics import RequestMetrics
    from brokersync._registry import BrokerRegistry
    from brokersync._resilience import Resilience

__all__ = ["BrokerFactory"]


class BrokerFactory:
    """Makes the facade of one connection's broker.

    Args:
        registry: Returns where brokers come from (built on first use).
        resilience: Returns the rate limits, circuits and retries every request goes through.
        clock: The wall clock handed to plugins.
        sleep: The sleep handed to plugins (``None``: asyncio's).
        transports: Per broker key, an httpx transport (tests).
        base_urls: Per broker key, a base URL overriding the metadata's.
    """

    def __init__(
        self,
        *,
        registry: Callable[[], BrokerRegistry],
        resilience: Callable[[], Resilience],
        clock: WallClock,
        sleep: Sleep | None,
        transports: Mapping[str, httpx.AsyncBaseTransport],
        base_urls: Mapping[str, str],
    ) -> None:
        self._registry = registry
        self._resilience = resilience
        self._clock = clock
        self._sleep = sleep
        self._transports = dict(transports)
        self._base_urls = dict(base_urls)

    def facade(self, key: str, environment: str | None, connection_id: str, metrics: RequestMetrics | None) -> Broker:
        """The facade of broker ``key`` for ``connection_id``, counting its requests in ``metrics``."""
        options: dict[str, Any] = {"environment": environment, "connection_id": connection_id, "clock": self._clock}
        if self._sleep is not None:
            options["sleep"] = self._sleep
        if key in self._transports:
            options["transport"] = self._transports[key]
        if key in self._base_urls:
            options["base_url"] = self._base_urls[key]
        resilience = self._resilience()
        # Per-account limits (scope="account") count per connection: one login's budget at the broker.
        options["http"] = lambda broker: resilience.client_for(broker, metrics=metrics, account_id=connection_id)
        return self._registry().get(key, **options)
