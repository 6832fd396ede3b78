"""The rate limiter one broker (or broker account) uses, over a shared store.

A broker declares its limits in :attr:`BrokerMetadata.rate_limits`. Limits named ``"default"``
apply to every request; a limit with another name (e.g. ``"auth"``) applies, on top of the
default ones, to requests that ask for it (``ctx.http.post(url, rate_limit="auth")``). A limit
with ``scope="account"`` is counted per broker account when the limiter has an ``account_id``;
a ``scope="broker"`` limit is shared by every connection of the broker.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import NamedTuple
from urllib.parse import quote

from brokersync._ratelimit._backend import Decision, LimiterBackend, Window
from brokersync._ratelimit._headers import parse_rate_limit_headers
from brokersync.errors import BrokerRateLimitError
from brokersync.models import RateLimit

__all__ = ["DEFAULT_CLASS", "RateLimitStatus", "RateLimiter"]

DEFAULT_CLASS = "default"
# The broker's headers slow us down once fewer than this share of its limit (or, when it does
# not say its limit, this many requests) remain in its window.
_LOW_SHARE = 0.1
_LOW_COUNT = 5
# Sleeps in a row after which a clock that does not move is a set-up error, not bad luck.
_STALLED_SLEEPS = 5


class RateLimitStatus(NamedTuple):
    """Where a limiter stands: ``current`` of ``max`` requests used; a slot frees at ``reset_at``.

    ``max`` is 0 for a broker without declared limits. While the key is paused (the broker said
    429 / Retry-After), ``current`` equals ``max`` and ``reset_at`` is the end of the pause.
    """

    current: int
    max: int
    reset_at: dt.datetime


def _utc(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC)


class RateLimiter:
    """A sliding-window limiter for one broker, or one broker account.

    Get one from :func:`brokersync.create_rate_limiter` or :meth:`brokersync.Resilience.limiter`.

    Args:
        broker: The broker key.
        limits: The limits to enforce (from the metadata, or configuration).
        backend: The store (memory, or Redis to share limits across processes).
        account_id: Count ``scope="account"`` limits for this account.
        sleep: Awaitable sleep (injected in tests).
        prefix: Prefix of the store keys.
    """

    def __init__(
        self,
        *,
        broker: str,
        limits: Sequence[RateLimit],
        backend: LimiterBackend,
        account_id: str | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        prefix: str = "brokersync",
    ) -> None:
        for limit in limits:
            if not isinstance(limit, RateLimit):
                raise TypeError(f"rate limits of broker {broker!r} must be RateLimit objects, got {limit!r}")
        self.broker = broker
        self.account_id = account_id
        self.limits = tuple(limits)
        self.backend = backend
        self._sleep = sleep
        self._prefix = prefix
        self._per_account: dict[str, RateLimiter] = {}
        #: The store's last answer to this limiter (its ``now`` is the decision time on the store's clock).
        self.last_decision: Decision | None = None
        # {broker} is a Redis Cluster hash tag: every key of one broker lives on the same node.
        base = f"{prefix}:rl:{{{broker}}}"
        account = f"acct:{quote(account_id, safe='')}" if account_id is not None else None
        per_account = account is not None and any(limit.scope == "account" for limit in self.limits)
        self.control_key = f"{base}:{account}:ctl" if per_account else f"{base}:ctl"
        self._windows: dict[str, list[Window]] = {}
        self._checked_cache: dict[tuple[int, str | None], tuple[Window, ...]] = {}
        for limit in dict.fromkeys(self.limits):  # a limit declared twice is one limit
            if limit.scope == "account":
                # Without an account, an account limit is counted over the whole broker.
                scope = account if account is not None else "any-account"
            else:
                scope = "broker"
            # One key per limit: two windows never share a log (a request would count twice).
            key = f"{base}:{scope}:{limit.name}:{limit.window_seconds:g}s:{limit.max_requests}"
            self._windows.setdefault(limit.name, []).append(
                Window(key, limit.max_requests, float(limit.window_seconds))
            )

    def __repr__(self) -> str:
        return f"RateLimiter(broker={self.broker!r}, account_id={self.account_id!r}, limits={list(self.limits)!r})"

    def for_account(self, account_id: str) -> RateLimiter:
        """This limiter's limits, with ``scope="account"`` ones counted for broker account ``account_id``."""
        if not isinstance(account_id, str) or not account_id:
            raise ValueError(f"account_id must be a non-empty string, got {account_id!r}")
        if account_id == self.account_id:
            return self
        limiter = self._per_account.get(account_id)
        if limiter is None:
            if len(self._per_account) > 1024:  # bounded: accounts of one connection
                self._per_account.clear()
            limiter = RateLimiter(
                broker=self.broker,
                limits=self.limits,
                backend=self.backend,
                account_id=account_id,
                sleep=self._sleep,
                prefix=self._prefix,
            )
            self._per_account[account_id] = limiter
        return limiter

    def windows(self, name: str | None = None) -> tuple[Window, ...]:
        """The windows a request of class ``name`` counts in (the default ones, plus ``name``'s)."""
        selected = list(self._windows.get(DEFAULT_CLASS, ()))
        if name is not None and name != DEFAULT_CLASS:
            if name not in self._windows:
                raise ValueError(
                    f"broker {self.broker!r} declares no rate limit named {name!r} "
                    f"(declared: {', '.join(sorted(self._windows)) or 'none'})"
                )
            selected += self._windows[name]
        return tuple(selected)

    def _checked(self, cost: int, name: str | None) -> tuple[Window, ...]:
        checked = self._checked_cache.get((cost, name))
        if checked is not None:
            return checked
        windows = self.windows(name)
        if isinstance(cost, bool) or not isinstance(cost, int) or cost < 1:
            raise ValueError(f"rate-limit cost must be a positive integer, got {cost!r}")
        for window in windows:
            if cost > window.max_requests:
                # It could never be granted: waiting would loop forever.
                raise ValueError(
                    f"a request costing {cost} can never fit broker {self.broker!r}'s limit of "
                    f"{window.max_requests} per {window.seconds:g} s"
                )
        if len(self._checked_cache) < 64:
            self._checked_cache[(cost, name)] = windows
        return windows

    def _full(self, decision: Decision) -> BrokerRateLimitError:
        what = "is paused after the broker asked to slow down" if decision.paused_until else "is full"
        return BrokerRateLimitError(
            f"the rate limit of broker {self.broker!r}"
            + (f" (account {self.account_id})" if self.account_id else "")
            + f" {what}; the next request may go in {decision.wait:.1f} s",
            retry_after=decision.wait,
            broker=self.broker,
        )

    async def acquire(self, cost: int = 1, *, name: str | None = None, max_wait: float | None = None) -> float:
        """Wait until the request may go, and take its slot.

        Args:
            cost: Slots the request takes (a broker may weigh some endpoints more).
            name: The request's limit class, besides ``"default"``.
            max_wait: Raise instead of waiting when the next slot is further away than this.

        Returns:
            Seconds waited (0.0 when a slot was free).

        Raises:
            BrokerRateLimitError: The wait would exceed ``max_wait``; ``retry_after`` says how long.
            RuntimeError: The injected sleep does not let the store's clock advance (a test set-up
                error that would otherwise spin forever).
        """
        windows = self._checked(cost, name)
        waited = 0.0
        stalled = 0
        previous: Decision | None = None
        while True:
            decision = self.last_decision = await self.backend.acquire(self.control_key, windows, cost)
            if decision.allowed:
                return waited
            if max_wait is not None and waited + decision.wait > max_wait:
                raise self._full(decision)
            if previous is not None and decision.now - previous.now < previous.wait / 2:
                stalled += 1
                if stalled >= _STALLED_SLEEPS:
                    raise RuntimeError(
                        f"rate limiter of broker {self.broker!r}: {stalled} sleeps of {previous.wait:.3f} s did "
                        "not move the limiter's clock; inject the clock and the sleep together "
                        "(Resilience(clock=..., sleep=...))"
                    )
            else:
                stalled = 0
            previous = decision
            await self._sleep(decision.wait)
            waited += decision.wait

    async def check_limit(self, cost: int = 1, *, name: str | None = None) -> None:
        """Take a slot if one is free now; never wait.

        Raises:
            BrokerRateLimitError: No slot is free; ``retry_after`` says when one will be.
        """
        decision = self.last_decision = await self.backend.acquire(self.control_key, self._checked(cost, name), cost)
        if not decision.allowed:
            raise self._full(decision)

    async def status(self, *, name: str | None = None) -> RateLimitStatus:
        """The most used window of the request class ``name``: current, max and when a slot frees."""
        windows = self.windows(name)
        decision = await self.backend.peek(self.control_key, windows)
        if decision.paused_until > decision.now:
            top = max((w.max_requests for w in windows), default=0)
            return RateLimitStatus(top, top, _utc(decision.paused_until))
        if not windows:
            return RateLimitStatus(0, 0, _utc(decision.now))
        index = max(range(len(windows)), key=lambda i: decision.counts[i] / windows[i].max_requests)
        return RateLimitStatus(decision.counts[index], windows[index].max_requests, _utc(decision.resets[index]))

    async def pause(self, seconds: float) -> None:
        """Hold every request of this key, in every process sharing the store, for ``seconds``."""
        if seconds > 0:
            await self.backend.pause(self.control_key, seconds)

    async def observe(self, headers: Mapping[str, str], *, now: float) -> None:
        """Slow down when the broker's rate-limit headers say its window is nearly used up.

        No requests remaining pauses the key until the broker's reset; few remaining spreads them
        evenly over the time to the reset. Plenty remaining changes nothing.

        Args:
            headers: The response headers.
            now: Current epoch seconds (for reset timestamps).
        """
        info = parse_rate_limit_headers(headers, now=now)
        if info is None or info.reset <= 0:
            return
        if info.remaining == 0:
            await self.pause(info.reset)
            return
        low = max(1, int(info.limit * _LOW_SHARE)) if info.limit else _LOW_COUNT
        if info.remaining <= low:
            await self.backend.pace(self.control_key, info.reset / info.remaining, info.reset)
