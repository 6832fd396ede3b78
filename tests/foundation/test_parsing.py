"""brokersync.parsing: broker numbers, sides and times read exactly, bad values refused by name."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from brokersync import Direction, Side
from brokersync.parsing import (
    is_missing,
    parse_decimal,
    parse_decimal_optional,
    parse_direction,
    parse_side,
    parse_time,
    parse_time_optional,
)

UTC = dt.UTC


@pytest.mark.parametrize(
    ("text", "kwargs", "expected"),
    [
        ("5850.25", {}, Decimal("5850.25")),
        ("0.1", {}, Decimal("0.1")),
        ("-0.25", {}, Decimal("-0.25")),
        ("+3", {}, Decimal("3")),
        ("1,234,567.50", {}, Decimal("1234567.50")),
        ("(12.50)", {}, Decimal("-12.50")),
        ("1e-8", {}, Decimal("1e-8")),
        ("1.234,56", {"decimal_comma": True}, Decimal("1234.56")),
        ("1 234,56", {"decimal_comma": True}, Decimal("1234.56")),
        ("0,5", {"decimal_comma": True}, Decimal("0.5")),
        (7, {}, Decimal(7)),
    ],
)
def test_parse_decimal_reads_broker_text_exactly(text, kwargs, expected):
    result = parse_decimal(text, **kwargs)
    assert result == expected
    assert isinstance(result, Decimal)


def test_parse_decimal_keeps_the_text_scale():
    assert str(parse_decimal("1.50")) == "1.50"


@pytest.mark.parametrize("bad", ["", "abc", "1.2.3", "NaN", "inf", "--"])
def test_parse_decimal_refuses_what_is_not_a_number_naming_the_field(bad):
    with pytest.raises(ValueError, match="price"):
        parse_decimal(bad, field="price")


def test_parse_decimal_refuses_floats():
    with pytest.raises(TypeError, match="float"):
        parse_decimal(0.1)  # type: ignore[arg-type]


def test_missing_values_are_none():
    assert parse_decimal_optional("--") is None
    assert parse_decimal_optional("") is None
    assert parse_decimal_optional(None) is None
    assert parse_time_optional("--") is None
    assert is_missing(" -- ")
    assert not is_missing("0")


@pytest.mark.parametrize(
    ("text", "side"),
    [
        ("BUY", Side.BUY),
        ("b", Side.BUY),
        ("BOT", Side.BUY),
        ("Buy to Open", Side.BUY),
        ("SELL", Side.SELL),
        ("SLD", Side.SELL),
        ("Sell to Close", Side.SELL),
        ("sell_short", Side.SELL),
    ],
)
def test_parse_side(text, side):
    assert parse_side(text) is side


def test_parse_side_refuses_unknown_text():
    with pytest.raises(ValueError, match="'hold' is not a side"):
        parse_side("hold")


def test_direction_from_side_or_word():
    assert parse_direction("BOT") is Direction.LONG
    assert parse_direction("short") is Direction.SHORT
    assert Side.SELL.direction is Direction.SHORT
    assert Side.SELL.sign == -1


@pytest.mark.parametrize(
    ("value", "tz", "expected"),
    [
        ("2024-11-05T14:30:12Z", "UTC", dt.datetime(2024, 11, 5, 14, 30, 12, tzinfo=UTC)),
        ("2024-11-05T09:30:12-05:00", "UTC", dt.datetime(2024, 11, 5, 14, 30, 12, tzinfo=UTC)),
        # RFC 3339 with nanoseconds (OANDA): truncated to microseconds, never rounded into the next second
        ("2024-11-05T14:30:12.999999999Z", "UTC", dt.datetime(2024, 11, 5, 14, 30, 12, 999999, tzinfo=UTC)),
        # IBKR layouts in the statement's zone
        ("20241105;093012", "America/New_York", dt.datetime(2024, 11, 5, 14, 30, 12, tzinfo=UTC)),
        ("2024-11-05, 09:30:12", "America/New_York", dt.datetime(2024, 11, 5, 14, 30, 12, tzinfo=UTC)),
        ("20240705;093012", "America/New_York", dt.datetime(2024, 7, 5, 13, 30, 12, tzinfo=UTC)),
        ("20241105", "America/New_York", dt.datetime(2024, 11, 5, 5, 0, tzinfo=UTC)),
        # a trailing abbreviation wins over the configured zone (the statement says which it used)
        ("20250530;122935 EDT", "America/New_York", dt.datetime(2025, 5, 30, 16, 29, 35, tzinfo=UTC)),
        ("2025-05-22 20:41:57 AEST", "America/New_York", dt.datetime(2025, 5, 22, 10, 41, 57, tzinfo=UTC)),
        ("28 August, 2012 10:37 AM EDT", "UTC", dt.datetime(2012, 8, 28, 14, 37, tzinfo=UTC)),
        # epoch in s / ms / ns, told apart by magnitude
        ("1730817012", "UTC", dt.datetime(2024, 11, 5, 14, 30, 12, tzinfo=UTC)),
        (1730817012123, "UTC", dt.datetime(2024, 11, 5, 14, 30, 12, 123000, tzinfo=UTC)),
        ("1730817012123456789", "UTC", dt.datetime(2024, 11, 5, 14, 30, 12, 123456, tzinfo=UTC)),
        ("11/05/2024 09:30:12", "America/Chicago", dt.datetime(2024, 11, 5, 15, 30, 12, tzinfo=UTC)),
    ],
)
def test_parse_time_layouts(value, tz, expected):
    result = parse_time(value, tz=tz)
    assert result == expected
    assert result.tzinfo is UTC


def test_parse_time_refuses_ambiguous_and_skipped_local_times():
    with pytest.raises(ValueError, match="ambiguous"):
        parse_time("20241103;013000", tz="America/New_York")  # 01:30 happens twice
    with pytest.raises(ValueError, match="does not exist"):
        parse_time("20240310;023000", tz="America/New_York")  # 02:30 is skipped


def test_parse_time_refuses_garbage_and_unknown_zones():
    with pytest.raises(ValueError, match="'yesterday' is not a time"):
        parse_time("yesterday")
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        parse_time("20241105;093012", tz="Mars/Olympus")


@pytest.mark.parametrize(
    ("zone_name", "day"),
    [
        ("America/New_York", dt.date(2024, 3, 10)),
        ("America/New_York", dt.date(2024, 11, 3)),
        ("Australia/Lord_Howe", dt.date(2024, 4, 7)),  # a 30-minute change
        ("Australia/Lord_Howe", dt.date(2024, 10, 6)),
        ("Europe/Dublin", dt.date(2024, 10, 27)),  # "negative" daylight saving in the tz database
    ],
)
def test_local_times_read_per_minute_agree_with_zoneinfo_around_every_change(zone_name, day):
    # parse_time remembers each zone's offset per wall-clock minute: every second of a day with a
    # change must still read exactly as zoneinfo says, and a time that happens twice or never must
    # be refused every time it is read, not only the first.
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(zone_name)
    start = dt.datetime.combine(day, dt.time())
    for step in range(0, 24 * 3600, 97):
        naive = start + dt.timedelta(seconds=step)
        text = naive.strftime("%Y-%m-%d %H:%M:%S")
        first, second = naive.replace(tzinfo=zone, fold=0), naive.replace(tzinfo=zone, fold=1)
        for _ in range(2):
            if first.utcoffset() != second.utcoffset():
                with pytest.raises(ValueError, match="ambiguous|does not exist"):
                    parse_time(text, tz=zone_name)
            else:
                assert parse_time(text, tz=zone_name) == first.astimezone(UTC), text


@pytest.mark.parametrize(
    ("text", "expected"),
    [("12", "12"), ("-0.5", "-0.5"), ("+3.25", "3.25"), ("007", "7"), ("1.", "1"), ("-0", "-0"), (" 5", "5"),
     ("5 ", "5"), ("1e3", "1E+3"), ("1,234.5", "1234.5")],
)  # fmt: skip
def test_plain_numbers_keep_their_exact_value_and_scale(text, expected):
    # the common case ("1234.5") skips the cleaning rules: what it gives must be what they give
    assert str(parse_decimal(text)) == expected
