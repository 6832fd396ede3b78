"""The in-process rate-limit store: exact for one process, shared by every limiter in it."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from brokersync._ratelimit._backend import Decision, Window

__all__ = ["MemoryBackend"]


class _Control:
    __slots__ = ("next_at", "pace_interval", "pace_until", "paused_until")

    def __init__(self) -> None:
        self.paused_until = 0.0
        self.pace_interval = 0.0
        self.pace_until = 0.0
        self.next_at = 0.0


class MemoryBackend:
    """Sliding windows kept in this process's memory.

    Args:
        clock: Epoch seconds (injected in tests; default :func:`time.time`).
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._windows: dict[str, deque[float]] = {}
        self._controls: dict[str, _Control] = {}
        self._lock = threading.Lock()

    def _decide(self, control: str, windows: Sequence[Window], cost: int, take: bool) -> Decision:
        with self._lock:
            now = self._clock()
            ctl = self._controls.get(control)
            wait = 0.0
            paused_until = 0.0
            if ctl is not None:
                if ctl.paused_until > now:
                    paused_until = ctl.paused_until
                    wait = ctl.paused_until - now
                if ctl.pace_until > now and ctl.next_at > now:
                    wait = max(wait, ctl.next_at - now)
            counts: list[int] = []
            resets: list[float] = []
            logs: list[deque[float]] = []
            for window in windows:
                log = self._windows.setdefault(window.key, deque())
                # An entry counts while it is newer than now - window (the Redis script agrees).
                while log and log[0] <= now - window.seconds:
                    log.popleft()
                logs.append(log)
                counts.append(len(log))
                resets.append(log[0] + window.seconds if log else now)
                if len(log) + cost > window.max_requests:
                    if cost > window.max_requests:
                        wait = max(wait, window.seconds)
                    else:
                        blocking = log[len(log) + cost - window.max_requests - 1]
                        wait = max(wait, blocking + window.seconds - now)
            allowed = take and wait <= 0
            if allowed:
                for index, (window, log) in enumerate(zip(windows, logs, strict=True)):
                    log.extend([now] * cost)
                    counts[index] += cost
                    resets[index] = log[0] + window.seconds
                if ctl is not None and ctl.pace_until > now:
                    ctl.next_at = now + ctl.pace_interval
            return Decision(
                allowed=allowed,
                wait=0.0 if allowed else max(wait, 0.0),
                now=now,
                counts=tuple(counts),
                resets=tuple(resets),
                paused_until=paused_until,
            )

    async def acquire(self, control: str, windows: Sequence[Window], cost: int = 1) -> Decision:
        """See :class:`~brokersync._ratelimit._backend.LimiterBackend`."""
        return self._decide(control, windows, cost, take=True)

    async def peek(self, control: str, windows: Sequence[Window]) -> Decision:
        """See :class:`~brokersync._ratelimit._backend.LimiterBackend`."""
        return self._decide(control, windows, 1, take=False)

    async def pause(self, control: str, seconds: float) -> None:
        """See :class:`~brokersync._ratelimit._backend.LimiterBackend`."""
        with self._lock:
            ctl = self._controls.setdefault(control, _Control())
            ctl.paused_until = max(ctl.paused_until, self._clock() + seconds)

    async def pace(self, control: str, interval: float, seconds: float) -> None:
        """See :class:`~brokersync._ratelimit._backend.LimiterBackend`."""
        with self._lock:
            ctl = self._controls.setdefault(control, _Control())
            ctl.pace_interval = interval
            ctl.pace_until = self._clock() + seconds

    async def aclose(self) -> None:
        """Nothing to release."""
