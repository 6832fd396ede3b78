"""Worked examples of pairing, as tables: what a trader would compute by hand."""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

import attrs
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from brokersync import Direction, Execution
from brokersync.pairing import pair_executions
from pairing_support import BTC_USDT, ES, PUT, ex

# (name, executions, method, expected round trips (id, direction, qty, entry, exit, pnl, fees),
#  expected open lots (opening id, signed qty, remaining fees))
EXAMPLES = [
    (
        "partial fill closing two lots",
        [ex("A", "buy", 100, "10", 1), ex("B", "buy", 50, "11", 2), ex("C", "sell", 120, "12", 3)],
        "fifo",
        [("A>C", "long", "100", "10", "12", "200", "0"), ("B>C", "long", "20", "11", "12", "20", "0")],
        [("B", "30", "0")],
    ),
    (
        "reversal: one fill closes the long and opens a short",
        [ex("A", "buy", 10, "100", 1), ex("B", "sell", 15, "90", 2), ex("C", "buy", 5, "80", 3)],
        "fifo",
        [("A>B", "long", "10", "100", "90", "-100", "0"), ("B>C", "short", "5", "90", "80", "50", "0")],
        [],
    ),
    (
        "scale-in then scale-out, FIFO",
        [
            ex("A", "buy", 1, "10", 1),
            ex("B", "buy", 1, "12", 2),
            ex("C", "sell", 1, "15", 3),
            ex("D", "sell", 1, "11", 4),
        ],
        "fifo",
        [("A>C", "long", "1", "10", "15", "5", "0"), ("B>D", "long", "1", "12", "11", "-1", "0")],
        [],
    ),
    (
        "scale-in then scale-out, LIFO",
        [
            ex("A", "buy", 1, "10", 1),
            ex("B", "buy", 1, "12", 2),
            ex("C", "sell", 1, "15", 3),
            ex("D", "sell", 1, "11", 4),
        ],
        "lifo",
        [("B>C", "long", "1", "12", "15", "3", "0"), ("A>D", "long", "1", "10", "11", "1", "0")],
        [],
    ),
    (
        "futures multiplier on a short",
        [ex("A", "sell", 2, "5000.25", 1, instrument=ES), ex("B", "buy", 2, "4990", 2, instrument=ES)],
        "fifo",
        [("A>B", "short", "2", "5000.25", "4990", "1025", "0")],
        [],
    ),
    (
        "option expiry closes at 0 whatever price it carries",
        [
            ex("A", "buy", 2, "2.50", 1, instrument=PUT, fees="1.30"),
            ex("X", "sell", 2, "0.07", 9, instrument=PUT, kind="expiry"),
        ],
        "fifo",
        [("A>X", "long", "2", "2.50", "0", "-500", "1.30")],
        [],
    ),
    (
        "assignment closes the short option leg at its recorded price",
        [
            ex("A", "sell", 1, "3.00", 1, instrument=PUT, fees="0.65"),
            ex("S", "buy", 1, "1.20", 9, instrument=PUT, kind="assignment"),
        ],
        "fifo",
        [("A>S", "short", "1", "3.00", "1.20", "180", "0.65")],
        [],
    ),
    (
        "fee proration with a remainder: the last piece takes what is left",
        [
            ex("A", "buy", 3, "10", 1, fees="1.00"),
            ex("B", "sell", 1, "11", 2, fees="0.10"),
            ex("C", "sell", 1, "11", 3, fees="0.10"),
            ex("D", "sell", 1, "11", 4, fees="0.10"),
        ],
        "fifo",
        # A's 1.00 over 3 pieces: 1.00/3 = 0.33; 0.67/2 = 0.335 -> 0.34 (half-even); the last 0.33
        [
            ("A>B", "long", "1", "10", "11", "1", "0.43"),
            ("A>C", "long", "1", "10", "11", "1", "0.44"),
            ("A>D", "long", "1", "10", "11", "1", "0.43"),
        ],
        [],
    ),
    (
        "a closing fee split over two lots and the reversal it opens",
        [ex("A", "buy", 1, "10", 1), ex("B", "buy", 2, "10", 2), ex("C", "sell", 6, "12", 3, fees="0.10")],
        "fifo",
        # C's 0.10 over 6: 1 -> 0.02 (0.0166 rounded), 2 of 5 left -> 0.03 (0.032), the open 3 keep 0.05
        [("A>C", "long", "1", "10", "12", "2", "0.02"), ("B>C", "long", "2", "10", "12", "4", "0.03")],
        [("C", "-3", "0.05")],
    ),
]


@pytest.mark.parametrize(
    ("executions", "method", "trips", "lots"), [e[1:] for e in EXAMPLES], ids=[e[0] for e in EXAMPLES]
)
def test_worked_example(
    executions: list[Execution], method: str, trips: list[tuple[str, ...]], lots: list[tuple[str, ...]]
) -> None:
    result = pair_executions(reversed(executions), method=method)  # the input order does not matter
    got = [
        (t.broker_trade_id, t.direction.value, t.quantity, t.entry_price, t.exit_price, t.realized_pnl, t.fees)
        for t in result.round_trips
    ]
    want = [(i, d, Decimal(q), Decimal(en), Decimal(x), Decimal(p), Decimal(f)) for i, d, q, en, x, p, f in trips]
    assert got == want
    assert [(lot.broker_execution_id, lot.signed_quantity, lot.fees) for lot in result.open_lots] == [
        (i, Decimal(q), Decimal(f)) for i, q, f in lots
    ]


def test_round_trips_carry_times_currency_and_the_executions_they_pair() -> None:
    result = pair_executions(
        [ex("A", "sell", 2, "5000", 1, instrument=ES), ex("B", "buy", 2, "4990", 7, instrument=ES)]
    )
    (trip,) = result.round_trips
    assert trip.direction is Direction.SHORT
    assert (trip.opened_at.minute, trip.closed_at and trip.closed_at.minute) == (31, 37)
    assert trip.symbol == "ESZ5"
    assert trip.currency == "USD"
    assert trip.raw["opening_execution_id"] == "A"
    assert trip.raw["closing_execution_id"] == "B"


def test_continuing_from_open_lots_equals_pairing_everything_at_once() -> None:
    history = [
        ex("A", "buy", 3, "10", 1, fees="1.00"),
        ex("B", "sell", 1, "11", 2, fees="0.10"),
        ex("C", "sell", 4, "12", 3, fees="0.07"),
        ex("D", "buy", 1, "9", 4),
    ]
    whole = pair_executions(history)
    first = pair_executions(history[:2])
    rest = pair_executions(history[2:], open_lots=first.open_lots)
    assert first.round_trips + rest.round_trips == whole.round_trips
    assert rest.open_lots == whole.open_lots


def test_a_very_long_pair_of_ids_becomes_a_stable_hash() -> None:
    long_a, long_b = "a" * 200, "b" * 200
    first = pair_executions([ex(long_a, "buy", 1, "1", 1), ex(long_b, "sell", 1, "2", 2)]).round_trips[0]
    again = pair_executions([ex(long_a, "buy", 1, "1", 1), ex(long_b, "sell", 1, "2", 2)]).round_trips[0]
    assert first.broker_trade_id == again.broker_trade_id
    assert first.broker_trade_id.startswith("rt:")
    assert len(first.broker_trade_id) <= 255


def test_round_trips_built_by_the_loop_equal_validated_trades() -> None:
    """The loop builds round trips without re-running the model's validators: same values, same types."""
    import attrs
    from brokersync import Trade

    executions = [
        ex("b1", "buy", 3, "10.50", 0, fees="1.00"),
        ex("s1", "sell", 5, "11.25", 1, fees="0.35"),  # closes 3, reverses into a short of 2
        ex("b2", "buy", 2, "9", 2, fees="0.01"),
        ex("x1", "sell", 1, "0", 3, kind="expiry", instrument=PUT),
        ex("b3", "buy", 1, "2.5", 4, instrument=PUT),
        ex("c1", "buy", 2, "42000", 5, fees="0.0002", fee_currency="BTC", instrument=BTC_USDT),
        ex("c2", "sell", 1, "43000", 6, fees="0.0001", fee_currency="BNB", instrument=BTC_USDT),
    ]
    trips = pair_executions(executions).round_trips + pair_executions(executions, method="lifo").round_trips
    assert len(trips) >= 3
    for trip in trips:
        values = {field.name: getattr(trip, field.name) for field in attrs.fields(Trade)}
        validated = Trade(**values)
        assert trip == validated
        assert trip.raw == validated.raw
        for name, value in values.items():
            assert type(value) is type(getattr(validated, name)), name
            assert str(value) == str(getattr(validated, name)), name


# Fees in other currencies (ADR 0010, amendment): a round trip's ``fees`` holds only the shares in its
# own currency (USDT here); the others stay in ``raw["other_fees"]``, per currency, never converted.
# (name, executions, expected round trips (id, pnl, fees, other fees, opening fee currency, closing
#  fee currency), expected open lots (opening id, signed qty, remaining fees, fee currency))
FOREIGN_FEES = [
    (
        "a spot buy pays its fee in the coin bought, the sell in the quote",
        [
            ex("A", "buy", "0.5", "42000", 1, fees="0.0005", fee_currency="BTC", instrument=BTC_USDT),
            ex("B", "sell", "0.5", "43000", 2, fees="21.50", fee_currency="USDT", instrument=BTC_USDT),
        ],
        [("A>B", "500.0", "21.50", {"BTC": "0.0005"}, "BTC", None)],
        [],
    ),
    (
        "everything paid in BNB: no USDT fee at all",
        [
            ex("A", "buy", 1, "42000", 1, fees="0.00075", fee_currency="BNB", instrument=BTC_USDT),
            ex("B", "sell", 1, "41000", 2, fees="0.00075", fee_currency="BNB", instrument=BTC_USDT),
        ],
        [("A>B", "-1000", "0", {"BNB": "0.00150"}, "BNB", "BNB")],
        [],
    ),
    (
        "mixed currencies over partial closes, a reversal and remainders",
        [
            ex("A", "buy", 2, "100", 1, fees="0.0010", fee_currency="BTC", instrument=BTC_USDT),
            ex("B", "buy", 1, "101", 2, fees="0.05", instrument=BTC_USDT),  # None: the instrument's USDT
            # C's 0.0015 BNB over 4: 2 of 4 -> 0.00075 -> 0.0008 (half-even); 1 of 2 -> 0.00035 -> 0.0004;
            # the short of 1 it opens keeps 0.0003 BNB
            ex("C", "sell", 4, "102", 3, fees="0.0015", fee_currency="BNB", instrument=BTC_USDT),
            ex("D", "buy", 1, "99", 4, fees="0.02", fee_currency="USDT", instrument=BTC_USDT),
            # E's 0.0010 BTC: 1 of 3 -> 0.000333 -> 0.0003; the open 2 keep 0.0007 BTC
            ex("E", "buy", 3, "100", 5, fees="0.0010", fee_currency="BTC", instrument=BTC_USDT),
            ex("F", "sell", 1, "103", 6, fees="0.01", instrument=BTC_USDT),
        ],
        [
            ("A>C", "4", "0", {"BTC": "0.0010", "BNB": "0.0008"}, "BTC", "BNB"),
            ("B>C", "1", "0.05", {"BNB": "0.0004"}, None, "BNB"),
            ("C>D", "3", "0.02", {"BNB": "0.0003"}, "BNB", None),
            ("E>F", "3", "0.01", {"BTC": "0.0003"}, "BTC", None),
        ],
        [("E", "2", "0.0007", "BTC")],
    ),
]


@pytest.mark.parametrize(
    ("executions", "trips", "lots"), [e[1:] for e in FOREIGN_FEES], ids=[e[0] for e in FOREIGN_FEES]
)
def test_fees_in_other_currencies_stay_apart(
    executions: list[Execution], trips: list[tuple[object, ...]], lots: list[tuple[str, ...]]
) -> None:
    result = pair_executions(reversed(executions))
    got = [
        (
            t.broker_trade_id,
            t.realized_pnl,
            t.fees,
            t.raw.get("other_fees"),
            t.raw.get("opening_fee_currency"),
            t.raw.get("closing_fee_currency"),
        )
        for t in result.round_trips
    ]
    want = [(i, Decimal(p), Decimal(f), other, oc, cc) for i, p, f, other, oc, cc in trips]  # type: ignore[arg-type]
    assert got == want
    assert all(t.currency == "USDT" for t in result.round_trips)
    # raw other fees are exact text: the same digits as the shares, never a float
    assert [t.raw.get("other_fees") for t in result.round_trips] == [w[3] for w in want]
    assert [(lot.broker_execution_id, lot.signed_quantity, lot.fees, lot.fee_currency) for lot in result.open_lots] == [
        (i, Decimal(q), Decimal(f), c) for i, q, f, c in lots
    ]


def test_a_lot_carries_its_fee_currency_to_the_next_call() -> None:
    history = [
        ex("A", "buy", 3, "100", 1, fees="0.0010", fee_currency="BTC", instrument=BTC_USDT),
        ex("B", "sell", 1, "101", 2, fees="0.10", instrument=BTC_USDT),
        ex("C", "sell", 2, "102", 3, fees="0.20", instrument=BTC_USDT),
    ]
    first = pair_executions(history[:2])
    assert [(lot.fees, lot.fee_currency) for lot in first.open_lots] == [(Decimal("0.0007"), "BTC")]
    rest = pair_executions(history[2:], open_lots=first.open_lots)
    assert rest.round_trips == pair_executions(history).round_trips[1:]
    (trip,) = rest.round_trips
    assert (trip.fees, trip.raw["other_fees"]) == (Decimal("0.20"), {"BTC": "0.0007"})
    # a lot built without a currency (code written before lots had one) is in the instrument's
    legacy = attrs.evolve(first.open_lots[0], fee_currency=None)
    (old,) = pair_executions(history[2:], open_lots=[legacy]).round_trips
    assert (old.fees, "other_fees" in old.raw) == (Decimal("0.2007"), False)


def test_a_round_trip_with_fees_in_its_own_currency_only_has_no_other_fees() -> None:
    (trip,) = pair_executions(
        [
            ex("A", "buy", 1, "10", 1, fees="0.01", fee_currency="USDT", instrument=BTC_USDT),
            ex("B", "sell", 1, "11", 2, fees="0.02", instrument=BTC_USDT),
        ]
    ).round_trips
    assert trip.fees == Decimal("0.03")
    assert not {"other_fees", "opening_fee_currency", "closing_fee_currency", "fee_currency"} & set(trip.raw)
