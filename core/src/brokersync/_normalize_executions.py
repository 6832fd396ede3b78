"""Validating what ``get_trades`` reports beside round trips: executions, busts of executions, positions.

Like trade records, each entry is validated on its own: a bad one raises
:class:`~brokersync.errors.RecordValidationError` naming it (the facade reports it and skips it).
Mappings are read leniently (extra keys ignored, numbers as text, ISO times, ``"2025-01-17"``
expiries, a nested ``instrument`` mapping); a float for money or a quantity is refused.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from typing import Any, TypeVar

import cattrs

from brokersync._converters import base_converter, describe_error, normalize_cancellation
from brokersync.errors import RecordValidationError
from brokersync.models import Execution, ExecutionCancellation, Position, TradeCancellation

__all__ = ["normalize_any_cancellation", "normalize_execution", "normalize_position"]

_Record = TypeVar("_Record", Execution, ExecutionCancellation, Position)


@functools.cache
def _converter() -> cattrs.Converter:
    converter = base_converter(forbid_extra_keys=False)
    converter.register_structure_hook(dt.date, lambda value, _: value if isinstance(value, dt.date) else str(value))
    return converter


def _structure(record: Any, kind: type[_Record], *, account_id: str, label: str, id_field: str | None) -> _Record:
    if isinstance(record, kind):
        result = record
    elif isinstance(record, Mapping):
        data = dict(record)
        data.setdefault("account_id", account_id)
        if "raw" not in data:
            data["raw"] = dict(record)
        try:
            result = _converter().structure(data, kind)
        except Exception as exc:
            record_id = record.get(id_field) if id_field else None
            named = f" {record_id!r}" if record_id is not None else ""
            raise RecordValidationError(
                f"invalid {label}{named}: {describe_error(exc)}",
                broker_trade_id=str(record_id) if record_id is not None else None,
            ) from exc
    else:
        raise RecordValidationError(f"a {label} must be a {kind.__name__} or a mapping, got {type(record).__name__}")
    if result.account_id != account_id:
        record_id = getattr(result, id_field) if id_field else None
        raise RecordValidationError(
            f"{label} {record_id or ''!s} belongs to account {result.account_id!r}, "
            f"but get_trades was asked for account {account_id!r}",
            broker_trade_id=record_id,
        )
    return result


def normalize_execution(record: Execution | Mapping[str, Any], *, account_id: str) -> Execution:
    """Validate one entry of ``TradePage.executions``.

    Raises:
        RecordValidationError: naming the execution's ``broker_execution_id`` (when it has one) and why.
    """
    return _structure(record, Execution, account_id=account_id, label="execution", id_field="broker_execution_id")


def normalize_position(record: Position | Mapping[str, Any], *, account_id: str) -> Position:
    """Validate one entry of ``TradePage.positions``.

    Raises:
        RecordValidationError: saying which position is wrong and why.
    """
    return _structure(record, Position, account_id=account_id, label="position", id_field=None)


def normalize_any_cancellation(
    record: TradeCancellation | ExecutionCancellation | Mapping[str, Any], *, account_id: str
) -> TradeCancellation | ExecutionCancellation:
    """Validate one entry of ``TradePage.cancellations``: a trade's or (``broker_execution_id``) an execution's.

    Raises:
        RecordValidationError: naming the cancelled record's id (when there is one) and why.
    """
    if isinstance(record, ExecutionCancellation) or (
        isinstance(record, Mapping) and "broker_execution_id" in record and "broker_trade_id" not in record
    ):
        return _structure(
            record,
            ExecutionCancellation,
            account_id=account_id,
            label="cancellation of execution",
            id_field="broker_execution_id",
        )
    return normalize_cancellation(record, account_id=account_id)
