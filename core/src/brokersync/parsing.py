"""Read broker wire values exactly: decimals from text, times in the broker's zone, sides.

Plugins use these instead of hand-written ``float(...)`` or ``.replace("Z", "+00:00")``::

    from brokersync.parsing import parse_decimal, parse_side, parse_time

    price = parse_decimal(row["tradePrice"])                          # Decimal('5850.25')
    when = parse_time("20241105;093012", tz="America/New_York")       # 2024-11-05 14:30:12+00:00
    side = parse_side("BOT")                                          # Side.BUY

Every function raises :class:`ValueError` with a message that names the value and what was
expected; the core reports such a record with its reason and skips it.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from brokersync.models import Direction, Side

__all__ = [
    "MISSING_VALUES",
    "is_missing",
    "parse_decimal",
    "parse_decimal_optional",
    "parse_direction",
    "parse_side",
    "parse_time",
    "parse_time_optional",
    "zone",
]

MISSING_VALUES = frozenset({"", "--", "-", "n/a", "N/A", "NA", "null", "None"})
"""Texts brokers write for "no value" (IBKR writes ``--``)."""


def is_missing(value: object) -> bool:
    """Whether ``value`` is ``None`` or one of the :data:`MISSING_VALUES` texts."""
    return value is None or (isinstance(value, str) and value.strip() in MISSING_VALUES)


# --- decimals ----------------------------------------------------------------------------------------


def parse_decimal(
    value: str | int | Decimal,
    *,
    decimal_comma: bool = False,
    field: str | None = None,
) -> Decimal:
    """Parse a broker number from its text into an exact :class:`~decimal.Decimal`.

    Accepts ``"1234.5"``, ``"-0.25"``, ``"1,234.50"`` (thousands separators), ``"(12.50)"``
    (accounting negative), ``"$2.04"`` / ``"-$25.00"`` (a currency sign), ``"1e-8"``, a leading
    ``+``, and ints. With ``decimal_comma=True`` the
    comma is the decimal mark and ``.``, spaces and ``'`` group thousands (``"1.234,50"``).

    Raises:
        TypeError: for a ``float`` (it cannot hold the broker's number exactly: pass the text).
        ValueError: for anything that is not a finite number, naming ``field`` when given.
    """
    if type(value) is str and not decimal_comma and _PLAIN.match(value):
        return Decimal(value)  # the common case ("1234.5"): nothing to clean, finite by construction
    where = f"{field}: " if field else ""
    if isinstance(value, bool):
        raise TypeError(f"{where}expected a number, got {value!r}")
    if isinstance(value, float):
        raise TypeError(f"{where}got the float {value!r}; parse the broker's text, a float cannot hold money exactly")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, str):
        result = _decimal_from_text(value, decimal_comma=decimal_comma, where=where)
    else:
        raise TypeError(f"{where}expected a number as text, got {type(value).__name__}")
    if not result.is_finite():
        raise ValueError(f"{where}{value!r} is not a finite number")
    return result


_PLAIN = re.compile(r"[+-]?[0-9]+(?:\.[0-9]*)?\Z")
_CURRENCY = re.compile(r"(?<![\d.,])[$€£¥]\s?|\s?[$€£¥](?![\d.,])")  # "$2.04", "-$25.00", "12,50 €"
_GROUPING = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d*)?$")
_GROUPING_COMMA = re.compile(r"^[+-]?\d{1,3}([. ']\d{3})+(,\d*)?$")


def _decimal_from_text(text: str, *, decimal_comma: bool, where: str) -> Decimal:
    cleaned = text.strip().replace("\u00a0", " ").replace("\u202f", " ")
    negative = cleaned.startswith("(") and cleaned.endswith(")")
    if negative:
        cleaned = cleaned[1:-1].strip()
    cleaned = _CURRENCY.sub("", cleaned).strip()
    if decimal_comma:
        if _GROUPING_COMMA.match(cleaned):
            cleaned = re.sub(r"[. ']", "", cleaned)
        cleaned = cleaned.replace(",", ".")
    elif _GROUPING.match(cleaned):
        cleaned = cleaned.replace(",", "")
    if not cleaned or cleaned.lower() in ("nan", "inf", "-inf", "+inf", "infinity", "-infinity", "snan"):
        raise ValueError(f"{where}{text!r} is not a number")
    try:
        result = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(f"{where}{text!r} is not a number") from None
    return -result if negative else result


def parse_decimal_optional(
    value: str | int | Decimal | None, *, decimal_comma: bool = False, field: str | None = None
) -> Decimal | None:
    """Like :func:`parse_decimal`, but ``None`` and the :data:`MISSING_VALUES` (``"--"``) give ``None``."""
    if is_missing(value):
        return None
    assert value is not None
    return parse_decimal(value, decimal_comma=decimal_comma, field=field)


# --- sides -------------------------------------------------------------------------------------------

_BUY = frozenset({"buy", "b", "bot", "bought", "long", "buy to open", "buy to close", "buytoopen", "buytoclose"})
_SELL = frozenset(
    {"sell", "s", "sld", "sold", "short", "sell short", "sell to open", "sell to close", "selltoopen", "selltoclose"}
)


def parse_side(value: str | Side) -> Side:
    """Read a broker's side text: ``BUY``/``B``/``BOT``/``Buy to Open`` -> BUY, ``SELL``/``SLD``/... -> SELL.

    Raises:
        ValueError: for any other text.
    """
    if isinstance(value, Side):
        return value
    text = " ".join(str(value).strip().lower().replace("_", " ").split())
    if text in _BUY:
        return Side.BUY
    if text in _SELL:
        return Side.SELL
    raise ValueError(f"{value!r} is not a side (expected buy or sell)")


def parse_direction(value: str | Side | Direction) -> Direction:
    """Return the direction a round trip was opened in, from ``long``/``short`` or the opening side."""
    if isinstance(value, Direction):
        return value
    if isinstance(value, str) and value.strip().lower() in ("long", "short"):
        return Direction(value.strip().lower())
    return parse_side(value).direction


# --- times -------------------------------------------------------------------------------------------


@lru_cache(maxsize=64)
def zone(name: str) -> dt.tzinfo:
    """Return the :class:`zoneinfo.ZoneInfo` for an IANA name (``"America/New_York"``), ``UTC`` for ``"UTC"``.

    Raises:
        ValueError: naming the zone when it is unknown.
    """
    if name.upper() in ("UTC", "Z", "GMT"):
        return dt.UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (expected an IANA name such as 'America/New_York')") from None


# North American abbreviations brokers append (IBKR "EDT"), with their UTC offsets in hours.
_ABBREVIATIONS = {
    "UTC": 0,
    "GMT": 0,
    "Z": 0,
    "EST": -5,
    "EDT": -4,
    "CST": -6,
    "CDT": -5,
    "MST": -7,
    "MDT": -6,
    "PST": -8,
    "PDT": -7,
    "BST": 1,
    "CET": 1,
    "CEST": 2,
    "EET": 2,
    "EEST": 3,
    "JST": 9,
    "HKT": 8,
    "SGT": 8,
    "AEST": 10,
    "AEDT": 11,
}

# Local layouts (no offset in the text); tried in order after ISO 8601.
_LAYOUTS = (
    "%Y%m%d;%H%M%S",
    "%Y%m%d %H%M%S",
    "%Y%m%d;%H:%M:%S",
    "%Y%m%d %H:%M:%S",
    "%Y-%m-%d, %H:%M:%S",
    "%Y-%m-%d;%H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%Y/%m/%d %H:%M:%S",
    "%Y.%m.%d %H:%M:%S",
    "%Y.%m.%d %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %H:%M",
    "%m/%d/%y %H:%M:%S",
    "%d.%m.%Y %H:%M:%S",
    "%d %B, %Y %I:%M %p",
    "%Y%m%d",
    "%Y-%m-%d",
    "%m/%d/%Y",
)
_EPOCH = re.compile(r"^[+-]?\d+(\.\d+)?$")
_DATE_ONLY = re.compile(r"^(19|20)\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])$")  # yyyyMMdd, not an epoch
_FRACTION = re.compile(r"(\.\d{6})\d+")
_ABBREVIATION = re.compile(r"^(?P<time>.*?\S)\s*(?P<abbr>[A-Z]{2,5})$")


def parse_time(
    value: str | int | Decimal | dt.datetime,
    *,
    tz: str | dt.tzinfo = "UTC",
    epoch_unit: str | None = None,
) -> dt.datetime:
    """Read a broker timestamp as a timezone-aware UTC :class:`~datetime.datetime`.

    Understands:

    - ISO 8601 / RFC 3339 with ``Z`` or an offset, including 9 fractional digits (truncated to
      microseconds): ``2024-11-05T14:30:12.123456789Z``;
    - epoch numbers (ints or digit text) in seconds, milliseconds, microseconds or nanoseconds,
      told apart by magnitude unless ``epoch_unit`` (``"s"``, ``"ms"``, ``"us"``, ``"ns"``) says;
    - local layouts read in ``tz`` (the broker's IANA zone): ``20241105;093012``,
      ``2024-11-05, 09:30:12``, ``2024-11-05 09:30:12``, ``11/05/2024 09:30:12``, ``20241105``, ...
    - a trailing zone abbreviation (``20241105;093012 EDT``, ``2025-05-22 20:41:57 AEST``): the
      abbreviation's offset wins over ``tz`` (the statement says which zone it used).

    A local time that a daylight-saving change makes ambiguous (it happens twice) or non-existent
    (it is skipped) in ``tz`` raises: guessing would shift a trade by an hour.

    Raises:
        ValueError: naming the value, for text in no known layout, an unknown zone, or an
            ambiguous or non-existent local time.
    """
    zone_ = zone(tz) if isinstance(tz, str) else tz
    if isinstance(value, dt.datetime):
        return _localize(value, zone_, value) if value.tzinfo is None else value.astimezone(dt.UTC)
    if isinstance(value, bool):
        raise TypeError(f"{value!r} is not a time")
    if isinstance(value, int | Decimal):
        return _from_epoch(Decimal(value), epoch_unit, value)
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is not a time (expected text or an epoch number)")
    text = value.strip()
    if not text:
        raise ValueError("an empty text is not a time")
    if _EPOCH.match(text) and not _DATE_ONLY.match(text):
        return _from_epoch(Decimal(text), epoch_unit, value)
    iso = _from_iso(text, zone_, value)
    if iso is not None:
        return iso
    match = _ABBREVIATION.match(text)
    if match and match["abbr"] in _ABBREVIATIONS:
        naive = _from_layouts(match["time"].strip().rstrip(","), value)
        offset = dt.timezone(dt.timedelta(hours=_ABBREVIATIONS[match["abbr"]]))
        return naive.replace(tzinfo=offset).astimezone(dt.UTC)
    return _localize(_from_layouts(text, value), zone_, value)


def parse_time_optional(
    value: str | int | Decimal | dt.datetime | None, *, tz: str | dt.tzinfo = "UTC", epoch_unit: str | None = None
) -> dt.datetime | None:
    """Like :func:`parse_time`, but ``None`` and the :data:`MISSING_VALUES` give ``None``."""
    if is_missing(value):
        return None
    assert value is not None
    return parse_time(value, tz=tz, epoch_unit=epoch_unit)


_EPOCH_DIVISORS = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}


def _from_epoch(number: Decimal, unit: str | None, original: object) -> dt.datetime:
    if unit is None:
        magnitude = abs(number)
        unit = "s" if magnitude < 10**11 else "ms" if magnitude < 10**14 else "us" if magnitude < 10**17 else "ns"
    if unit not in _EPOCH_DIVISORS:
        raise ValueError(f"unknown epoch unit {unit!r} (expected s, ms, us or ns)")
    micros = int(number * 10**6 / _EPOCH_DIVISORS[unit])  # exact integer arithmetic, truncated to µs
    try:
        return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=micros)
    except OverflowError:
        raise ValueError(f"{original!r} is out of range as an epoch time in {unit}") from None


def _from_iso(text: str, zone_: dt.tzinfo, original: str) -> dt.datetime | None:
    if len(text) < 10 or not text[:4].isdigit() or text[4] != "-":
        return None
    candidate = _FRACTION.sub(r"\1", text)
    if candidate.endswith(("z", "Z")):
        candidate = candidate[:-1] + "+00:00"
    try:
        parsed = dt.datetime.fromisoformat(candidate)
    except ValueError:
        return None
    if len(candidate) == 10:  # a bare date is read by the layouts, in the broker's zone
        return None
    return parsed.astimezone(dt.UTC) if parsed.tzinfo is not None else _localize(parsed, zone_, original)


def _from_layouts(text: str, original: str) -> dt.datetime:
    for layout in _LAYOUTS:
        try:
            return dt.datetime.strptime(text, layout)
        except ValueError:
            continue
    raise ValueError(f"{original!r} is not a time in any layout brokersync knows")


def _localize(naive: dt.datetime, zone_: dt.tzinfo, original: object) -> dt.datetime:
    if zone_ is dt.UTC:
        return naive.replace(tzinfo=dt.UTC)
    if naive.year >= 1980:  # offsets are whole minutes since: one answer per zone and minute
        offset = _minute_offset(zone_, naive.replace(second=0, microsecond=0))
        if isinstance(offset, dt.timedelta):
            return (naive - offset).replace(tzinfo=dt.UTC)
    first = naive.replace(tzinfo=zone_, fold=0)
    second = naive.replace(tzinfo=zone_, fold=1)
    if first.utcoffset() != second.utcoffset():
        # Either the wall time happens twice (ambiguous) or not at all (skipped): a round trip
        # through UTC tells them apart.
        back = first.astimezone(dt.UTC).astimezone(zone_).replace(tzinfo=None)
        problem = "does not exist" if back != naive else "is ambiguous"
        raise ValueError(
            f"{original!r} {problem} in {zone_} (a daylight-saving change); the broker must give an offset"
        )
    return first.astimezone(dt.UTC)


@lru_cache(maxsize=4096)
def _minute_offset(zone_: dt.tzinfo, minute: dt.datetime) -> dt.timedelta | None:
    """Return the UTC offset of the wall-clock ``minute`` in ``zone_`` (``None``: a DST change makes it ambiguous).

    ``None`` also for a minute a DST change skips. An import reads thousands of rows per minute:
    this keeps the zone lookups to one per minute.
    """
    first = minute.replace(tzinfo=zone_, fold=0).utcoffset()
    second = minute.replace(tzinfo=zone_, fold=1).utcoffset()
    return first if first == second else None
