"""End to end through ``BrokerSync`` on a real SQLite file, for the five exchanges' fakes.

Every fill the fake holds is stored once as an execution, round trips equal an independent FIFO of
the fake's own records (exact Decimal, P&L in the quote currency, the contract size applied), spot and
perpetual of one pair stay apart, fees keep their currency, a re-sync stores nothing, and a scheduled
sync after new fills asks only from where the last one stopped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from brokersync import BrokerError, BrokerSync, Vault
from brokersync.testing import FakeClock
from ccxt_engine_support import (
    EXCHANGES,
    NOW,
    NOW_MS,
    add_fills,
    credentials,
    fifo,
    history_starts,
    make_fake,
    stored_executions,
    trip_rows,
)
from fakes import DAY_MS, FakeExchange, reply

pytestmark = pytest.mark.anyio


class Setup:
    def __init__(self, tmp_path: Path, key: str) -> None:
        self.key = key
        self.fake: FakeExchange = make_fake(key)
        self.clock = FakeClock(NOW)
        self.database = tmp_path / f"{key}.db"

    def engine(self) -> BrokerSync:
        return BrokerSync(
            f"sqlite+aiosqlite:///{self.database}",
            encryption_keys=KEYS,
            transports={self.key: self.fake.transport()},
            clock=self.clock,
            monotonic=self.clock.monotonic,
            sleep=self.clock.sleep,
        )


KEYS = Vault.generate_key("k1")


@pytest.fixture
async def connected(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Setup, BrokerSync, str]]:
    setup = Setup(tmp_path, request.param)
    async with setup.engine() as engine:
        result = await engine.connect_broker("ann", setup.key, credentials(setup.key, setup.fake))
        yield setup, engine, result.connection_id


def fees_of(executions: dict[str, tuple[str, Decimal, str | None]]) -> dict[str, Decimal]:
    return {execution_id: fees for execution_id, (_, fees, _) in executions.items()}


async def trips_of(engine: BrokerSync, connection_id: str) -> dict[str, dict[str, Any]]:
    return trip_rows([t async for t in engine.iter_trades(connection_id=connection_id)])


@pytest.mark.parametrize("connected", EXCHANGES, indirect=True)
async def test_a_full_sync_stores_every_fill_once_and_pairs_them_like_an_independent_fifo(connected) -> None:
    setup, engine, cid = connected
    truth = setup.fake.truth()  # type: ignore[attr-defined]
    first = await engine.sync_broker_trades(cid, "ann")
    assert (first.status.value, first.error_count) == ("succeeded", 0)
    if setup.fake.served:  # the fakes that log their pages: a page boundary fell inside one millisecond's fills
        assert setup.fake.split_groups() >= 1

    executions = stored_executions(setup.database, cid)
    assert sorted(executions) == sorted(r["id"] for r in truth)  # every fill, no more, no less
    for record in truth:
        _, fees, fee_currency = executions[record["id"]]
        assert (fees, fee_currency) == (record["fee"], record["fee_currency"])

    want_trips, want_open = fifo(truth, fees_of(executions))
    stored = await trips_of(engine, cid)
    assert stored == want_trips  # ids, quantities, prices and gross P&L, exact
    assert first.imported == len(want_trips)  # fills arrive in time order: no round trip made and undone
    positions = await engine.positions(connection_id=cid)
    assert {p.symbol: p.quantity for p in positions} == want_open

    # Spot and perpetual of one pair are two instruments, never paired together.
    key_of = {execution_id: row[0] for execution_id, row in executions.items()}
    symbols = {r["symbol"] for r in truth}
    for trip_id in stored:
        opening, closing = trip_id.split(">")
        assert key_of[opening] == key_of[closing]
    if "BTC/USDT:USDT" in symbols and "BTC/USDT" in symbols:
        spot = {key_of[r["id"]] for r in truth if r["symbol"] == "BTC/USDT"}
        perp = {key_of[r["id"]] for r in truth if r["symbol"] == "BTC/USDT:USDT"}
        assert len(spot) == len(perp) == 1 and spot != perp

    again = await engine.sync_broker_trades(cid, "ann")
    assert (again.imported, again.updated, again.cancelled) == (0, 0, 0)
    assert again.skipped == len(truth)
    assert stored_executions(setup.database, cid) == executions
    assert await trips_of(engine, cid) == stored


@pytest.mark.parametrize("connected", ["binance"], indirect=True)
async def test_a_fee_paid_in_bnb_stays_bnb_and_the_usdt_pnl_is_gross(connected) -> None:
    _, engine, cid = connected
    await engine.sync_broker_trades(cid, "ann")
    trades = [t async for t in engine.iter_trades(connection_id=cid)]
    spot = [t for t in trades if t.symbol == "BTC/USDT"]
    assert spot and all(t.currency == "USDT" for t in spot)
    for t in spot:  # the P&L is the prices' difference alone: no BNB amount subtracted from USDT
        sign = 1 if t.direction.value == "long" else -1
        assert t.realized_pnl == (t.exit_price - t.entry_price) * t.quantity * sign
        # no USDT fee was paid, so realized_pnl - fees is the USDT result; the BNB is kept apart, exactly
        assert t.fees == 0
        assert t.raw["other_fees"] == {"BNB": str(Decimal(t.raw["opening_fee"]) + Decimal(t.raw["closing_fee"]))}
        assert (t.raw["opening_fee_currency"], t.raw["closing_fee_currency"]) == ("BNB", "BNB")
    perps = [t for t in trades if t.symbol == "BTC/USDT:USDT"]
    assert perps and all(t.currency == "USDT" and t.fees > 0 for t in perps)  # USDⓈ-M pays USDT
    assert not any({"other_fees", "opening_fee_currency", "closing_fee_currency"} & set(t.raw) for t in perps)


@pytest.mark.parametrize("connected", ["okx", "bybit"], indirect=True)
async def test_a_spot_buy_paying_in_the_coin_and_a_sell_in_the_quote_keep_each_fee_in_its_currency(
    connected,
) -> None:
    setup, engine, cid = connected
    truth = {r["id"]: r for r in setup.fake.truth()}  # type: ignore[attr-defined]
    await engine.sync_broker_trades(cid, "ann")
    spot = [t async for t in engine.iter_trades(connection_id=cid, symbol="BTC/USDT")]
    mixed = [t for t in spot if t.raw.get("opening_fee_currency") == "BTC"]
    assert mixed  # long round trips: bought paying BTC, sold paying USDT
    for t in mixed:
        closing = truth[t.raw["closing_execution_id"]]
        assert closing["fee_currency"] == "USDT" and "closing_fee_currency" not in t.raw
        assert t.fees == Decimal(t.raw["closing_fee"])  # the USDT share only
        assert t.raw["other_fees"] == {"BTC": t.raw["opening_fee"]}


@pytest.mark.parametrize("connected", ["okx"], indirect=True)
async def test_the_contract_size_multiplies_the_perpetuals_pnl(connected) -> None:
    _, engine, cid = connected
    await engine.sync_broker_trades(cid, "ann")
    perps = [t async for t in engine.iter_trades(connection_id=cid, symbol="BTC/USDT:USDT")]
    assert perps and all(t.raw["multiplier"] == "0.01" for t in perps)
    for t in perps:  # quantities are contracts of 0.01 BTC
        sign = 1 if t.direction.value == "long" else -1
        assert t.realized_pnl == (t.exit_price - t.entry_price) * t.quantity * Decimal("0.01") * sign


@pytest.mark.parametrize("connected", EXCHANGES, indirect=True)
async def test_scheduled_syncs_take_only_new_fills_and_none_sharing_the_last_ones_millisecond_is_lost(
    connected,
) -> None:
    setup, engine, cid = connected
    fake = setup.fake
    await engine.sync_broker_trades(cid, "ann")
    history_requests = len(fake.requests)
    stored = set(stored_executions(setup.database, cid))

    async def scheduled(new_ids: list[str]) -> None:
        nonlocal stored
        before_trips = await trips_of(engine, cid)
        fake.requests.clear()
        result = await engine.sync_broker_trades(cid, "ann", trigger="scheduled")
        assert result.status.value == "succeeded"
        now = set(stored_executions(setup.database, cid))
        assert sorted(now - stored) == sorted(new_ids) and stored <= now
        stored = now
        want_trips, want_open = fifo(fake.truth(), fees_of(stored_executions(setup.database, cid)))  # type: ignore[attr-defined]
        assert await trips_of(engine, cid) == want_trips
        assert result.imported == len(set(want_trips) - set(before_trips))
        assert {p.symbol: p.quantity for p in await engine.positions(connection_id=cid)} == want_open
        # The position moved: every history request starts within the core's lookback (3 days), none at
        # the start of the history again (Binance: no fromId=0), and there are far fewer of them.
        starts = history_starts(setup.key, fake)
        assert starts and min(starts) >= (1 if setup.key == "binance" else NOW_MS - 4 * DAY_MS), starts
        assert len(fake.requests) < history_requests

    one_hour = 3_600_000
    [newest] = add_fills(setup.key, fake, [NOW_MS + one_hour], first=0)
    setup.clock.advance(hours=2)
    await scheduled([newest])
    # A fill the exchange shows only now in the millisecond of the newest one synced (ccxt #16505), and a later one.
    late = add_fills(setup.key, fake, [NOW_MS + one_hour, NOW_MS + 3 * one_hour], first=1)
    setup.clock.advance(hours=2)
    await scheduled(late)


def _stop(key: str, request: httpx.Request, pages: dict[str, int]) -> httpx.Response | None:
    """A refusal no retry gets past, in the middle of the history walk (after a page of several)."""
    params = dict(request.url.params)
    if key == "kraken" and request.url.path == "/0/private/TradesHistory":
        pages["n"] += 1
        return reply(200, {"error": ["EGeneral:Invalid arguments"]}) if pages["n"] == 3 else None
    if key == "bybit" and "cursor" in params and params.get("category") == "spot":
        body = {"retCode": 10001, "retMsg": "params error", "result": {}, "retExtInfo": {}, "time": NOW_MS}
        return reply(200, body)
    if key == "coinbase" and "cursor" in params:
        return reply(400, {"error": "INVALID_ARGUMENT", "message": "Invalid arguments"})
    if key == "okx" and "after" in params and params.get("instType") == "SPOT":
        return reply(400, {"code": "51000", "msg": "Parameter after error", "data": []})
    return None


@pytest.mark.parametrize("connected", ["kraken", "coinbase", "bybit", "okx"], indirect=True)
async def test_a_sync_stopped_halfway_stores_no_gap_and_the_next_loses_nothing(connected) -> None:
    """Newest-first pages are held back until their window is complete, then stored oldest first."""
    setup, engine, cid = connected
    fake = setup.fake
    route = fake.route
    pages = {"n": 0}

    def stopping(request: httpx.Request) -> httpx.Response:
        return _stop(setup.key, request, pages) or route(request)

    fake.route = stopping  # type: ignore[method-assign]
    with pytest.raises(BrokerError):
        await engine.sync_broker_trades(cid, "ann")
    stored = set(stored_executions(setup.database, cid))
    truth = fake.truth()  # type: ignore[attr-defined]
    for symbol in {r["symbol"] for r in truth}:  # what is stored of a market is its oldest fills, no gap
        kept = [r["time"] for r in truth if r["symbol"] == symbol and r["id"] in stored]
        missing = [r["time"] for r in truth if r["symbol"] == symbol and r["id"] not in stored]
        assert not kept or not missing or max(kept) <= min(missing), symbol
    if setup.key == "bybit":
        assert stored  # the 7-day windows completed before the stop are kept

    fake.route = route  # type: ignore[method-assign]
    result = await engine.sync_broker_trades(cid, "ann", trigger="scheduled")
    assert result.status.value == "succeeded"
    assert sorted(stored_executions(setup.database, cid)) == sorted(r["id"] for r in truth)
    assert await trips_of(engine, cid) == fifo(truth, fees_of(stored_executions(setup.database, cid)))[0]


def test_the_ground_truth_has_what_the_tests_claim() -> None:
    """The fakes are awkward where the exchanges are: reversals, same-millisecond fills, spot and perp of one pair."""
    for key in EXCHANGES:
        truth = make_fake(key).truth()  # type: ignore[attr-defined]
        trips, _ = fifo(truth)
        times = [r["time"] for r in truth]
        assert len(times) > len(set(times)), key  # fills sharing a millisecond
        assert any(t["direction"] == "short" for t in trips.values()), key  # a sell beyond the position reverses it
        if key in ("binance", "bybit", "okx"):
            assert {"BTC/USDT", "BTC/USDT:USDT"} <= {r["symbol"] for r in truth}, key
        # fees in another currency than the round trip's: everything in BNB, or a coin bought and the quote
        foreign = {currency for t in trips.values() for currency in t["other_fees"]}
        assert foreign == {"binance": {"BNB"}, "bybit": {"BTC", "ETH"}, "okx": {"BTC", "ETH"}}.get(key, set()), key


@pytest.mark.parametrize("connected", ["binance", "kraken"], indirect=True)
async def test_the_sync_result_says_which_markets_were_searched_where_the_exchange_needs_a_symbol(
    connected,
) -> None:
    setup, engine, cid = connected
    result = await engine.sync_broker_trades(cid, "ann")
    searched = [w for w in result.warnings if w.code == "ccxt.markets_searched"]
    if setup.key == "kraken":  # one call answers for every market: nothing to name
        assert searched == []
        return
    traded = {r["symbol"] for r in setup.fake.truth()}  # type: ignore[attr-defined]
    named = " ".join(w.message for w in searched)
    assert traded and all(symbol in named for symbol in traded), named
    assert all("--set symbols=" in w.message and w.account_id for w in searched)
    runs = await engine.list_runs(connection_id=cid)
    assert [w.code for w in runs[0].warnings] == [w.code for w in result.warnings]


@pytest.mark.parametrize("connected", ["okx", "kraken"], indirect=True)
async def test_a_first_sync_says_when_the_exchange_keeps_less_history_than_asked_for(connected) -> None:
    setup, engine, cid = connected
    first = await engine.sync_broker_trades(cid, "ann")
    depth = [w.message for w in first.warnings if w.code == "ccxt.history_depth"]
    if setup.key == "kraken":  # Kraken's trade history has no documented depth limit
        assert depth == []
        return
    assert depth and all("reaches back" in m and "days" in m for m in depth), first.warnings
    setup.clock.advance(hours=2)
    again = await engine.sync_broker_trades(cid, "ann", trigger="scheduled")  # from the cursor: nothing older asked
    assert again.status.value == "succeeded"
    assert [w for w in again.warnings if w.code == "ccxt.history_depth"] == []
