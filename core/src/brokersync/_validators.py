"""Field converters and validators of the public models (:mod:`brokersync.models`).

Converters normalize what is unambiguous (aware time -> UTC, int -> Decimal, strip text) and pass
anything else through unchanged; validators then refuse it with a message naming the field.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import attrs

__all__ = [
    "as_currency",
    "as_currency_optional",
    "as_decimal",
    "as_decimal_optional",
    "as_mapping",
    "as_text",
    "as_text_optional",
    "as_utc",
    "as_utc_optional",
    "check_currency",
    "check_decimal",
    "check_key",
    "check_mapping",
    "check_text",
    "check_time",
    "non_negative",
    "positive",
]


def where(instance: object, attribute: attrs.Attribute[Any]) -> str:
    return f"{type(instance).__name__}.{attribute.name}"


def _aware(value: object) -> bool:
    return isinstance(value, dt.datetime) and value.tzinfo is not None and value.utcoffset() is not None


def as_utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC) if _aware(value) else value


def as_utc_optional(value: dt.datetime | None) -> dt.datetime | None:
    return value.astimezone(dt.UTC) if value is not None and _aware(value) else value


def check_time(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None and attribute.default is None:
        return
    if not isinstance(value, dt.datetime):
        raise TypeError(f"{where(instance, attribute)} must be a datetime, got {type(value).__name__} {value!r}")
    if not _aware(value):
        raise ValueError(
            f"{where(instance, attribute)} is a naive datetime ({value.isoformat()}); brokersync needs "
            "timezone-aware times: attach the broker's time zone, e.g. value.replace(tzinfo=UTC)"
        )


def as_decimal(value: Decimal | int) -> Decimal:
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    return value  # type: ignore[return-value]  # anything else is refused by check_decimal


def as_decimal_optional(value: Decimal | int | None) -> Decimal | None:
    return None if value is None else as_decimal(value)


def check_decimal(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None and attribute.default is None:
        return
    if not isinstance(value, Decimal):
        hint = f"Decimal({str(value)!r})" if isinstance(value, float) else "a Decimal"
        raise TypeError(
            f"{where(instance, attribute)} must be a Decimal, got {type(value).__name__} {value!r}; "
            f"money and quantities are exact in brokersync: pass {hint}"
        )
    if not value.is_finite():
        raise ValueError(f"{where(instance, attribute)} must be a finite number, got {value!r}")


def as_text(value: str | int) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value.strip() if isinstance(value, str) else value  # type: ignore[return-value]  # see check_text


def as_text_optional(value: str | int | None) -> str | None:
    return None if value is None else as_text(value)


def check_text(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None and attribute.default is None:
        return
    if not isinstance(value, str):
        raise TypeError(f"{where(instance, attribute)} must be a string, got {type(value).__name__} {value!r}")
    if not value:
        raise ValueError(f"{where(instance, attribute)} must not be empty")


_CURRENCY = re.compile(r"^[A-Z0-9]{2,12}$")


def as_currency(value: str) -> str:
    return value.strip().upper() if isinstance(value, str) else value


def as_currency_optional(value: str | None) -> str | None:
    return None if value is None else as_currency(value)


def check_currency(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None and attribute.default is None:
        return
    if not isinstance(value, str) or not _CURRENCY.match(value):
        raise ValueError(f"{where(instance, attribute)} must be a currency code like 'USD', got {value!r}")


def as_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if value is None:
        return {}
    return dict(value) if isinstance(value, Mapping) else value


def check_mapping(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, Mapping):
        raise TypeError(f"{where(instance, attribute)} must be a mapping, got {type(value).__name__}")


_KEY = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def check_key(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or not _KEY.match(value):
        raise ValueError(
            f"{type(instance).__name__}.{attribute.name} must be lower-case letters, digits and '_' "
            f"starting with a letter, got {value!r}"
        )


def positive(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"{type(instance).__name__}.{attribute.name} must be a positive number, got {value!r}")


def non_negative(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{type(instance).__name__}.{attribute.name} must be >= 0, got {value!r}")
