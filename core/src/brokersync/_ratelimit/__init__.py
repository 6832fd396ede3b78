"""Sliding-window rate limiting: a limiter per broker (or account) over a memory or Redis store."""

from __future__ import annotations

from brokersync._ratelimit._backend import Decision, LimiterBackend, Window
from brokersync._ratelimit._headers import RateLimitHeaders, parse_rate_limit_headers
from brokersync._ratelimit._limiter import DEFAULT_CLASS, RateLimiter, RateLimitStatus
from brokersync._ratelimit._memory import MemoryBackend

__all__ = [
    "DEFAULT_CLASS",
    "Decision",
    "LimiterBackend",
    "MemoryBackend",
    "RateLimitHeaders",
    "RateLimitStatus",
    "RateLimiter",
    "Window",
    "parse_rate_limit_headers",
]
