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

import hashlib
import itertools
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from brokersync._clocks import MonotonicClock
from brokersync._log import get_logger
from brokersync._ratelimit._backend import Decision, Window
from brokersync._ratelimit._memory import MemoryBackend
from brokersync._redact import redact

__all__ = ["SCRIPT", "RedisBackend"]

T = TypeVar("T")

# Times are integer microseconds: exact in a Lua double up to 2^53, passed to redis.call as
# "%.17g" (exact) and returned as integer replies. (Lua's own tostring() would print "%.14g".)
SCRIPT = """
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local mode = ARGV[1]
local ctl = KEYS[1]

if mode == 'pause' or mode == 'pace' then
  local untl = now + tonumber(ARGV[mode == 'pause' and 4 or 5])
  if mode == 'pause' then
    if untl <= tonumber(redis.call('HGET', ctl, 'pause') or '0') then return {now} end
    redis.call('HSET', ctl, 'pause', untl)
  else
    redis.call('HSET', ctl, 'pace', tonumber(ARGV[4]), 'pace_until', untl)
  end
  local want = math.ceil((untl - now) / 1000) + 1000
  if redis.call('PTTL', ctl) < want then redis.call('PEXPIRE', ctl, want) end
  return {now}
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
local out = {0, 0, now, paused}
for i = 1, n do
  local key = KEYS[i + 1]
  local win = tonumber(ARGV[2 + 2 * i])
  local lim = tonumber(ARGV[3 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - win)
  local count = redis.call('ZCARD', key)
  local reset = now
  if count > 0 and (mode == 'peek' or count + cost > lim) then
    -- only a status query or a refusal needs to know when the oldest request leaves
    reset = tonumber(redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2]) + win
  end
  if count + cost > lim then
    local w = win
    if cost <= lim then
      local idx = count + cost - lim - 1
      w = tonumber(redis.call('ZRANGE', key, idx, idx, 'WITHSCORES')[2]) + win - now
    end
    if w > wait then wait = w end
  end
  out[3 + 2 * i] = count
  out[4 + 2 * i] = reset
end
if mode == 'acquire' and wait <= 0 then
  out[1] = 1
  wait = 0
  for i = 1, n do
    local key = KEYS[i + 1]
    local win = tonumber(ARGV[2 + 2 * i])
    for c = 1, cost do
      redis.call('ZADD', key, now, ARGV[3] .. ':' .. c)
    end
    if out[3 + 2 * i] == 0 then out[4 + 2 * i] = now + win end
    out[3 + 2 * i] = out[3 + 2 * i] + cost
    redis.call('PEXPIRE', key, math.ceil(win / 1000) + 1000)
  end
  if pace_until > now then redis.call('HSET', ctl, 'next', now + tonumber(state[4] or '0')) end
end
out[2] = wait
if mode == 'acquire' then
  -- a grant needs no reset times: keep the reply short (the hot path)
  for i = n, 1, -1 do table.remove(out, 4 + 2 * i) end
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
        clock: MonotonicClock = time.monotonic,
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
        self._sha = hashlib.sha1(SCRIPT.encode(), usedforsecurity=False).hexdigest()
        self._calls: dict[tuple[str, tuple[Window, ...]], tuple[list[str], list[str]]] = {}
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

    def _went_down(self, exc: BaseException) -> None:
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

    def _came_back(self) -> None:
        if self._down_since is not None:
            self._log.info(
                "Redis rate-limit store at {where} is back after {seconds:.1f} s; limits are shared again",
                where=self._where,
                seconds=self._clock() - self._down_since,
            )
            self._down_since = None

    async def _run(self, redis_call: Callable[[], Awaitable[T]], memory_call: Callable[[], Awaitable[T]]) -> T:
        if self._down_since is not None and self._clock() < self._next_probe:
            return await memory_call()
        try:
            result = await redis_call()
        except (RedisError, OSError) as exc:
            self._went_down(exc)
            return await memory_call()
        self._came_back()
        return result

    async def _eval(self, keys: list[str], args: list[str]) -> Any:
        try:
            return await self._client.evalsha(self._sha, len(keys), *keys, *args)
        except NoScriptError:  # a restarted or different server: load the script once more
            self._sha = await self._client.script_load(SCRIPT)
            return await self._client.evalsha(self._sha, len(keys), *keys, *args)

    def _window_call(
        self, mode: str, control: str, windows: Sequence[Window], cost: int
    ) -> tuple[list[str], list[str]]:
        cached = self._calls.get((control, tuple(windows)))
        if cached is None:
            if len(self._calls) > 4096:  # bounded: one entry per broker (account) and limit class
                self._calls.clear()
            cached = (
                [control, *(w.key for w in windows)],
                [arg for w in windows for arg in (_us(w.seconds), str(w.max_requests))],
            )
            self._calls[(control, tuple(windows))] = cached
        keys, window_args = cached
        return keys, [mode, str(cost), f"{self._token}-{next(self._ids)}", *window_args]

    @staticmethod
    def _decision(reply: Sequence[Any], *, with_resets: bool) -> Decision:
        now = int(reply[2]) / _MICRO
        rest = reply[4:]
        counts = tuple(int(c) for c in (rest[0::2] if with_resets else rest))
        return Decision(
            allowed=int(reply[0]) == 1,
            wait=int(reply[1]) / _MICRO,
            now=now,
            paused_until=int(reply[3]) / _MICRO,
            counts=counts,
            resets=tuple(int(r) / _MICRO for r in rest[1::2]) if with_resets else (now,) * len(counts),
        )

    async def acquire(self, control: str, windows: Sequence[Window], cost: int = 1) -> Decision:
        """See :class:`~brokersync._ratelimit._backend.LimiterBackend`."""

        if self._down_since is not None and self._clock() < self._next_probe:
            return await self._fallback.acquire(control, windows, cost)
        # The hot path, written out (no closures): one EVALSHA per decision.
        try:
            reply = await self._eval(*self._window_call("acquire", control, windows, cost))
        except (RedisError, OSError) as exc:
            self._went_down(exc)
            return await self._fallback.acquire(control, windows, cost)
        if self._down_since is not None:
            self._came_back()
        return self._decision(reply, with_resets=False)

    async def peek(self, control: str, windows: Sequence[Window]) -> Decision:
        """See :class:`~brokersync._ratelimit._backend.LimiterBackend`."""

        async def on_redis() -> Decision:
            return self._decision(await self._eval(*self._window_call("peek", control, windows, 1)), with_resets=True)

        return await self._run(on_redis, lambda: self._fallback.peek(control, windows))

    async def pause(self, control: str, seconds: float) -> None:
        """See :class:`~brokersync._ratelimit._backend.LimiterBackend`."""

        async def on_redis() -> None:
            await self._eval([control], ["pause", "1", "", _us(seconds)])

        # Remember the pause locally too: if Redis goes away, this process still honours it.
        await self._fallback.pause(control, seconds)
        await self._run(on_redis, _nothing)

    async def pace(self, control: str, interval: float, seconds: float) -> None:
        """See :class:`~brokersync._ratelimit._backend.LimiterBackend`."""

        async def on_redis() -> None:
            await self._eval([control], ["pace", "1", "", _us(interval), _us(seconds)])

        await self._fallback.pace(control, interval, seconds)
        await self._run(on_redis, _nothing)

    async def aclose(self) -> None:
        """Close the Redis connection pool if this backend created it."""
        if self._owns_client:
            await self._client.aclose()


async def _nothing() -> None:
    return None
