"""Read a broker's rate-limit headers, to slow down before it answers 429.

Understood: ``RateLimit-Remaining``/``RateLimit-Reset``/``RateLimit-Limit`` and their ``X-``
variants, and the IETF structured form (``RateLimit: limit=100, remaining=3, reset=20`` or
``RateLimit: "default";r=3;t=20``). ``Reset`` is seconds from now, or an epoch timestamp (seconds
or milliseconds) when it is that large.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import attrs

__all__ = ["RateLimitHeaders", "parse_rate_limit_headers"]

_EPOCH_SECONDS = 1_000_000_000  # a "reset" above this is a timestamp, not a delay
_EPOCH_MILLIS = 1_000_000_000_000
_PARAM = re.compile(r"(?i)\b(limit|remaining|reset|r|t)\s*=\s*\"?(\d+(?:\.\d+)?)")


@attrs.frozen(kw_only=True)
class RateLimitHeaders:
    """What a response says about the broker's own limit."""

    remaining: int
    reset: float  # seconds from now until the broker's window resets
    limit: int | None = None


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value.strip().split(",")[0])
    except ValueError:
        return None


def _first(headers: Mapping[str, str], *names: str) -> float | None:
    for name in names:
        value = _number(headers.get(name.lower()))
        if value is not None:
            return value
    return None


def parse_rate_limit_headers(headers: Mapping[str, str], *, now: float) -> RateLimitHeaders | None:
    """Read remaining/reset (and limit) from ``headers``; None when the broker sends none.

    Args:
        headers: Response headers (a case-insensitive mapping, such as httpx's).
        now: The current epoch time in seconds (to turn a reset timestamp into a delay).
    """
    # Most responses carry no rate-limit header: keep only the ones that could be one.
    headers = {k.lower(): v for k, v in headers.items() if "rate" in k.lower()}
    if not headers:
        return None
    remaining = _first(headers, "RateLimit-Remaining", "X-RateLimit-Remaining", "X-Rate-Limit-Remaining")
    reset = _first(headers, "RateLimit-Reset", "X-RateLimit-Reset", "X-Rate-Limit-Reset")
    limit = _first(headers, "RateLimit-Limit", "X-RateLimit-Limit", "X-Rate-Limit-Limit")
    structured = headers.get("ratelimit")
    if structured is not None:
        params = {k.lower(): float(v) for k, v in _PARAM.findall(structured)}
        remaining = params.get("remaining", params.get("r", remaining))
        reset = params.get("reset", params.get("t", reset))
        limit = params.get("limit", limit)
    if remaining is None or reset is None:
        return None
    if reset >= _EPOCH_MILLIS:
        reset = reset / 1000 - now
    elif reset >= _EPOCH_SECONDS:
        reset -= now
    return RateLimitHeaders(
        remaining=max(0, int(remaining)),
        reset=max(0.0, reset),
        limit=int(limit) if limit is not None else None,
    )
