"""The pure rules: fee splitting, exact numbers, the cursor."""

from __future__ import annotations

from decimal import Decimal

import pytest
from brokersync_tradovate.parse import Cursor, fee_shares, loads, number
from hypothesis import given
from hypothesis import strategies as st


@given(
    cents=st.integers(min_value=0, max_value=10**6),
    extra_places=st.sampled_from([0, 1, 3]),
    parts=st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=8),
)
def test_the_pieces_of_a_fully_paired_fill_add_up_exactly_to_its_fee(cents, extra_places, parts):
    total = Decimal(cents).scaleb(-2 - extra_places)
    qty = Decimal(sum(parts))
    shares = fee_shares(total, qty, [Decimal(p) for p in parts])
    assert sum(shares) == total
    quantum = Decimal(1).scaleb(-max(2, 2 + extra_places))
    for share, part in zip(shares, parts, strict=True):
        assert abs(share - total * part / qty) < quantum  # less than a cent (or the fee's last place) off pro rata
        assert share == share.quantize(quantum)


def test_an_earlier_pairs_share_does_not_change_when_later_pairs_arrive():
    total = Decimal("4.37")
    first = fee_shares(total, Decimal(3), [Decimal(1)])
    later = fee_shares(total, Decimal(3), [Decimal(1), Decimal(2)])
    assert first[0] == later[0] == Decimal("1.46") and later[1] == Decimal("2.91")


def test_numbers_come_from_the_json_text_and_floats_are_refused():
    body = loads('{"price": 71.37, "qty": 2, "p": 0.1}')
    assert body["price"] == Decimal("71.37") and number(body["p"], "p") == Decimal("0.1")
    with pytest.raises(TypeError, match="float"):
        number(71.37, "price")


@pytest.mark.parametrize("stored", [None, "", "garbage", '{"pair": "x"}', "[]"])
def test_an_unreadable_cursor_starts_over(stored):
    assert Cursor.decode(stored) == Cursor()


def test_the_cursor_round_trips():
    cursor = Cursor(pair=700012, fill=500031, report=1100040)
    assert Cursor.decode(cursor.encode()) == cursor
