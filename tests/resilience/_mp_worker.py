"""One OS process hammering a shared Redis limit; prints the server-clock times of its slots (JSON)."""

from __future__ import annotations

import asyncio
import json
import sys
import time

from brokersync import RateLimit
from brokersync._ratelimit import RateLimiter
from brokersync._ratelimit._redis import RedisBackend


async def main(url: str, prefix: str, limit: int, window: float, duration: float) -> None:
    backend = RedisBackend(url)
    limiter = RateLimiter(
        broker="mp", limits=[RateLimit(max_requests=limit, window_seconds=window)], backend=backend, prefix=prefix
    )
    granted: list[float] = []
    deadline = time.monotonic() + duration
    try:
        while time.monotonic() < deadline:
            await limiter.acquire()
            assert limiter.last_decision is not None
            granted.append(limiter.last_decision.now)
    finally:
        await backend.aclose()
    print(json.dumps({"granted": granted, "fallback": backend.outages}))


if __name__ == "__main__":
    url, prefix, limit, window, duration = sys.argv[1:6]
    asyncio.run(main(url, prefix, int(limit), float(window), float(duration)))
