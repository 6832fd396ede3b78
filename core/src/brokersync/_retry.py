"""Retry transient broker failures: exponential backoff with jitter, ``Retry-After`` first.

The loop is driven by ``backoff.aretry_context`` (python-backoff); the delays come from
``backoff.expo``. backoff itself sleeps with ``asyncio.sleep`` and measures with
``time.monotonic``, which tests cannot control, so backoff is asked to wait 0 s and the real wait
happens in our ``on_backoff`` handler on the injected sleep; the overall timeout is measured on
the injected clock.

Decisions, in order, for each failure:

1. not retryable per :func:`~brokersync.errors.classify_error` (auth, 4xx, validation) or the
   caller's ``giveup`` predicate says stop -> the error is raised as is;
2. ``max_retries`` retries already made -> the last error is raised;
3. the broker gave ``Retry-After`` above ``policy.max_retry_after`` -> a
   :class:`~brokersync.errors.BrokerRateLimitError` that says when to come back (no sleeping for an
   hour inside a sync);
4. delay = the broker's ``Retry-After`` when it is positive (jitter only ever adds to it), else the
   exponential delay with +/- ``policy.jitter`` (never below :data:`MIN_DELAY`, so
   ``Retry-After: 0`` or a date in the past is not a hot loop);
5. the delay would end after ``policy.timeout`` from the first attempt -> the last error is raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import attrs
import backoff

from brokersync._clocks import MonotonicClock
from brokersync._log import get_logger
from brokersync._metrics import RequestMetrics
from brokersync.errors import BrokerRateLimitError, ErrorType, classify_error
from brokersync.models import RetryPolicy

__all__ = ["MIN_DELAY", "RetryContext", "retry_delays", "with_retry"]

T = TypeVar("T")

#: The shortest wait between two attempts, whatever the broker says.
MIN_DELAY = 0.1
# Jitter added on top of a broker's Retry-After is at most this many seconds (spreads processes
# that were told the same instant, without distorting the broker's instruction).
_MAX_RETRY_AFTER_JITTER = 1.0


@attrs.define(kw_only=True)
class RetryContext:
    """What :func:`with_retry` needs besides the policy: names for messages, and injected time.

    Attributes:
        operation: What is being retried (for logs), e.g. ``"GET /fill/list"``.
        broker: The broker key, for messages.
        connection_id: The connection, for messages.
        sleep: Awaitable sleep (injected in tests).
        clock: Monotonic seconds (injected in tests).
        random: Returns a float in [0, 1) for jitter (injected in tests).
        metrics: Counters to update (retries, rate-limit waits).
        giveup: Extra predicate: return True to stop retrying an error ``classify_error`` calls
            retryable (the HTTP client stops on an open circuit this way).
    """

    operation: str = "call"
    broker: str | None = None
    connection_id: str | None = None
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: MonotonicClock = time.monotonic
    random: Callable[[], float] = random.random
    metrics: RequestMetrics | None = None
    giveup: Callable[[BaseException], bool] | None = None


def retry_delays(policy: RetryPolicy) -> Iterator[float]:
    """The un-jittered exponential delays of ``policy``: initial, initial*multiplier, ... max_delay."""
    delays = backoff.expo(base=policy.multiplier, factor=policy.initial_delay, max_value=policy.max_delay)
    next(delays)  # backoff's generators yield 0 first (their "initial send")
    return (min(float(d), policy.max_delay) for d in delays)


class _Run:
    """The state of one with_retry call: attempts, the pending delay, the error to raise."""

    def __init__(self, policy: RetryPolicy, context: RetryContext, started: float) -> None:
        self.policy = policy
        self.ctx = context
        self.started = started
        self.tries = 0
        self.delays = retry_delays(policy)
        self.delay = 0.0
        self.rate_limited = False
        self.final: BaseException | None = None
        self.log = get_logger(broker=context.broker, connection_id=context.connection_id)

    def on_try(self, details: Any) -> None:
        self.tries = int(details["tries"])

    def _jittered(self, base: float) -> float:
        spread = self.policy.jitter * (2 * self.ctx.random() - 1)
        return max(MIN_DELAY, min(base * (1 + spread), self.policy.max_delay))

    def giveup(self, exc: BaseException) -> bool:
        """Decide about ``exc``: True stops (``self.final`` is raised), False retries after ``self.delay``."""
        self.final = exc
        classification = classify_error(exc)
        if not classification.retryable or (self.ctx.giveup is not None and self.ctx.giveup(exc)):
            return True
        if self.tries > self.policy.max_retries:
            return True
        computed = next(self.delays)
        retry_after = classification.retry_after
        if retry_after is not None and retry_after > self.policy.max_retry_after:
            self.final = self._too_long(exc, retry_after)
            return True
        if retry_after is not None and retry_after > 0:
            extra = min(retry_after * self.policy.jitter, _MAX_RETRY_AFTER_JITTER) * self.ctx.random()
            self.delay = max(MIN_DELAY, retry_after + extra)
        else:
            self.delay = self._jittered(computed)
        if self.ctx.clock() - self.started + self.delay > self.policy.timeout:
            return True
        self.rate_limited = classification.type is ErrorType.RATE_LIMIT
        return False

    def _too_long(self, exc: BaseException, retry_after: float) -> BrokerRateLimitError:
        who = f"broker {self.ctx.broker!r}" if self.ctx.broker else "the broker"
        error = BrokerRateLimitError(
            f"{who} asks to wait {retry_after:.0f} s before the next request, longer than this "
            f"sync may wait (max_retry_after={self.policy.max_retry_after:.0f} s); stopped after "
            f"{self.tries} attempt(s) of {self.ctx.operation}. Try again after {retry_after:.0f} s.",
            retry_after=retry_after,
            broker=self.ctx.broker or getattr(exc, "broker", None),
            connection_id=self.ctx.connection_id or getattr(exc, "connection_id", None),
            status_code=getattr(exc, "status_code", None),
        )
        error.__cause__ = exc
        return error

    async def on_backoff(self, details: Any) -> None:
        # backoff waits 0 s (see the module docstring); the decided wait happens here.
        metrics = self.ctx.metrics
        if metrics is not None:
            metrics.retries += 1
            if self.rate_limited:
                metrics.record_wait(self.delay)
        self.log.info(
            "retrying {operation} in {delay:.2f} s after attempt {attempt}: {error}",
            operation=self.ctx.operation,
            delay=self.delay,
            attempt=self.tries,
            error=type(self.final).__name__,
        )
        await self.ctx.sleep(self.delay)


async def with_retry(fn: Callable[[], Awaitable[T]], policy: RetryPolicy, context: RetryContext | None = None) -> T:
    """Call ``fn`` until it succeeds, retrying what :func:`~brokersync.classify_error` calls retryable.

    Args:
        fn: The operation; called once per attempt with no arguments.
        policy: Max retries, delays, jitter, overall timeout and the longest ``Retry-After`` to honour.
        context: Names for messages, injected clock/sleep/random, and counters to update.

    Returns:
        What ``fn`` returned on its first successful attempt.

    Raises:
        BrokerRateLimitError: The broker asked to wait longer than ``policy.max_retry_after``.
        Exception: The last error, when it is not retryable or retries or time ran out.
    """
    ctx = context or RetryContext()
    started = ctx.clock()
    try:
        return await fn()  # most calls succeed at once: no retry machinery for them
    except Exception as exc:
        first: Exception | None = exc

    async def replay_then_call() -> T:
        # backoff's first attempt is the failure above (replayed, not sent again).
        nonlocal first
        if first is not None:
            failure, first = first, None
            raise failure
        return await fn()

    run = _Run(policy, ctx, started)
    results: list[T] = []
    attempts = backoff.aretry_context(
        Exception,
        backoff.constant,
        interval=0,
        jitter=None,
        giveup=run.giveup,
        on_try=run.on_try,
        on_backoff=run.on_backoff,
        raise_on_giveup=False,
        logger=None,
    )
    async with contextlib.aclosing(attempts):
        async for attempt in attempts:
            with attempt:
                results.append(await replay_then_call())
    if results:
        return results[0]
    assert run.final is not None  # backoff only stops without a result after giveup()
    raise run.final
