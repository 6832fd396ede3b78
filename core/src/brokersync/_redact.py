"""Keep secrets out of messages, logs and audit rows.

Two layers: every secret value brokersync handles (secret credential fields, tokens) is registered
here when its model is created, and any text that leaves the core is passed through :func:`redact`,
which masks registered values and secret shapes (``Authorization`` headers, ``password=...``
query parameters, JSON ``"token": "..."`` pairs).

Memory stays bounded in a long-running worker: the registry keeps the most recently registered
:data:`MAX_SECRETS` values (a sync registers its connection's secrets again when it opens them,
so the secrets of syncs in flight are always among them). Secret *names* are generic ones plus
those plugins declare (secret credential fields, ``BrokerMetadata.secret_response_fields``).
"""

from __future__ import annotations

import collections
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "MASK",
    "MAX_SECRETS",
    "redact",
    "redact_value",
    "register_secret",
    "register_secret_names",
    "register_secrets",
    "secret_count",
]

MASK = "***"
MAX_SECRETS = 4096
_MIN_SECRET_LENGTH = 4

_lock = threading.Lock()
_secrets: collections.OrderedDict[str, None] = collections.OrderedDict()  # least recently registered first
_pattern: re.Pattern[str] | None = None

# Names any API may use for a secret; broker-specific ones come from the plugins' metadata.
_GENERIC_NAMES = (
    "password",
    "passwd",
    "secret",
    "client_secret",
    "token",
    "access_token",
    "accesstoken",
    "refresh_token",
    "refreshtoken",
    "api_key",
    "apikey",
    "authorization",
)
_names: set[str] = set(_GENERIC_NAMES)
_shapes: re.Pattern[str] | None = None

# A value after the bare word "token" is masked only when it looks like one (long, with a digit):
# "token answered 401" is prose, "token tok-9f8e7d6c5b4a" is a credential.
_CREDENTIAL_LIKE = r"(?=[A-Za-z0-9._~+/=\-]*\d)[A-Za-z0-9._~+/=\-]{12,}"


def register_secret(value: str | None) -> None:
    """Remember ``value`` so it is masked wherever it appears later. Short values are ignored."""
    global _pattern
    if not value or len(value) < _MIN_SECRET_LENGTH:
        return
    with _lock:
        if value in _secrets:
            _secrets.move_to_end(value)
            return
        _secrets[value] = None
        if len(_secrets) > MAX_SECRETS:
            _secrets.popitem(last=False)
        _pattern = None


def register_secrets(values: Iterable[str | None]) -> None:
    """Register several secrets at once."""
    for value in values:
        register_secret(value)


def register_secret_names(names: Iterable[str]) -> None:
    """Mask the values of fields called ``names`` (a plugin's secret credential and response fields)."""
    global _shapes
    new = {name.lower() for name in names if name} - _names
    if not new:
        return
    with _lock:
        _names.update(new)
        _shapes = None


def secret_count() -> int:
    """How many secret values the redactor holds (at most :data:`MAX_SECRETS`)."""
    return len(_secrets)


def _secret_pattern() -> re.Pattern[str] | None:
    global _pattern
    with _lock:
        if _pattern is None and _secrets:
            # Longest first, so a secret that contains another is masked whole.
            ordered = sorted(_secrets, key=len, reverse=True)
            _pattern = re.compile("|".join(re.escape(s) for s in ordered))
        return _pattern


def _shape_pattern() -> re.Pattern[str]:
    global _shapes
    with _lock:
        if _shapes is None:
            names = "|".join(re.escape(n) for n in sorted(_names, key=len, reverse=True))
            _shapes = re.compile(
                r"(?i)(?P<bearer>\b(?:bearer|basic)\s+)[A-Za-z0-9._~+/=\-]{6,}"
                rf"|(?P<word>\btoken\s+){_CREDENTIAL_LIKE}"
                rf"|(?P<kv>[?&;\s](?:{names})=)[^&\s\"']+"
                rf"|(?P<json>\"(?:{names})\"\s*:\s*\")[^\"]*"
            )
        return _shapes


def redact(text: str) -> str:
    """Return ``text`` with every known secret and secret-shaped value masked."""
    pattern = _secret_pattern()
    if pattern is not None:
        text = pattern.sub(MASK, text)
    return _shape_pattern().sub(
        lambda m: (m.group("bearer") or m.group("word") or m.group("kv") or m.group("json") or "") + MASK, text
    )


def redact_value(value: Any) -> Any:
    """Redact strings inside ``value`` (strings, mappings, lists) and mask secret-named keys."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: (MASK if isinstance(k, str) and k.lower() in _names else redact_value(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value
