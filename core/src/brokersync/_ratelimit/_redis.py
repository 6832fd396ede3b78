"""The Redis rate-limit store: one Lua script over sorted sets, decided on the Redis server clock.

Every decision is one ``EVALSHA`` of :data:`SCRIPT`: it reads the server's ``TIME``, drops entries
older than each window, checks every window and the key's pause/pace state, and only then adds
the request to all windows, atomically. Processes on any host that share the Redis server share
the limit exactly; their own clocks play no part.

Redis unreachable (or answering errors): the decision is made by a :class:`MemoryBackend` in this
process instead, with one warning per outage; Redis is probed again every ``retry_interval``
seconds and used again as soon as it answers. No request fails because Redis did.
"""

from __future__ import annotations

import itertools
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from brokersync._log import get_logger
from brokersync._ratelimit._backend import Decision, Window
from brokersync._ratelimit._memory import MemoryBackend
from brokersync._redact import redact

__all__ = ["SCRIPT", "RedisBackend"]

T = TypeVar("T")

# Times are integer microseconds (exact in a Lua double up to 2^53). Numbers passed to redis.call
# go through fmt(): Lua 5.1 would print them as "%.14g" and lose the microseconds.
SCRIPT = """
local function fmt(x) return string.format('%.0f', x) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local mode = ARGV[1]
local ctl = KEYS[1]

local function keep_control(until_us)
  local ttl = redis.call('PTTL', ctl)
  local want = math.ceil((until_us - now) / 1000) + 1000
  if ttl < want then redis.call('PEXPIRE', ctl, fmt(want)) end
end

if mode == 'pause' then
  local untl = now + tonumber(ARGV[4])
  local cur = tonumber(redis.call('HGET', ctl, 'pause') or '0')
  if untl > cur then
    redis.call('HSET', ctl, 'pause', fmt(untl))
    keep_control(untl)
  end
  return {fmt(now)}
end
if mode == 'pace' then
  local untl = now + tonumber(ARGV[5])
  redis.call('HSET', ctl, 'pace', ARGV[4], 'pace_until', fmt(untl))
  keep_control(untl)
  return {fmt(now)}
end

local cost = tonumber(ARGV[2])
local wait = 0
local state = redis.call('HMGET', ctl, 'pause', 'pace_until', 'next', 'pace')
local paused = tonumber(state[1] or '0')
if paused > now then wait = paused - now else paused = 0 end
local pace_until = tonumber(state[2] or '0')
if pace_until > now then
  local nxt = tonumber(state[3] or '0')
  if nxt - now > wait then wait = nxt - now end
end
local n = #KEYS - 1
local counts, resets, wins = {}, {}, {}
for i = 1, n do
  local key = KEYS[i + 1]
  local win = tonumber(ARGV[4 + 2 * i])
  local lim = tonumber(ARGV[5 + 2 * i])
  wins[i] = win
  redis.call('ZREMRANGEBYSCORE', key, '-inf', fmt(now - win))
  local count = redis.call('ZCARD', key)
  counts[i] = count
  resets[i] = now
  if count > 0 and (mode == 'peek' or count + cost > lim) then
    -- only a status query or a refusal needs to know when the oldest request leaves
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    resets[i] = tonumber(oldest[2]) + win
  end
  if count + cost > lim then
    local w = win
    if cost <= lim then
      local idx = count + cost - lim - 1
      local entry = redis.call('ZRANGE', key, idx, idx, 'WITHSCORES')
      w = tonumber(entry[2]) + win - now
    end
    if w > wait then wait = w end
  end
end
local allowed = 0
if mode == 'acquire' and wait <= 0 then
  allowed = 1
  wait = 0
  for i = 1, n do
    local key = KEYS[i + 1]
    for c = 1, cost do
      redis.call('ZADD', key, fmt(now), ARGV[3] .. ':' .. c)
    end
    if counts[i] == 0 then resets[i] = now + wins[i] end
    counts[i] = counts[i] + cost
    redis.call('PEXPIRE', key, fmt(math.ceil(wins[i] / 1000) + 1000))
  end
  if pace_until > now then
    redis.call('HSET', ctl, 'next', fmt(now + tonumber(state[4] or '0')))
  end
end
local out = {allowed, fmt(wait), fmt(now), fmt(paused)}
for i = 1, n do
  out[#out + 1] = counts[i]
  out[#out + 1] = fmt(resets[i])
end
return out
"""

_MICRO = 1_000_000


def _us(seconds: float) -> str:
    return str(round(seconds * _MICRO))


def connect(url: str) -> aioredis.Redis:
    """A Redis client for the limiter: short timeouts and no client-side retries.

    During an outage each decision must fall back to memory at once rather than hang or retry.
    """
    return aioredis.Redis.from_url(
        url,
        socket_connect_timeout=1.0,
        socket_timeout=1.0,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )


class RedisBackend:
    """Sliding windows in Redis, shared by every process and host using the same server.

    Args:
        client: A Redis URL (``redis://host:6379/0``) or a ``redis.asyncio.Redis`` client.
        retry_interval: Seconds between attempts to reach Redis again during an outage.
        clock: Monotonic seconds for the outage probe timing (injected in tests).
        fallback: The store used while Redis is unreachable (default: a new memory store).
    """

    def __init__(
        self,
        client: str | aioredis.Redis,
        *,
        retry_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        fallback: MemoryBackend | None = None,
    ) -> None:
        if isinstance(client, str):
            self._where = redact(client.split("@")[-1])  # never log a password from the URL
            self._client = connect(client)
            self._owns_client = True
        else:
            kwargs: dict[str, Any] = client.get_connection_kwargs()  # type: ignore[no-untyped-call]
            self._where = f"{kwargs.get('host', kwargs.get('path', '?'))}:{kwargs.get('port', '')}"
            self._client = client
            self._owns_client = False
        self._script = self._client.register_script(SCRIPT)
        self._fallback = fallback or MemoryBackend()
        self._retry_interval = retry_interval
        self._clock = clock
        self._down_since: float | None = None
        self._next_probe = 0.0
        self._ids = itertools.count()
        self._token = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._log = get_logger(component="ratelimit")
        #: How many outages were seen (each produced one warning).
        self.outages = 0

    @property
    def client(self) -> aioredis.Redis:
        """The Redis client (benchmarks compare with a plain PING on it)."""
        return self._client

    @property
    def using_fallback(self) -> bool:
        """Whether decisions are currently made in memory because Redis is unreachable."""
        return self._down_since is not None

    async def _run(self, redis_call: Callable[[], Awaitable[T]], memory_call: Callable[[], Awaitable[T]]) -> T:
        if self._down_since is not None and self._clock() < self._next_probe:
            return await memory_call()
        try:
            result = await redis_call()
        except (RedisError, OSError) as exc:
            now = self._clock()
            if self._down_since is None:
                self._down_since = now
                self.outages += 1
                self._log.warning(
                    "Redis rate-limit store at {where} is unreachable ({error}); limits are kept in this "
                    "process's memory until it is back (not shared with other processes meanwhile)",
                    where=self._where,
                    error=type(exc).__name__,
                )
            self._next_probe = now + self._retry_interval
            return await memory_call()
        if self._down_since is not None:
            self._log.info(
                "Redis rate-limit store at {where} is back after {seconds:.1f} s; limits are shared again",
                where=self._where,
                seconds=self._clock() - self._down_since,
            )
            self._down_since = None
        return result

    async def _eval(self, mode: str, control: str, windows: Sequence[Window], cost: int, *extra: str) -> Any:
        args = [mode, str(cost), f"{self._token}-{next(self._ids)}", *extra]
        args += [""] * (5 - len(args))
        for window in windows:
            args += [_us(window.seconds), str(window.max_requests)]
        return await self._script(keys=[control, *(w.key for w in windows)], args=args)

    @staticmethod
    def _decision(reply: Sequence[Any]) -> Decision:
        rest = reply[4:]
        return Decision(
            allowed=int(reply[0]) == 1,
            wait=int(reply[1]) / _MICRO,
            now=int(reply[2]) / _MICRO,
            paused_until=int(reply[3]) / _MICRO,
            counts=tuple(int(c) for c in rest[0::2]),
            resets=tuple(int(r) / _MICRO for r in rest[1::2]),
        )

    async def acquire(self, control: str, windows: Sequence[Window], cost: int = 1) -> Decision:
        """See :class:`~brokersync._ratelimit._backend.LimiterBackend`."""

        async def on_redis() -> Decision:
            return self._decision(await self._eval("acquire", control, windows, cost))

        return await self._run(on_redis, lambda: self._fallback.acquire(control, windows, cost))

    async def peek(self, control: str, windows: Sequence[Window]) -> Decision:
        """See :class:`~brokersync._ratelimit._backend.LimiterBackend`."""

        async def on_redis() -> Decision:
            return self._decision(await self._eval("peek", control, windows, 1))

        return await self._run(on_redis, lambda: self._fallback.peek(control, windows))

    async def pause(self, control: str, seconds: float) -> None:
        """See :class:`~brokersync._ratelimit._backend.LimiterBackend`."""

        async def on_redis() -> None:
            await self._eval("pause", control, (), 1, _us(seconds))

        # Remember the pause locally too: if Redis goes away, this process still honours it.
        await self._fallback.pause(control, seconds)
        await self._run(on_redis, _nothing)

    async def pace(self, control: str, interval: float, seconds: float) -> None:
        """See :class:`~brokersync._ratelimit._backend.LimiterBackend`."""

        async def on_redis() -> None:
            await self._eval("pace", control, (), 1, _us(interval), _us(seconds))

        await self._fallback.pace(control, interval, seconds)
        await self._run(on_redis, _nothing)

    async def aclose(self) -> None:
        """Close the Redis connection pool if this backend created it."""
        if self._owns_client:
            await self._client.aclose()


async def _nothing() -> None:
    return None
