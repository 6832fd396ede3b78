"""Shared test values for the ibkr plugin's tests (a module of its own: every plugin has a conftest)."""

from __future__ import annotations

TOKEN = "good-token-1234"
QUERY = "987654"
CREDENTIALS = {"token": TOKEN, "query_id": QUERY}


class VirtualTime:
    """Epoch seconds that move only when someone sleeps: the core's limiter, retries and the fake share it."""

    def __init__(self) -> None:
        self.now = 1_710_000_000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)
