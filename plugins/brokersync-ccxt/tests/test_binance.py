"""Binance spot: myTrades per symbol by fromId, symbols found from balances, 429/418, bad key, shared limiter."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import brokersync
import pytest
from ccxt_conftest import collect
from fakes import FakeBinance, reply

pytestmark = pytest.mark.anyio

CREDS = {"api_key": "key-1", "secret": "c2VjcmV0LXNlY3JldA=="}


def expected_ids(fake: FakeBinance, markets: set[str]) -> set[str]:
    counters: dict[str, int] = {}
    ids = set()
    for fill in fake.fills:
        counters[fill["market"]] = counters.get(fill["market"], 0) + 1
        if fill["market"] in markets:
            ids.add(f"{fill['market']}:{counters[fill['market']]}")
    return ids


async def test_full_history_pages_by_from_id_over_the_symbols_the_account_holds(open_broker) -> None:
    fake = FakeBinance()
    async with open_broker("binance", fake.transport()) as broker:
        executions, cursor = await collect(broker, CREDS)
    # Balances hold BTC (and USDT, XRP at zero): BTC/USDT is searched by discovery; ETH markets are not held.
    assert {e.broker_execution_id for e in executions} == expected_ids(fake, {"BTCUSDT"})
    assert len(executions) == len({e.broker_execution_id for e in executions})
    pages = [dict(__import__("urllib.parse").parse.parse_qsl(r.url.query.decode())) for r in fake.paths("/myTrades")]
    assert [p["fromId"] for p in pages] == ["0", "1001"]  # 1034 BTCUSDT fills: two pages of 1000 at most
    assert all("startTime" not in p for p in pages)
    first = next(e for e in executions if e.broker_execution_id == "BTCUSDT:1")
    fill = next(f for f in fake.fills if f["market"] == "BTCUSDT")
    assert first.price == Decimal(fill["price"]) and first.quantity == Decimal(fill["qty"])
    assert first.fees == Decimal(fill["fee"]) and first.fee_currency == "BNB"
    assert first.instrument.symbol == "BTC/USDT" and first.instrument.currency == "USDT"
    assert first.instrument.instrument_id == "BTCUSDT"
    assert '"spot"' in cursor and "BTC/USDT" in cursor


async def test_extra_symbols_option_and_same_timestamp_fills_at_a_page_boundary(open_broker) -> None:
    fake = FakeBinance()
    async with open_broker("binance", fake.transport(), symbols="ETH/USDT,ETH/BTC") as broker:
        executions, _ = await collect(broker, CREDS)
    want = expected_ids(fake, {"BTCUSDT", "ETHUSDT", "ETHBTC"})
    assert {e.broker_execution_id for e in executions} == want
    assert len(executions) == len(fake.fills)


async def test_incremental_sync_asks_only_for_new_ids(open_broker) -> None:
    fake = FakeBinance()
    async with open_broker("binance", fake.transport()) as broker:
        first, cursor = await collect(broker, CREDS)
    fake.fills.append({**fake.fills[0], "n": 9999, "time": fake.fills[-1]["time"] + 1000})
    fake.requests.clear()
    async with open_broker("binance", fake.transport()) as broker:
        new, _ = await collect(broker, CREDS, cursor)
    assert [e.broker_execution_id for e in new] == [f"BTCUSDT:{len(first) + 1}"]
    assert [r.url.params["fromId"] for r in fake.paths("/myTrades")] == [str(len(first) + 1)]


async def test_rejected_key_is_an_auth_error(open_broker) -> None:
    fake = FakeBinance(api_key="another-key")
    async with open_broker("binance", fake.transport()) as broker:
        with pytest.raises(brokersync.BrokerAuthError, match="binance"):
            await broker.authenticate(CREDS)


async def test_429_waits_retry_after_and_loses_nothing(open_broker, vtime) -> None:
    fake = FakeBinance()
    fake.fail_next(reply(429, {"code": -1003, "msg": "Too many requests."}, {"Retry-After": "7"}))
    async with open_broker("binance", fake.transport()) as broker:
        executions, _ = await collect(broker, CREDS)
    assert any(7 <= s <= 7 * 1.3 for s in vtime.sleeps)  # Retry-After, plus the core's jitter
    assert {e.broker_execution_id for e in executions} == expected_ids(fake, {"BTCUSDT"})


async def test_418_ban_is_a_rate_limit_with_its_retry_after(open_broker) -> None:
    fake = FakeBinance()
    ban = reply(
        418, {"code": -1003, "msg": "Way too many requests; IP banned until 1767229200000."}, {"Retry-After": "3600"}
    )
    fake.fail_next(ban)
    async with open_broker("binance", fake.transport()) as broker:
        with pytest.raises(brokersync.BrokerRateLimitError) as caught:
            await broker.authenticate(CREDS)
    assert caught.value.retry_after == 3600
    assert len(fake.paths("/api/v3/account")) == 1  # a ban longer than the retry budget is not hammered


async def _two_connections(open_broker, fakes: list[FakeBinance], keys: list[str]) -> None:
    async def one(fake: FakeBinance, key: str, symbols: str) -> int:
        async with open_broker("binance", fake.transport(), symbols=symbols) as broker:
            executions, _ = await collect(broker, {**CREDS, "api_key": key})
            return len(executions)

    counts = await asyncio.gather(*(one(f, k, s) for f, k, s in zip(fakes, keys, ["ETH/USDT", "ETH/BTC"], strict=True)))
    assert all(counts)


@pytest.fixture
def small_budget(vtime):
    # A budget small enough that one connection's sync fits in it and two do not.
    return brokersync.Resilience(
        clock=vtime.clock,
        sleep=vtime.sleep,
        rate_limits={"binance": brokersync.RateLimit(max_requests=48, window_seconds=10, scope="account")},
    )


async def test_two_connections_with_one_key_share_its_budget(vtime, small_budget) -> None:
    import datetime as dt

    def open_broker(key, transport, **options):
        return brokersync.get_broker(
            key,
            transport=transport,
            http=lambda b: small_budget.client_for(b),
            clock=lambda: dt.datetime.fromtimestamp(vtime.now, dt.UTC),
            sleep=vtime.sleep,
            options=options,
        )

    await _two_connections(open_broker, [FakeBinance(), FakeBinance()], ["key-1", "key-1"])
    shared = sum(vtime.sleeps)
    vtime.sleeps.clear()
    other = brokersync.Resilience(
        clock=vtime.clock,
        sleep=vtime.sleep,
        rate_limits={"binance": brokersync.RateLimit(max_requests=48, window_seconds=10, scope="account")},
    )
    small_budget.__dict__.update(other.__dict__)
    await _two_connections(open_broker, [FakeBinance(), FakeBinance(api_key="key-2")], ["key-1", "key-2"])
    separate = sum(vtime.sleeps)
    assert shared >= 5 > separate  # the same key waits for its budget; two keys each have their own


async def test_linear_perpetual_fills_by_from_id_from_the_oldest(open_broker) -> None:
    fake = FakeBinance()
    async with open_broker("binance", fake.transport(), market_types="spot,linear", symbols="BTC/USDT:USDT") as broker:
        executions, cursor = await collect(broker, CREDS)
    perps = [e for e in executions if e.instrument.symbol == "BTC/USDT:USDT"]
    assert sorted(e.broker_execution_id for e in perps) == sorted(f"swap:BTCUSDT:{f['id']}" for f in fake.futures_fills)
    asks = [dict(r.url.params) for r in fake.paths("/fapi/v1/userTrades")]
    assert [a["fromId"] for a in asks] == ["0", "1900"]  # 1203 fills: 1000, then 203; no time range sent
    assert all("startTime" not in a and "endTime" not in a for a in asks)
    assert fake.split_groups() == 1  # fills 1000 and 1001 share a millisecond and stay on both sides of a page
    one = next(e for e in perps if e.broker_execution_id == "swap:BTCUSDT:900")
    assert one.instrument.multiplier == Decimal(1) and one.instrument.currency == "USDT"
    # USDⓈ-M numbers its trades apart from spot (BTCUSDT:900 is a spot fill too) and reuses the pair's id:
    # the perpetual is an instrument of its own, never paired with the spot pair.
    assert one.instrument.instrument_id == "swap:BTCUSDT" and "BTCUSDT:900" in {
        e.broker_execution_id for e in executions
    }
    assert one.fees == Decimal(fake.futures_fills[0]["fee"]) and one.fee_currency == "USDT"
    assert '"linear|BTC/USDT:USDT"' in cursor
    # spot still synced beside it, by its own fromId walk
    assert {e.broker_execution_id for e in executions if e.instrument.symbol == "BTC/USDT"} == expected_ids(
        fake, {"BTCUSDT"}
    )
