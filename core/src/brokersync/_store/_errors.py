"""Database failures turned into :class:`~brokersync.StoreError` (naming the operation, never a URL)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from brokersync.errors import StoreError

__all__ = ["store_errors", "wrap_store_errors"]


def wrap_store_errors(exc: SQLAlchemyError | OSError, what: str) -> StoreError:
    """A :class:`StoreError` naming the operation; the driver's message is kept, never a URL."""
    if isinstance(exc, OSError) and not isinstance(exc, SQLAlchemyError):
        return StoreError(f"cannot reach the database while {what}: {type(exc).__name__}: {exc}")
    detail = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    return StoreError(f"database error while {what}: {type(exc).__name__}: {detail}")


P = ParamSpec("P")
R = TypeVar("R")


def store_errors(what: str) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Coroutine[Any, Any, R]]]:
    """Turn a database failure inside the decorated operation into a :class:`StoreError`."""

    def decorate(fn: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return await fn(*args, **kwargs)
            except (SQLAlchemyError, OSError) as exc:
                raise wrap_store_errors(exc, what) from None

        return wrapper

    return decorate
