"""Exported names show their public path (``brokersync.BrokerSync``), not the private module defining them."""

from __future__ import annotations

import contextlib
from typing import TypeVar

import attrs

__all__ = ["show_as"]

T = TypeVar("T")


def show_as(value: T, path: str) -> T:
    """Show ``value`` under its public path (reprs, error classifications) instead of its private module."""
    module = getattr(value, "__module__", None)
    if not isinstance(module, str) or not module.startswith("brokersync._") or not hasattr(value, "__qualname__"):
        return value
    if isinstance(value, type) and attrs.has(value):
        # Resolve string annotations while the defining module still holds their globals (cattrs
        # reads them later). Names imported only for type checkers cannot resolve either way.
        with contextlib.suppress(NameError):
            attrs.resolve_types(value)
    try:
        value.__module__ = path
    except (AttributeError, TypeError):  # a type alias or a builtin: nothing to rename
        pass
    return value
