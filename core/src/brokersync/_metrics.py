"""Request counters a sync run reports in its audit row."""

from __future__ import annotations

import attrs

__all__ = ["RequestMetrics"]


@attrs.define(kw_only=True)
class RequestMetrics:
    """Counters of the broker traffic of one sync run (or any scope the caller chooses).

    The core HTTP client updates the object it was given; pass one per sync run and read it at
    the end. Mutable on purpose; not shared across threads (one asyncio task tree owns it).

    Attributes:
        requests: HTTP requests sent to the broker (every attempt counts, retries included).
        retries: Attempts that were repeated after a retryable failure.
        rate_limit_waits: Times a request waited for the rate limiter or for a broker's
            ``Retry-After``.
        rate_limit_wait_seconds: Total seconds spent in those waits.
        circuit_openings: Times a request's failure opened the broker's circuit breaker.
    """

    requests: int = 0
    retries: int = 0
    rate_limit_waits: int = 0
    rate_limit_wait_seconds: float = 0.0
    circuit_openings: int = 0

    def record_wait(self, seconds: float) -> None:
        """Count one rate-limit wait of ``seconds`` (ignored when nothing was waited)."""
        if seconds > 0:
            self.rate_limit_waits += 1
            self.rate_limit_wait_seconds += seconds

    def add(self, other: RequestMetrics) -> None:
        """Add ``other``'s counts to this object (to total several runs)."""
        self.requests += other.requests
        self.retries += other.retries
        self.rate_limit_waits += other.rate_limit_waits
        self.rate_limit_wait_seconds += other.rate_limit_wait_seconds
        self.circuit_openings += other.circuit_openings

    def as_dict(self) -> dict[str, int | float]:
        """The counters as a plain dict (for audit rows and JSON output)."""
        return attrs.asdict(self)
