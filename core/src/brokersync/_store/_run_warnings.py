"""A run's data-quality warnings in its audit row (``sync_runs.warnings``, JSON text).

The column holds a JSON list: one object per kept warning (``message``, ``account_id``,
``record_id``, ``code``), and, when the run had more than it kept, a last object with code
:data:`MORE_WARNINGS` saying how many more (``"more": N``), so the row reads right on its own.
Messages are redacted again on the way in: the row must hold no secret whatever produced it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from brokersync._redact import redact
from brokersync.results import SyncWarning

__all__ = ["MORE_WARNINGS", "warnings_from_json", "warnings_json"]

#: The code of the last entry when some warnings were not kept.
MORE_WARNINGS = "brokersync.more_warnings"


def warnings_json(warnings: Sequence[SyncWarning], count: int) -> str | None:
    """The column's value for ``warnings`` kept out of ``count`` (``None``: the run had none)."""
    if not count and not warnings:
        return None
    items: list[dict[str, Any]] = [
        {
            "message": redact(w.message),
            "account_id": w.account_id,
            "record_id": redact(w.record_id) if w.record_id is not None else None,
            "code": w.code,
        }
        for w in warnings
    ]
    more = count - len(warnings)
    if more > 0:
        items.append({"message": f"and {more} more warnings", "code": MORE_WARNINGS, "more": more})
    return json.dumps(items)


def warnings_from_json(text: str | None) -> tuple[tuple[SyncWarning, ...], int]:
    """The kept warnings and the total count from the column's value (rows before 0007 hold ``NULL``)."""
    if not text:
        return (), 0
    kept: list[SyncWarning] = []
    more = 0
    for item in json.loads(text):
        if item.get("code") == MORE_WARNINGS:
            more += int(item.get("more", 0))
            continue
        kept.append(
            SyncWarning(
                message=str(item.get("message", "")),
                account_id=item.get("account_id"),
                record_id=item.get("record_id"),
                code=item.get("code"),
            )
        )
    return tuple(kept), len(kept) + more
