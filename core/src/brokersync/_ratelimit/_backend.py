"""What a rate-limit store does: decide atomically whether a request may go now, pause, pace."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import attrs

__all__ = ["Decision", "LimiterBackend", "Window"]


@attrs.frozen
class Window:
    """One sliding window kept in the store: at most ``max_requests`` per ``seconds`` under ``key``."""

    key: str
    max_requests: int
    seconds: float


@attrs.frozen(kw_only=True)
class Decision:
    """A store's answer, all times on the store's own clock (epoch seconds).

    Attributes:
        allowed: Whether a slot was taken (always False for a status query).
        wait: Seconds until a slot may be free (0 when allowed).
        now: The decision time on the store's clock (the Redis server's clock for Redis).
        counts: Requests counted in each window after the decision.
        resets: For each window, when its oldest counted request leaves it (``now`` when empty).
            Exact for :meth:`LimiterBackend.peek`; an acquire may report ``now`` (the Redis
            script skips that lookup on its hot path).
        paused_until: When a pause (a broker's 429 / Retry-After) ends; 0 when not paused.
    """

    allowed: bool
    wait: float
    now: float
    counts: tuple[int, ...]
    resets: tuple[float, ...]
    paused_until: float = 0.0


class LimiterBackend(Protocol):
    """A store of sliding windows shared by every limiter that uses it.

    ``control`` names the key's pause/pace state (one per broker, or per broker account).
    """

    async def acquire(self, control: str, windows: Sequence[Window], cost: int = 1) -> Decision:
        """Take ``cost`` slots in every window at once if all have room and no pause is active."""
        ...

    async def peek(self, control: str, windows: Sequence[Window]) -> Decision:
        """The state of the windows, taking nothing."""
        ...

    async def pause(self, control: str, seconds: float) -> None:
        """Refuse every request under ``control`` for ``seconds`` (a longer existing pause stays)."""
        ...

    async def pace(self, control: str, interval: float, seconds: float) -> None:
        """For the next ``seconds``, let at most one request per ``interval`` through ``control``."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
