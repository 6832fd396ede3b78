"""The OANDA plugin through the core's broker facade, against the fake v20 API."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import brokersync
import httpx
import pytest
from brokersync import BrokerApiError, BrokerAuthError, ConfigurationError, Position, TradePage
from brokersync_oanda import plugin as oanda_plugin
from fake_v20 import LIVE_TOKEN, PRACTICE_TOKEN, FakeV20, error
from histories import FIFO, HEDGE, RATE, expected, fifo_history, make_fake

pytestmark = pytest.mark.anyio


def actual(trade: brokersync.Trade) -> dict[str, Any]:
    return {key: getattr(trade, key) for key in expected_keys()}


def expected_keys() -> tuple[str, ...]:
    return (
        "broker_trade_id",
        "symbol",
        "direction",
        "quantity",
        "entry_price",
        "exit_price",
        "realized_pnl",
        "currency",
        "fees",
        "opened_at",
        "closed_at",
    )


def broker_for(fake: FakeV20, environment: str = "practice") -> brokersync.Broker:
    return brokersync.get_broker("oanda", environment=environment, transport=fake.transport())


async def fetch(
    broker: brokersync.Broker, auth: brokersync.AuthResult, account: brokersync.Account, cursor: str | None = None
) -> tuple[dict[str, brokersync.Trade], list[Any], str | None]:
    trades: dict[str, brokersync.Trade] = {}
    errors: list[Any] = []
    last = None
    async for batch in broker.iter_trades(auth, account, cursor=cursor):
        for trade in batch.trades:
            assert trade.broker_trade_id not in trades
            trades[trade.broker_trade_id] = trade
        errors.extend(batch.errors)
        last = batch.cursor or last
    return trades, errors, last


async def pages(broker: brokersync.Broker, auth: Any, account: Any, cursor: str | None) -> list[TradePage]:
    hook = oanda_plugin.get_trades(ctx=broker.context, auth=auth, account=account, since=None, cursor=cursor)
    return [page async for page in hook]


async def connected(fake: FakeV20) -> tuple[brokersync.Broker, brokersync.AuthResult, dict[str, brokersync.Account]]:
    broker = broker_for(fake)
    auth = await broker.authenticate({"token": PRACTICE_TOKEN})
    return broker, auth, {a.id: a for a in await broker.get_accounts(auth)}


async def test_the_fake_itself_nets_fifo_and_converts_pnl(fake: FakeV20) -> None:
    # Hand-computed from histories.fifo_history, so the ground truth does not rest on the fake alone.
    closed = {t["instrument"] + ":" + t["initialUnits"]: t for t in fake.closed_trades(FIFO)}
    assert closed["EUR_USD:10000"]["realizedPL"] == "19.8000"  # (1.08710 - 1.08512) x 10000
    second = closed["EUR_USD:5000"]  # 2000 closed at 1.08710 then 3000 at 1.08420
    assert second["realizedPL"] == "-3.2000"  # 2000 x 0.00110 - 3000 x 0.00180
    assert second["averageClosePrice"] == "1.085360" and len(second["closingTransactionIDs"]) == 2
    assert closed["USD_JPY:-3000"]["realizedPL"] == "8.2200"  # 1233 JPY x 0.0066667
    assert closed["XAU_USD:20"]["realizedPL"] == "106.1000"
    assert [(t["instrument"], t["currentUnits"]) for t in fake.open_trades(FIFO)] == [
        ("EUR_USD", "1000"),
        ("XAU_USD", "-30"),
    ]


async def test_accounts_carry_home_currency_alias_and_mode(fake: FakeV20) -> None:
    _, _, accounts = await connected(fake)
    assert {a.id: (a.name, a.currency, a.type) for a in accounts.values()} == {
        FIFO: ("Main", "USD", "fifo"),
        HEDGE: ("Hedge", "EUR", "hedging"),
    }
    assert "balance" not in accounts[FIFO].raw


@pytest.mark.parametrize("account_id", [FIFO, HEDGE])
async def test_first_sync_returns_every_closed_trade_exactly(fake: FakeV20, account_id: str) -> None:
    broker, auth, accounts = await connected(fake)
    trades, errors, cursor = await fetch(broker, auth, accounts[account_id])
    assert errors == []
    want = {w["id"]: expected(w, account_id) for w in fake.closed_trades(account_id)}
    assert {i: actual(t) for i, t in trades.items()} == want
    assert cursor == str(len(fake.accounts[account_id].log))
    # financing stays out of the P&L, kept in the raw record and the documented field
    for wire in fake.closed_trades(account_id):
        raw = trades[wire["id"]].raw
        assert raw["financing"] == wire["financing"] == raw["brokersync"]["financing"]
        assert raw["openTime"] == wire["openTime"]  # the nanosecond text is kept
    assert any(Decimal(w["financing"]) != 0 for w in fake.closed_trades(account_id))


async def test_fees_add_up_to_the_commission_of_every_fill(fake: FakeV20) -> None:
    broker, auth, accounts = await connected(fake)
    trades, _, _ = await fetch(broker, auth, accounts[FIFO])
    paid = sum((Decimal(f["commission"]) for f in fake.fills(FIFO)), Decimal(0))
    still_open = sum((abs(Decimal(t["currentUnits"])) * RATE for t in fake.open_trades(FIFO)), Decimal(0))
    assert sum(t.fees for t in trades.values()) == paid - still_open
    # a fill that closed one trade and reduced another split its commission between them
    splitting = next(f for f in fake.fills(FIFO) if "tradeReduced" in f and "tradesClosed" in f)
    shares = [t.raw["brokersync"]["commissions"].get(splitting["id"]) for t in trades.values()]
    assert sorted(Decimal(s) for s in shares if s) == [Decimal("0.0400"), Decimal("0.2000")]


@pytest.mark.parametrize("inclusive", [True, False], ids=["beforeID-inclusive", "beforeID-exclusive"])
async def test_history_longer_than_a_page_is_walked_with_before_id(inclusive: bool) -> None:
    fake = FakeV20(before_id_inclusive=inclusive)
    fake.add_account(FIFO, commission_per_unit=RATE)
    for n in range(1, 531):
        fake.order(FIFO, "EUR_USD", 1000, f"1.{10000 + n}")
        fake.order(FIFO, "EUR_USD", -1000, f"1.{10000 + n + 3}")
    broker, auth, accounts = await connected(fake)
    before = len(fake.requests)
    trades, errors, _ = await fetch(broker, auth, accounts[FIFO])
    assert errors == [] and len(trades) == 530
    assert {t.broker_trade_id for t in trades.values()} == {w["id"] for w in fake.closed_trades(FIFO)}
    assert all(t.realized_pnl == Decimal("0.0300") and t.fees == Decimal("0.0400") for t in trades.values())
    paths = [p.rsplit("/", 1)[-1] for p, _, _ in fake.requests[before:]]
    # 2 pages of closed trades, the fills in 1000-id spans, one page of open trades (none)
    assert paths.count("trades") == 3
    assert paths.count("idrange") == math.ceil(len(fake.accounts[FIFO].log) / 1000)


async def test_incremental_sync_reads_sinceid_to_the_end_and_fetches_closed_trades_by_id(fake: FakeV20) -> None:
    broker, auth, accounts = await connected(fake)
    _, _, cursor = await fetch(broker, auth, accounts[FIFO])
    open_eur, open_xau = (t["id"] for t in fake.open_trades(FIFO))
    start = len(fake.accounts[FIFO].log)
    fake.order(FIFO, "XAU_USD", 10, "2340.000")  # reduces the short of 30: it stays open
    fake.daily_financing(FIFO)
    fake.order(FIFO, "EUR_USD", -1000, "1.08900")  # closes the open EUR_USD trade
    round_trip = fake.order(FIFO, "USD_JPY", 2000, "150.100")["tradeOpened"]["tradeID"]
    fake.order(FIFO, "USD_JPY", -2000, "150.300")
    new = len(fake.accounts[FIFO].log) - start
    before = len(fake.requests)
    trades, errors, second = await fetch(broker, auth, accounts[FIFO], cursor=cursor)
    assert errors == []
    closed_now = {w["id"]: w for w in fake.closed_trades(FIFO)}
    assert set(trades) == {open_eur, round_trip}  # the EUR_USD close and the new USD_JPY round trip
    assert {i: actual(t) for i, t in trades.items()} == {i: expected(closed_now[i], FIFO) for i in trades}
    assert open_xau not in trades
    assert second == str(len(fake.accounts[FIFO].log))
    sinceid = [p for p, _, _ in fake.requests[before:] if p.endswith("sinceid")]
    assert len(sinceid) == math.ceil(new / fake.sinceid_cap) > 1

    # the short is closed later: its reduction (before the cursor) counts in its fees
    fake.close_trade(FIFO, open_xau, "2330.000")
    trades, _, _ = await fetch(broker, auth, accounts[FIFO], cursor=second)
    assert list(trades) == [open_xau]
    assert actual(trades[open_xau]) == expected(next(w for w in fake.closed_trades(FIFO) if w["id"] == open_xau), FIFO)
    assert len(trades[open_xau].raw["closingTransactionIDs"]) == 2


async def test_nothing_new_costs_no_request_after_the_account_listing(fake: FakeV20) -> None:
    broker, auth, accounts = await connected(fake)
    _, _, cursor = await fetch(broker, auth, accounts[HEDGE])
    accounts = {a.id: a for a in await broker.get_accounts(auth)}  # what a sync run does first
    before = len(fake.requests)
    trades, _, again = await fetch(broker, auth, accounts[HEDGE], cursor=cursor)
    assert (trades, again, len(fake.requests) - before) == ({}, cursor, 0)
    # without a fresh listing the plugin asks sinceid once
    trades, _, again = await fetch(broker, auth, accounts[HEDGE], cursor=cursor)
    assert (trades, again, fake.count("sinceid")) == ({}, cursor, 1)


async def test_open_trades_are_the_position_snapshot(fake: FakeV20) -> None:
    broker, auth, accounts = await connected(fake)
    first = await pages(broker, auth, accounts[FIFO], None)
    snapshot = first[-1].positions
    assert snapshot is not None and all(p.positions is None for p in first[:-1])
    positions = [Position(**p) for p in snapshot]  # type: ignore[arg-type]
    assert [(p.instrument.symbol, p.instrument.asset_class.value, p.quantity, p.average_price) for p in positions] == [
        ("EUR_USD", "forex", Decimal(1000), Decimal("1.08300")),  # newest first, as OANDA lists them
        ("XAU_USD", "cfd", Decimal(-30), Decimal("2350.420")),
    ]
    assert positions[1].instrument.currency == "USD" and positions[1].opened_at is not None
    cursor = first[-1].cursor
    fake.daily_financing(FIFO)  # no fill: the snapshot is unchanged, none is sent
    later = await pages(broker, auth, accounts[FIFO], cursor)
    assert later[-1].positions is None and later[-1].cursor == str(int(str(cursor)) + 1)
    fake.order(FIFO, "EUR_USD", -1000, "1.09")
    latest = await pages(broker, auth, accounts[FIFO], later[-1].cursor)
    assert [p["instrument"]["symbol"] for p in latest[-1].positions or []] == ["XAU_USD"]


async def test_every_request_asks_for_rfc3339_times_with_the_token(fake: FakeV20) -> None:
    broker, auth, accounts = await connected(fake)
    trades, _, _ = await fetch(broker, auth, accounts[FIFO])
    assert {h.get("accept-datetime-format") for _, _, h in fake.requests} == {"RFC3339"}
    wire = fake.closed_trades(FIFO)[0]
    assert trades[wire["id"]].closed_at.microsecond == int(wire["closeTime"][20:26])


async def test_a_token_for_the_other_environment_is_an_auth_error_that_says_so(fake: FakeV20) -> None:
    with pytest.raises(BrokerAuthError) as caught:
        await broker_for(fake).authenticate({"token": LIVE_TOKEN})
    message = str(caught.value)
    assert "other environment" in message and "'practice'" in message and "api-fxpractice.oanda.com" in message
    assert "Insufficient authorization" in message and LIVE_TOKEN not in message + repr(caught.value)
    live = FakeV20(environment="live")
    with pytest.raises(BrokerAuthError, match="'live'"):
        await brokersync.get_broker("oanda", environment="live", transport=live.transport()).authenticate(
            {"token": PRACTICE_TOKEN}
        )


async def test_an_account_the_token_cannot_see_is_a_configuration_error(fake: FakeV20) -> None:
    broker, auth, accounts = await connected(fake)
    fake.hidden.add(HEDGE)
    with pytest.raises(ConfigurationError, match=f"'{HEDGE}' is not available.*forbidden"):
        await fetch(broker, auth, accounts[HEDGE], cursor="3")


async def test_oanda_error_bodies_become_clear_errors(fake: FakeV20) -> None:
    broker, auth, accounts = await connected(fake)
    fake.fail_next(error(400, "Invalid value specified for 'id'", "INVALID_PARAMETER"))
    with pytest.raises(BrokerApiError, match=r"HTTP 400\): Invalid value specified for 'id' \[INVALID_PARAMETER\]"):
        await fetch(broker, auth, accounts[FIFO], cursor="3")
    fake.fail_next(httpx.Response(200, text="<html>maintenance</html>"))
    with pytest.raises(BrokerApiError, match="not a JSON object"):
        await fetch(broker, auth, accounts[FIFO], cursor="3")


async def test_429_and_5xx_are_retried_by_the_core_without_losing_trades(fake: FakeV20) -> None:
    broker, auth, accounts = await connected(fake)
    clean, _, _ = await fetch(broker, auth, accounts[FIFO])
    fake.fail_next(
        error(429, "Rate limit violation", headers={"Retry-After": "0.05"}), error(503, "Service unavailable")
    )
    before = len(fake.requests)
    again, _, _ = await fetch(broker, auth, accounts[FIFO])
    assert {i: actual(t) for i, t in again.items()} == {i: actual(t) for i, t in clean.items()}
    assert len(fake.requests) - before == fake.count() - before >= 2 + 1


async def test_a_broken_record_is_reported_and_the_rest_stored(fake: FakeV20) -> None:
    broker, auth, accounts = await connected(fake)
    victim = fake.accounts[FIFO].trades[fake.closed_trades(FIFO)[-1]["id"]]
    victim["close_time"] = "yesterday"
    trades, errors, cursor = await fetch(broker, auth, accounts[FIFO])
    assert len(trades) == len(fake.closed_trades(FIFO)) - 1 and cursor is not None
    assert [e.broker_trade_id for e in errors] == [victim["id"]] and "closed_at" in errors[0].reason


async def test_fifo_and_hedging_accounts_side_by_side() -> None:
    fake = make_fake()
    fake.add_account("101-004-1435156-003", currency="USD", hedging=True)
    fifo_history(fake, "101-004-1435156-003")  # on a hedging account nothing nets: every order is its own trade
    broker, auth, accounts = await connected(fake)
    trades, _, _ = await fetch(broker, auth, accounts["101-004-1435156-003"])
    assert trades == {}
    assert len(fake.open_trades("101-004-1435156-003")) == 9
