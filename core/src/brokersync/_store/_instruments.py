"""Instruments and raw records as the execution tables store them (compact JSON), and back."""

from __future__ import annotations

import datetime as dt
import functools
import json
from decimal import Decimal
from typing import Any

from brokersync.models import Instrument

__all__ = ["instrument_json", "instrument_of", "json_default"]


# --- instruments as JSON -----------------------------------------------------------------------


@functools.lru_cache(maxsize=8192)
def instrument_json(instrument: Instrument) -> str:
    """The instrument as compact JSON (what ``executions.instrument`` stores)."""
    data = {
        "symbol": instrument.symbol,
        "asset_class": instrument.asset_class.value,
        "currency": instrument.currency,
        "multiplier": str(instrument.multiplier),
        "instrument_id": instrument.instrument_id,
        "underlying": instrument.underlying,
        "expiry": instrument.expiry.isoformat() if instrument.expiry else None,
        "strike": None if instrument.strike is None else str(instrument.strike),
        "right": instrument.right.value if instrument.right else None,
        "exchange": instrument.exchange,
    }
    return json.dumps({k: v for k, v in data.items() if v is not None}, sort_keys=True, separators=(",", ":"))


@functools.lru_cache(maxsize=8192)
def instrument_of(text: str) -> Instrument:
    data = json.loads(text)
    for name in ("multiplier", "strike"):
        if name in data:
            data[name] = Decimal(data[name])
    return Instrument(**data)


def json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)
