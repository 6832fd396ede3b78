"""A circuit breaker: stop calling a broker that keeps failing, probe it again after a pause.

States::

    CLOSED     calls go through; consecutive failures are counted
      │ failure_threshold consecutive failures
      ▼
    OPEN       calls fail fast with BrokerUnavailableError(retry_after=...) until reset_timeout passed
      │ reset_timeout elapsed
      ▼
    HALF_OPEN  one probe call goes through (others fail fast): success -> CLOSED, failure -> OPEN

Only failures that say "the broker is down" count: server errors (5xx), network errors and
timeouts. An auth error, a 4xx or a 429 is an answer from a working broker, so it counts as a
success for the breaker (the retry policy and the rate limiter deal with those).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from brokersync._clocks import MonotonicClock
from brokersync.errors import BrokerNetworkError, BrokerServerError, BrokerUnavailableError

__all__ = ["CircuitBreaker", "CircuitState", "counts_as_failure"]

T = TypeVar("T")


class CircuitState(enum.StrEnum):
    """The state of a :class:`CircuitBreaker`."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


def counts_as_failure(exc: BaseException) -> bool:
    """Whether ``exc`` means the broker is failing (5xx, unreachable, timed out)."""
    return isinstance(exc, BrokerServerError | BrokerNetworkError)


class CircuitBreaker:
    """Fail fast while a broker is failing; let one probe through after ``reset_timeout``.

    Args:
        failure_threshold: Consecutive failures that open the circuit.
        reset_timeout: Seconds the circuit stays open before a probe is allowed.
        broker: The broker key (for error messages).
        connection_id: The connection, for a per-connection breaker.
        clock: Monotonic seconds (injected in tests).
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_timeout: float = 60.0,
        *,
        broker: str | None = None,
        connection_id: str | None = None,
        clock: MonotonicClock = time.monotonic,
    ) -> None:
        if isinstance(failure_threshold, bool) or not isinstance(failure_threshold, int) or failure_threshold < 1:
            raise ValueError(f"CircuitBreaker failure_threshold must be an integer >= 1, got {failure_threshold!r}")
        if isinstance(reset_timeout, bool) or not isinstance(reset_timeout, int | float) or reset_timeout <= 0:
            raise ValueError(
                f"CircuitBreaker reset_timeout must be a positive number of seconds, got {reset_timeout!r}"
            )
        self.failure_threshold = failure_threshold
        self.reset_timeout = float(reset_timeout)
        self.broker = broker
        self.connection_id = connection_id
        self._clock = clock
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False
        self.openings = 0

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker(broker={self.broker!r}, connection_id={self.connection_id!r}, "
            f"state={self.state.value!r}, failures={self._failures})"
        )

    @property
    def state(self) -> CircuitState:
        """The current state (an open circuit turns half-open once ``reset_timeout`` has passed)."""
        if self._state is CircuitState.OPEN and self._clock() - self._opened_at >= self.reset_timeout:
            self._state = CircuitState.HALF_OPEN
            self._probe_in_flight = False
        return self._state

    @property
    def failures(self) -> int:
        """Consecutive failures counted so far."""
        return self._failures

    @property
    def retry_after(self) -> float:
        """Seconds until the circuit lets a probe through (0 when calls go through now)."""
        state = self.state
        if state is CircuitState.OPEN:
            return max(0.0, self._opened_at + self.reset_timeout - self._clock())
        if state is CircuitState.HALF_OPEN and self._probe_in_flight:
            return self.reset_timeout
        return 0.0

    def before_call(self) -> None:
        """Let a call through or fail fast.

        Raises:
            BrokerUnavailableError: The circuit is open (or half-open with a probe in flight);
                ``retry_after`` says when to try again.
        """
        state = self.state
        if state is CircuitState.CLOSED:
            return
        if state is CircuitState.HALF_OPEN and not self._probe_in_flight:
            self._probe_in_flight = True
            return
        wait = self.retry_after
        who = f"broker {self.broker!r}" + (f" (connection {self.connection_id})" if self.connection_id else "")
        raise BrokerUnavailableError(
            f"{who} failed {self.failure_threshold} times in a row; requests are paused for "
            f"{wait:.0f} s (circuit {state.value}). The sync will be retried later.",
            retry_after=wait,
            broker=self.broker,
            connection_id=self.connection_id,
        )

    def record(self, exc: BaseException | None) -> bool:
        """Record a call's outcome (``None`` = success). Returns whether this opened the circuit."""
        if exc is not None and not isinstance(exc, Exception):
            # Cancelled or interrupted: says nothing about the broker. Free the probe slot.
            self._probe_in_flight = False
            return False
        if exc is None or not counts_as_failure(exc):
            # The broker answered (even a 4xx or a 429 is an answer): it is up.
            self._state = CircuitState.CLOSED
            self._failures = 0
            self._probe_in_flight = False
            return False
        if self.state is CircuitState.OPEN:
            # A call that started before the circuit opened: already counted, do not re-open.
            return False
        self._failures += 1
        if self._state is CircuitState.HALF_OPEN or self._failures >= self.failure_threshold:
            self._state = CircuitState.OPEN
            self._opened_at = self._clock()
            self._probe_in_flight = False
            self.openings += 1
            return True
        return False

    def reset(self) -> None:
        """Close the circuit and forget the failures (e.g. after an operator fixed the cause)."""
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._probe_in_flight = False

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn`` through the breaker: fail fast when open, record the outcome otherwise."""
        self.before_call()
        try:
            result = await fn()
        except BaseException as exc:
            self.record(exc)
            raise
        self.record(None)
        return result
