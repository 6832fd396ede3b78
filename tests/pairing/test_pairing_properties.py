"""Properties of pairing for any history: conservation, exact P&L and fees, order independence."""

from __future__ import annotations

import sys
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))

from brokersync import Execution, ExecutionKind
from brokersync.pairing import PairingResult, pair_executions
from pairing_support import ES, PUT, STOCK, ex, oracle


@st.composite
def histories(draw: st.DrawFn) -> list[Execution]:
    instrument = draw(st.sampled_from([STOCK, ES, PUT]))
    count = draw(st.integers(min_value=0, max_value=14))
    result = []
    for index in range(count):
        kind = draw(st.sampled_from(["fill"] * 6 + ["expiry", "assignment"]))
        result.append(
            ex(
                f"E{index:02d}",
                draw(st.sampled_from(["buy", "sell"])),
                draw(st.integers(min_value=1, max_value=6)),
                str(draw(st.decimals(min_value=0, max_value=500, places=2))),
                draw(st.integers(min_value=0, max_value=8)),  # equal times happen: the id breaks the tie
                fees=str(draw(st.decimals(min_value=0, max_value=5, places=draw(st.sampled_from([2, 3]))))),
                # mostly the instrument's currency (implicit or named), sometimes a coin or BNB
                fee_currency=draw(st.sampled_from([None, None, None, "USD", "BTC", "BNB"])),
                kind=kind,
                instrument=instrument,
            )
        )
    return result


def _net(executions: list[Execution]) -> Decimal:
    return sum((e.signed_quantity for e in executions), Decimal(0))


def _currency(e: Execution) -> str:
    return e.fee_currency or e.instrument.currency


def _check_conservation(executions: list[Execution], result: PairingResult) -> None:
    by_id = {e.broker_execution_id: e for e in executions}
    quantity: dict[str, Decimal] = defaultdict(Decimal)
    fees: dict[str, Decimal] = defaultdict(Decimal)
    per_currency: dict[str, Decimal] = defaultdict(Decimal)  # what the round trips and lots hold
    for trip in result.round_trips:
        opening, closing = trip.raw["opening_execution_id"], trip.raw["closing_execution_id"]
        quantity[opening] += trip.quantity
        quantity[closing] += trip.quantity
        open_fee, close_fee = Decimal(trip.raw["opening_fee"]), Decimal(trip.raw["closing_fee"])
        fees[opening] += open_fee
        fees[closing] += close_fee
        # fees holds the shares in the round trip's currency, other_fees the others per currency
        shares: dict[str, Decimal] = defaultdict(Decimal)
        for share, execution_id, name in ((open_fee, opening, "opening"), (close_fee, closing, "closing")):
            currency = _currency(by_id[execution_id])
            shares[currency] += share
            named = trip.raw.get(f"{name}_fee_currency")
            assert named == (None if currency == trip.currency else currency)
        assert trip.fees == shares.pop(trip.currency, Decimal(0))
        assert {c: Decimal(v) for c, v in trip.raw.get("other_fees", {}).items()} == shares
        assert all(isinstance(v, str) for v in trip.raw.get("other_fees", {}).values())
        per_currency[trip.currency] += trip.fees
        for currency, amount in trip.raw.get("other_fees", {}).items():
            per_currency[currency] += Decimal(amount)
    for lot in result.open_lots:
        quantity[lot.broker_execution_id] += lot.quantity
        fees[lot.broker_execution_id] += lot.fees
        assert lot.fee_currency == by_id[lot.broker_execution_id].fee_currency
        per_currency[_currency(by_id[lot.broker_execution_id])] += lot.fees
    # every unit of an execution closed something or opened a lot (closed later or still open) ...
    assert {k: v for k, v in quantity.items()} == {k: e.quantity for k, e in by_id.items()}
    # ... and its fees were shared out to the cent (the fee's own exponent), adding up exactly
    assert {k: fees[k] for k in by_id} == {k: e.fees for k, e in by_id.items()}
    # ... and per currency, round trips plus open lots hold exactly the executions' fees
    paid: dict[str, Decimal] = defaultdict(Decimal)
    for e in executions:
        paid[_currency(e)] += e.fees
    assert {c: v for c, v in per_currency.items() if v} == {c: v for c, v in paid.items() if v}
    assert result.position == _net(executions)
    assert len({lot.direction for lot in result.open_lots}) <= 1


@given(histories(), st.sampled_from(["fifo", "lifo"]))
def test_quantities_and_fees_are_conserved(executions: list[Execution], method: str) -> None:
    _check_conservation(executions, pair_executions(executions, method=method))


@given(histories(), st.sampled_from(["fifo", "lifo"]))
def test_round_trips_and_pnl_match_unit_by_unit_pairing(executions: list[Execution], method: str) -> None:
    result = pair_executions(executions, method=method)
    got = {t.broker_trade_id: (int(t.quantity), t.realized_pnl) for t in result.round_trips}
    assert got == oracle(executions, lifo=method == "lifo")


@given(histories(), st.randoms(use_true_random=False))
def test_the_order_executions_arrive_in_does_not_matter(executions: list[Execution], random: object) -> None:
    shuffled = list(executions)
    random.shuffle(shuffled)  # type: ignore[attr-defined]
    assert pair_executions(shuffled) == pair_executions(executions)


@given(histories(), st.data())
def test_pairing_in_any_number_of_steps_equals_pairing_at_once(
    executions: list[Execution], data: st.DataObject
) -> None:
    ordered = sorted(executions, key=lambda e: (e.executed_at, e.broker_execution_id))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(ordered)), max_size=4)))
    lots: tuple = ()
    trips: list = []
    for start, end in zip([0, *cuts], [*cuts, len(ordered)], strict=True):
        step = pair_executions(ordered[start:end], open_lots=lots)
        trips.extend(step.round_trips)
        lots = step.open_lots
    whole = pair_executions(executions)
    assert tuple(trips) == whole.round_trips
    assert lots == whole.open_lots


@settings(max_examples=200)
@given(histories())
def test_fifo_and_lifo_conserve_the_same_cash(executions: list[Execution]) -> None:
    # Realized P&L plus what the open lots cost equals the history's cash flow, whatever the matching.
    def cash(e: Execution) -> Decimal:
        price = Decimal(0) if e.kind is ExecutionKind.EXPIRY else e.price
        return -e.signed_quantity * price * e.instrument.multiplier

    flow = sum((cash(e) for e in executions), Decimal(0))
    for method in ("fifo", "lifo"):
        result = pair_executions(executions, method=method)
        realized = sum((t.realized_pnl or Decimal(0) for t in result.round_trips), Decimal(0))
        multiplier = executions[0].instrument.multiplier if executions else Decimal(1)
        held = sum((-lot.signed_quantity * lot.price * multiplier for lot in result.open_lots), Decimal(0))
        assert realized + held == flow
        assert sum((t.quantity for t in result.round_trips), Decimal(0)) + abs(result.position) == (
            sum((e.quantity for e in executions), Decimal(0))
            - sum((t.quantity for t in result.round_trips), Decimal(0))
        )
