"""Keep secrets out of messages, logs and audit rows.

Two layers: every secret value brokersync handles (secret credential fields, tokens) is registered
here when its model is created, and any text that leaves the core is passed through :func:`redact`,
which masks registered values and well-known secret shapes (``Authorization`` headers,
``password=...`` query parameters, JSON ``"token": "..."`` pairs).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
_MIN_SECRET_LENGTH = 4

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None

SECRET_KEY_NAMES = (
    "password",
    "passwd",
    "secret",
    "sec",
    "token",
    "access_token",
    "accesstoken",
    "refresh_token",
    "refreshtoken",
    "mdaccesstoken",
    "api_key",
    "apikey",
    "authorization",
    "p-ticket",
    "t",
)

_SHAPES = re.compile(
    r"(?i)(?P<bearer>\b(?:bearer|basic|token)\s+)[A-Za-z0-9._~+/=\-]{6,}"
    r"|(?P<kv>[?&;\s](?:password|passwd|secret|sec|token|access_token|api_key|apikey|t)=)[^&\s\"']+"
    r"|(?P<json>\"(?:password|secret|sec|token|accessToken|access_token|refresh_token|refreshToken"
    r"|mdAccessToken|api_key|apiKey|p-ticket)\"\s*:\s*\")[^\"]*"
)


def register_secret(value: str | None) -> None:
    """Remember ``value`` so it is masked wherever it appears later. Short values are ignored."""
    global _pattern
    if not value or len(value) < _MIN_SECRET_LENGTH:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets.add(value)
        _pattern = None


def register_secrets(values: Iterable[str | None]) -> None:
    """Register several secrets at once."""
    for value in values:
        register_secret(value)


def _secret_pattern() -> re.Pattern[str] | None:
    global _pattern
    with _lock:
        if _pattern is None and _secrets:
            # Longest first, so a secret that contains another is masked whole.
            ordered = sorted(_secrets, key=len, reverse=True)
            _pattern = re.compile("|".join(re.escape(s) for s in ordered))
        return _pattern


def redact(text: str) -> str:
    """Return ``text`` with every known secret and secret-shaped value masked."""
    pattern = _secret_pattern()
    if pattern is not None:
        text = pattern.sub(MASK, text)
    return _SHAPES.sub(lambda m: (m.group("bearer") or m.group("kv") or m.group("json") or "") + MASK, text)


def redact_value(value: Any) -> Any:
    """Redact strings inside ``value`` (strings, mappings, lists) and mask secret-named keys."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {
            k: (MASK if isinstance(k, str) and k.lower() in SECRET_KEY_NAMES else redact_value(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value
