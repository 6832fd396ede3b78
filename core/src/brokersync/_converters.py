"""cattrs converters, one per boundary.

* :func:`wire_converter` reads what plugins hand over as mappings: lenient about extra keys,
  accepts numbers as text (``"1.25"``) and ISO 8601 times, refuses floats for money.
* :func:`strict_converter` reads our own configuration (metadata given as a mapping, config
  files): unknown keys are errors.

Errors are shown with :func:`cattrs.transform_error`, which names the path (``$.entry_price``).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import cattrs

from brokersync.errors import RecordValidationError
from brokersync.models import Trade, TradeCancellation

__all__ = [
    "base_converter",
    "describe_error",
    "normalize_cancellation",
    "normalize_trade",
    "strict_converter",
    "wire_converter",
]


def _structure_decimal(value: Any, _: type) -> Decimal:
    if isinstance(value, float):
        raise TypeError(f"float {value!r} is not allowed for money or quantities: send a string or Decimal")
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise TypeError(f"expected a decimal number, got {type(value).__name__}")
    try:
        result = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a number") from None
    if not result.is_finite():
        raise ValueError(f"{value!r} is not a finite number")
    return result


def _structure_datetime(value: Any, _: type) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        return dt.datetime.fromisoformat(text)
    raise TypeError(f"expected an ISO 8601 time, got {type(value).__name__}")


def base_converter(*, forbid_extra_keys: bool) -> cattrs.Converter:
    """A new converter with the Decimal and UTC datetime hooks every boundary shares (callers add their own)."""
    converter = cattrs.Converter(forbid_extra_keys=forbid_extra_keys)
    converter.register_structure_hook(Decimal, _structure_decimal)
    converter.register_structure_hook(dt.datetime, _structure_datetime)
    converter.register_unstructure_hook(Decimal, str)
    converter.register_unstructure_hook(dt.datetime, lambda v: v.isoformat())
    return converter


@functools.cache
def wire_converter() -> cattrs.Converter:
    """The converter for records plugins hand over as mappings (extra keys ignored)."""
    return base_converter(forbid_extra_keys=False)


@functools.cache
def strict_converter() -> cattrs.Converter:
    """The converter for our own configuration (unknown keys are errors)."""
    return base_converter(forbid_extra_keys=True)


def _format_exception(exc: BaseException, type_: type | None) -> str:
    # Our own model converters and validators already say what is wrong and where; keep their words.
    if isinstance(exc, ValueError | TypeError) and str(exc):
        return str(exc)
    return cattrs.v.format_exception(exc, type_)


def describe_error(exc: BaseException) -> str:
    """A one-line description of a structuring error, naming each failing path (``$.price``)."""
    if isinstance(exc, cattrs.BaseValidationError):
        return "; ".join(cattrs.transform_error(exc, format_exception=_format_exception))
    return str(exc)


_Record = TypeVar("_Record", Trade, TradeCancellation)


def _normalize(record: Any, kind: type[_Record], *, account_id: str, item: str, label: str) -> _Record:
    # In messages, ``item`` names one record ("a trade record") and ``label`` prefixes its id.
    if isinstance(record, kind):
        result = record
    elif isinstance(record, Mapping):
        data = dict(record)
        data.setdefault("account_id", account_id)
        if "raw" not in data:
            data["raw"] = dict(record)
        try:
            result = wire_converter().structure(data, kind)
        except Exception as exc:
            trade_id = record.get("broker_trade_id")
            raise RecordValidationError(
                f"invalid {label} {trade_id!r}: {describe_error(exc)}",
                broker_trade_id=str(trade_id) if trade_id is not None else None,
            ) from exc
    else:
        raise RecordValidationError(f"{item} must be a {kind.__name__} or a mapping, got {type(record).__name__}")
    if result.account_id != account_id:
        raise RecordValidationError(
            f"{label} {result.broker_trade_id!r} belongs to account {result.account_id!r}, "
            f"but get_trades was asked for account {account_id!r}",
            broker_trade_id=result.broker_trade_id,
        )
    return result


def normalize_trade(record: Trade | Mapping[str, Any], *, account_id: str) -> Trade:
    """Validate one record from ``get_trades`` into a :class:`Trade` for ``account_id``.

    Raises:
        RecordValidationError: naming the record's ``broker_trade_id`` (when it has one) and why.
    """
    return _normalize(record, Trade, account_id=account_id, item="a trade record", label="trade record")


def normalize_cancellation(record: TradeCancellation | Mapping[str, Any], *, account_id: str) -> TradeCancellation:
    """Validate one entry of ``TradePage.cancellations`` into a :class:`TradeCancellation` for ``account_id``.

    Raises:
        RecordValidationError: naming the cancelled trade's id (when there is one) and why.
    """
    return _normalize(
        record, TradeCancellation, account_id=account_id, item="a cancellation", label="cancellation of trade"
    )
