"""The Flex parser against statements generated from data tables (ground truth computed in flexgen)."""

from __future__ import annotations

import datetime as dt
import io
import time
import tracemalloc
from collections import defaultdict, deque
from collections.abc import Iterable
from decimal import Decimal

import attrs
import pytest
from brokersync import AssetClass, Execution, ExecutionKind, OpenClose, OptionRight, Side
from brokersync_ibkr.parse import FlexFormatError, RowError, iter_statement, parse_flex_time, parse_statement
from flexgen import Fill, d, fifo, file_order, live_fills, scenario, statement_xml, utc


@pytest.fixture(scope="module")
def parsed() -> tuple[list[Fill], object]:
    fills, accounts = scenario()
    return fills, parse_statement(statement_xml(fills, accounts))


# An independent FIFO of the parsed executions (the core's pairing is checked against it).


@attrs.define
class _Lot:
    quantity: Decimal  # signed: + long, - short
    price: Decimal
    fee_per_unit: Decimal


def fifo_realized(executions: Iterable[Execution]) -> dict[str, tuple[Decimal, Decimal] | None]:
    """FIFO per (account, instrument) in time order: for each closing execution, (gross P&L, net P&L).

    The value is ``None`` for a close whose opening lots were not among ``executions``.
    """
    ordered = sorted(enumerate(executions), key=lambda pair: (pair[1].executed_at, pair[0]))
    books: dict[tuple[str, str], deque[_Lot]] = defaultdict(deque)
    result: dict[str, tuple[Decimal, Decimal] | None] = {}
    for _, execution in ordered:
        book = books[(execution.account_id, execution.instrument.pairing_key)]
        signed = execution.signed_quantity
        remaining = abs(signed)
        fee_per_unit = execution.fees / execution.quantity
        gross = Decimal(0)
        opening_fees = Decimal(0)
        closed = Decimal(0)
        while remaining > 0 and book and (book[0].quantity > 0) != (signed > 0):
            lot = book[0]
            take = min(remaining, abs(lot.quantity))
            direction = 1 if lot.quantity > 0 else -1
            gross += (execution.price - lot.price) * take * direction * execution.instrument.multiplier
            opening_fees += lot.fee_per_unit * take
            closed += take
            remaining -= take
            lot.quantity -= take * direction
            if lot.quantity == 0:
                book.popleft()
        if remaining > 0 and execution.open_close is OpenClose.CLOSE:
            # IB says this closes, but the lots it closes are not here (opened before the period).
            result[execution.broker_execution_id] = None
            continue
        if remaining > 0:
            lot_quantity = remaining if signed > 0 else -remaining
            book.append(_Lot(quantity=lot_quantity, price=execution.price, fee_per_unit=fee_per_unit))
        if closed > 0:
            net = gross - opening_fees - fee_per_unit * closed
            result[execution.broker_execution_id] = (gross, net)
    return result


def by_id(executions: object) -> dict[tuple[str, str], Execution]:
    return {(e.account_id, e.broker_execution_id): e for e in executions}  # type: ignore[attr-defined]


def test_every_live_fill_becomes_one_execution_with_its_values(parsed: tuple[list[Fill], object]) -> None:
    fills, statement = parsed
    expected = live_fills(fills)
    got = by_id(statement.executions)  # type: ignore[attr-defined]
    assert statement.errors == ()  # type: ignore[attr-defined]
    assert set(got) - {("U1111111", "5001")} == {(f.account, f.txid) for f in expected}
    for fill in expected:
        execution = got[(fill.account, fill.txid)]
        assert execution.executed_at == fill.when, fill.txid  # every layout and zone read to the same instant
        assert execution.side is (Side.BUY if fill.quantity > 0 else Side.SELL)
        assert execution.quantity == abs(fill.quantity)
        assert execution.price == fill.price
        assert execution.fees == -fill.commission
        assert execution.fee_currency == fill.currency
        assert execution.instrument.instrument_id == fill.conid
        assert execution.instrument.multiplier == fill.multiplier
        assert execution.instrument.currency == fill.currency
        assert execution.executed_at.tzinfo is dt.UTC


def test_instruments_and_kinds(parsed: tuple[list[Fill], object]) -> None:
    _, statement = parsed
    got = by_id(statement.executions)  # type: ignore[attr-defined]
    call = got[("U1111111", "3002")]
    assert call.kind is ExecutionKind.EXPIRY and call.price == 0
    assert call.instrument.asset_class is AssetClass.OPTION
    assert call.instrument.right is OptionRight.CALL and call.instrument.strike == Decimal(190)
    assert call.instrument.expiry == dt.date(2024, 1, 19) and call.instrument.underlying == "AAPL"
    put = got[("U1111111", "3004")]
    assert put.kind is ExecutionKind.ASSIGNMENT and put.instrument.expiry == dt.date(2024, 2, 16)
    assert got[("U1111111", "2002")].open_close is OpenClose.CLOSE_OPEN
    assert got[("U1111111", "2001")].instrument.asset_class is AssetClass.FUTURE
    assert got[("U1111111", "4001")].instrument.asset_class is AssetClass.FOREX
    assert got[("U2222222", "6001")].instrument.currency == "EUR"
    stock = got[("U1111111", "1001")]
    assert stock.instrument.strike is None and stock.instrument.right is None and stock.instrument.expiry is None
    assert stock.kind is ExecutionKind.FILL and stock.raw["conid"] == "265598"


def test_cancel_and_correction(parsed: tuple[list[Fill], object]) -> None:
    _, statement = parsed
    cancellations = statement.cancellations  # type: ignore[attr-defined]
    assert [(c.account_id, c.broker_execution_id) for c in cancellations] == [("U1111111", "5001")]
    assert cancellations[0].cancelled_at == utc("2024-02-05T15:00:00")
    corrected = [e for e in statement.executions if e.broker_execution_id == "5003"]  # type: ignore[attr-defined]
    assert [e.price for e in corrected] == [Decimal("401.00"), Decimal("401.50")]  # the later value wins in the core


def test_rows_are_not_in_time_order_but_in_asset_class_order(parsed: tuple[list[Fill], object]) -> None:
    fills, statement = parsed
    times = [e.executed_at for e in statement.executions if e.account_id == "U1111111"]  # type: ignore[attr-defined]
    assert times != sorted(times)
    assert [f.txid for f in file_order(fills) if f.transaction_type != "TradeCancel"][:4] == [
        "1001",
        "1002",
        "1003",
        "1004",
    ]


def test_round_trips_from_parsed_executions_equal_the_table_fifo(parsed: tuple[list[Fill], object]) -> None:
    fills, statement = parsed
    truth, truth_close = fifo(live_fills(fills))
    cancelled = {(c.account_id, c.broker_execution_id) for c in statement.cancellations}  # type: ignore[attr-defined]
    latest = {(e.account_id, e.broker_execution_id): e for e in statement.executions}  # type: ignore[attr-defined]
    kept = [e for k, e in latest.items() if k not in cancelled]
    realized = fifo_realized(kept)
    assert {k: v for k, v in realized.items() if v is not None} == truth_close
    assert sum(t.gross for t in truth) == sum(v[0] for v in realized.values() if v is not None)
    # the C;O reversal closed 2 long and opened 1 short, closed by the last buy
    es = [t for t in truth if t.conid == "495512563"]
    assert [(t.quantity, t.direction) for t in es] == [(2, 1), (1, -1)]
    assert es[0].gross == (d("4812.50") - d("4800.25")) * 2 * 50


def test_ib_fifo_pnl_is_carried_for_the_core_to_check(parsed: tuple[list[Fill], object]) -> None:
    fills, statement = parsed
    _, truth_close = fifo(live_fills(fills))
    checked = 0
    for execution in statement.executions:  # type: ignore[attr-defined]
        if execution.instrument.asset_class is AssetClass.FOREX:
            assert execution.broker_realized_pnl is None  # IB reports forex P&L elsewhere: nothing to check
            continue
        assert execution.broker_realized_pnl == Decimal(execution.raw["fifoPnlRealized"])
        if execution.broker_execution_id in truth_close:
            checked += 1
            gross = truth_close[execution.broker_execution_id][0]
            # net of commissions: add them back and it is the table's gross FIFO P&L
            assert abs(execution.broker_realized_pnl + _commissions(fills, execution.broker_execution_id) - gross) <= (
                Decimal("0.01")
            )
    assert checked


def _commissions(fills: list[Fill], txid: str) -> Decimal:
    # closing commission share + opening commissions of the lots it closed, from the table
    live = live_fills(fills)
    gross, net = fifo(live)[1][txid]
    return gross - net


def test_a_tampered_ib_pnl_reaches_the_execution_and_an_unreadable_one_is_left_out(
    parsed: tuple[list[Fill], object],
) -> None:
    fills, _ = parsed
    tampered = [attrs.evolve(f, fifo_pnl=f.fifo_pnl + 5) if f.txid == "1003" else f for f in fills]
    statement = parse_statement(statement_xml(tampered, {"U1111111": "USD", "U2222222": "EUR"}))
    [execution] = [e for e in statement.executions if e.broker_execution_id == "1003"]
    original = next(f for f in fills if f.txid == "1003")
    assert execution.broker_realized_pnl == original.fifo_pnl + 5
    garbled = statement_xml(fills, {"U1111111": "USD", "U2222222": "EUR"}).replace(
        f'fifoPnlRealized="{original.fifo_pnl:.2f}"'.encode(), b'fifoPnlRealized="n/a"', 1
    )
    assert garbled != statement_xml(fills, {"U1111111": "USD", "U2222222": "EUR"})
    [execution] = [e for e in parse_statement(garbled).executions if e.broker_execution_id == "1003"]
    assert execution.broker_realized_pnl is None  # the figure is a check: the execution itself is kept


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20240105;093012", "2024-01-05T14:30:12+00:00"),
        ("2024-01-05, 09:30:12", "2024-01-05T14:30:12+00:00"),
        ("2024-07-05 09:30:12", "2024-07-05T13:30:12+00:00"),
        ("20250530;122935 EDT", "2025-05-30T16:29:35+00:00"),
        ("2025-05-22 20:41:57 AEST", "2025-05-22T10:41:57+00:00"),
        ("01/05/2024 09:30:12", "2024-01-05T14:30:12+00:00"),
        ("2024-01-05T09:30:12", "2024-01-05T14:30:12+00:00"),
        ("20240105", "2024-01-05T05:00:00+00:00"),
    ],
)
def test_flex_time_layouts(text: str, expected: str) -> None:
    assert parse_flex_time(text, "America/New_York") == dt.datetime.fromisoformat(expected)


def test_trade_date_and_time_given_apart() -> None:
    assert parse_flex_time("20130401", "America/New_York", time="093406") == utc("2013-04-01T13:34:06")


def test_the_statement_zone_option_is_used() -> None:
    assert parse_flex_time("20240105;093012", "Australia/Sydney") == utc("2024-01-04T22:30:12")


@pytest.mark.parametrize("text", ["20241103;013000", "20240310;023000"])
def test_ambiguous_or_skipped_local_times_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="ambiguous|does not exist"):
        parse_flex_time(text, "America/New_York")


def _one_row(**overrides: str) -> bytes:
    fill = Fill(
        account="U1",
        txid="77",
        conid="1",
        symbol="X",
        asset="STK",
        currency="USD",
        quantity=d("1"),
        price=d("10"),
        commission=d("-1"),
        when=utc("2024-01-03T15:00:00"),
    )
    xml = statement_xml([fill], {"U1": "USD"}).decode()
    for name, value in overrides.items():
        start = xml.index(f' {name}="') + len(name) + 3
        xml = xml[:start] + value + xml[xml.index('"', start) :]
    return xml.encode()


def test_placeholders_and_bad_rows_are_reported_not_fatal() -> None:
    good = parse_statement(_one_row(ibExecID="--", strike="--", expiry="", putCall="--"))
    assert len(good.executions) == 1 and good.executions[0].broker_execution_id == "77"
    bad = list(iter_statement(_one_row(tradePrice="abc")))
    errors = [i for i in bad if isinstance(i, RowError)]
    assert len(errors) == 1 and "tradePrice" in errors[0].reason and errors[0].key == "77"
    no_price = parse_statement(_one_row(tradePrice="--"))
    assert no_price.executions == () and "tradePrice is missing" in no_price.errors[0].reason


def test_transaction_id_falls_back_to_exec_id_then_trade_id() -> None:
    assert parse_statement(_one_row(transactionID="")).executions[0].broker_execution_id == "0000e0d5.77.01.01"
    only_trade = parse_statement(_one_row(transactionID="", ibExecID="--"))
    assert only_trade.executions[0].broker_execution_id == "977"


def test_other_levels_of_detail_are_skipped() -> None:
    assert parse_statement(_one_row(levelOfDetail="ORDER")).executions == ()


def test_one_account_only() -> None:
    fills, accounts = scenario()
    items = list(iter_statement(statement_xml(fills, accounts), account_id="U2222222"))
    assert {i.account_id for i in items if isinstance(i, Execution)} == {"U2222222"}


def test_a_binary_file_reads_like_bytes(parsed: tuple[list[Fill], object]) -> None:
    fills, accounts = scenario()
    from_file = parse_statement(io.BytesIO(statement_xml(fills, accounts)))
    assert by_id(from_file.executions) == by_id(parsed[1].executions)  # type: ignore[attr-defined]


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
<!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
<!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
<!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
<!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
<!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">]>
<FlexQueryResponse><FlexStatements><FlexStatement accountId="&lol9;"/></FlexStatements></FlexQueryResponse>"""
EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<FlexQueryResponse><FlexStatements><FlexStatement accountId="&x;"/></FlexStatements></FlexQueryResponse>"""
EXTERNAL_NO_DTD_SUBSET = b"""<?xml version="1.0"?>
<!DOCTYPE FlexQueryResponse SYSTEM "http://attacker.invalid/x.dtd">
<FlexQueryResponse/>"""


@pytest.mark.parametrize("hostile", [BILLION_LAUGHS, EXTERNAL, EXTERNAL_NO_DTD_SUBSET], ids=["laughs", "entity", "dtd"])
def test_hostile_xml_is_refused_fast_with_bounded_memory(hostile: bytes) -> None:
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(FlexFormatError, match="refused: the XML contains a DOCTYPE"):
        parse_statement(hostile)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 0.5 and peak < 5_000_000


def test_truncated_statement() -> None:
    fills, accounts = scenario()
    xml = statement_xml(fills, accounts)
    with pytest.raises(FlexFormatError, match=r"not well-formed XML: (no element found|unclosed token).*cut short"):
        parse_statement(xml[: len(xml) // 2])
    with pytest.raises(FlexFormatError, match="empty"):
        parse_statement(b"")


@pytest.mark.parametrize(
    ("document", "words"),
    [
        (b"<html><body>hi</body></html>", "root element is <html>"),
        (b"<?xml version='1.0'?><FlexStatementResponse><Status>Fail</Status></FlexStatementResponse>", "status answer"),
        (b"not xml at all", "not well-formed"),
    ],
)
def test_not_a_flex_statement(document: bytes, words: str) -> None:
    with pytest.raises(FlexFormatError, match=words):
        parse_statement(document)


def test_text_files_are_refused_with_a_hint() -> None:
    with pytest.raises(TypeError, match="binary file"):
        parse_statement(io.StringIO("<FlexQueryResponse/>"))  # type: ignore[arg-type]


@pytest.mark.parametrize("day", ["20240310", "20241103", "20240105"])
def test_the_per_hour_offset_cache_gives_the_same_times(day: str) -> None:
    offsets: dict[tuple[dt.date, int], dt.timedelta] = {}
    for minute in range(0, 24 * 60, 7):
        text = f"{day};{minute // 60:02d}{minute % 60:02d}{minute % 60:02d}"
        try:
            expected = parse_flex_time(text, "America/New_York")
        except ValueError:
            with pytest.raises(ValueError, match="ambiguous|does not exist"):
                parse_flex_time(text, "America/New_York", offsets=offsets)
            continue
        assert parse_flex_time(text, "America/New_York", offsets=offsets) == expected, text
    assert offsets  # it did cache


@pytest.mark.parametrize("text", ["20241345;093000", "20240105;096000", "2024010X;093000"])
def test_bad_times_are_refused_with_the_cache_too(text: str) -> None:
    offsets: dict[tuple[dt.date, int], dt.timedelta] = {}
    parse_flex_time("20240105;090000", "America/New_York", offsets=offsets)  # hour 9 cached
    with pytest.raises(ValueError, match="not a (Flex )?date|not a time"):
        parse_flex_time(text, "America/New_York", offsets=offsets)


def test_a_cancel_naming_only_the_trade_id_finds_the_execution() -> None:
    fills, _ = scenario()
    original = next(f for f in fills if f.txid == "1001")
    xml = statement_xml([original], {"U1111111": "USD"}).decode()
    cancel = (
        '<Trade accountId="U1111111" currency="USD" assetCategory="STK" symbol="AAPL" conid="265598" '
        'transactionType="TradeCancel" transactionID="1999" tradeID="91999" buySell="SELL (Ca.)" quantity="-100" '
        'tradePrice="150.00" dateTime="20240103;100000" origTradeID="91001" origTransactionID="" '
        'levelOfDetail="EXECUTION" />'
    )
    xml = xml.replace("</Trades>", cancel + "</Trades>")
    statement = parse_statement(xml.encode())
    assert [c.broker_execution_id for c in statement.cancellations] == ["1001"]
    orphan = parse_statement(xml.replace('origTradeID="91001"', 'origTradeID="555"').encode())
    assert orphan.cancellations == () and "cancelled execution is unknown" in orphan.errors[0].reason


def test_trade_confirmation_statements() -> None:
    xml = b"""<FlexQueryResponse queryName="tc" type="TCF"><FlexStatements count="1">
<FlexStatement accountId="U7" fromDate="2024-05-01" toDate="2024-05-01" period="Today"
 whenGenerated="2024-05-01;151500">
<TradeConfirms>
<TradeConfirm accountId="U7" currency="USD" assetCategory="FUT" symbol="ESM4" conid="551601561" multiplier="50"
 underlyingSymbol="ES" expiry="2024-06-21" buySell="SELL" quantity="-2" price="5101.25" commission="-4.24"
 commissionCurrency="USD" execID="0000e1a4.66322e3d.01.01" orderID="1234" tradeID="777"
 dateTime="2024-05-01;10:15:30" levelOfDetail="EXECUTION" transactionType="ExchTrade" />
<TradeConfirm accountId="U7" levelOfDetail="ORDER" symbol="ESM4" />
</TradeConfirms></FlexStatement></FlexStatements></FlexQueryResponse>"""
    statement = parse_statement(xml)
    assert statement.query_type == "TCF" and statement.errors == ()
    [execution] = statement.executions
    assert execution.broker_execution_id == "0000e1a4.66322e3d.01.01"
    assert (execution.side, execution.quantity, execution.price) == (Side.SELL, 2, Decimal("5101.25"))
    assert execution.fees == Decimal("4.24") and execution.order_id == "1234"
    assert execution.executed_at == utc("2024-05-01T14:15:30")
    assert execution.instrument.multiplier == 50 and execution.instrument.expiry == dt.date(2024, 6, 21)
