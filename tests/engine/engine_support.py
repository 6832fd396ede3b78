"""Helpers shared by the engine tests (and their worker subprocesses)."""

from __future__ import annotations

import datetime as dt

START = dt.datetime(2025, 3, 3, 12, 0, tzinfo=dt.UTC)


class Clock:
    """An injected UTC clock; tests move it explicitly."""

    def __init__(self, now: dt.datetime = START) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += dt.timedelta(seconds=max(0.0, seconds))
