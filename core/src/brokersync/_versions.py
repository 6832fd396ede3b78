"""The plugin API version and the range a plugin declares it supports."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable

__all__ = ["PLUGIN_API_VERSION", "api_version_matches"]

#: The version of the broker plugin contract this core implements (see docs/hooks.md).
PLUGIN_API_VERSION = "1.0"

_CLAUSE = re.compile(r"^\s*(>=|<=|==|!=|>|<|~=)?\s*(\d+(?:\.\d+)*)\s*$")
_OPS: dict[str, Callable[[tuple[int, ...], tuple[int, ...]], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}


def _version(text: str, width: int) -> tuple[int, ...]:
    parts = tuple(int(p) for p in text.split("."))
    return parts + (0,) * (width - len(parts))


def api_version_matches(spec: str, version: str = PLUGIN_API_VERSION) -> bool:
    """Whether ``version`` satisfies ``spec``, a comma-separated list like ``">=1,<2"``.

    Raises:
        ValueError: ``spec`` is not a version range.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"plugin API range must be a string like '>=1,<2', got {spec!r}")
    for clause in spec.split(","):
        match = _CLAUSE.match(clause)
        if match is None:
            raise ValueError(f"plugin API range {spec!r}: cannot read {clause.strip()!r}")
        op, bound = match.group(1) or "==", match.group(2)
        width = max(len(bound.split(".")), len(version.split(".")))
        have, want = _version(version, width), _version(bound, width)
        if op == "~=":
            prefix = len(bound.split(".")) - 1 or 1
            if not (have >= want and have[:prefix] == want[:prefix]):
                return False
        elif not _OPS[op](have, want):
            return False
    return True
