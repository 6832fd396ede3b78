"""Bybit v5: execution/list per category in 7-day windows, cursor pages, non-trade execTypes skipped."""

from __future__ import annotations

from decimal import Decimal

import brokersync
import pytest
from ccxt_conftest import collect
from fakes import DAY_MS, NOW_MS, FakeBybit, reply

pytestmark = pytest.mark.anyio
CREDS = {"api_key": "key-1", "secret": "c2VjcmV0LXNlY3JldA=="}


def trade_ids(fake: FakeBybit) -> set[str]:
    return {r["id"] for r in fake.truth()}


async def test_full_history_walks_7_day_windows_by_cursor_and_skips_funding(open_broker) -> None:
    fake = FakeBybit()
    async with open_broker("bybit", fake.transport()) as broker:
        executions, cursor = await collect(broker, CREDS)
    ids = [e.broker_execution_id for e in executions]
    assert sorted(ids) == sorted(trade_ids(fake))  # every trade once, no funding row
    asks = [dict(r.url.params) for r in fake.paths("/v5/execution/list")]
    assert {a["category"] for a in asks} == {"spot", "linear"}
    assert all(int(a["endTime"]) - int(a["startTime"]) <= 7 * DAY_MS for a in asks)
    # Two years back in 7-day windows, per category; the first window starts at the API's depth.
    assert min(int(a["startTime"]) for a in asks) >= NOW_MS - 730 * DAY_MS
    assert sum(1 for a in asks if "cursor" in a) >= 2  # windows with more than a page were followed by cursor
    assert fake.split_groups() >= 1  # a page boundary fell inside fills sharing one timestamp
    perp = next(e for e in executions if e.broker_execution_id.startswith("swap:BTCUSDT:l-"))
    assert perp.instrument.symbol == "BTC/USDT:USDT" and perp.instrument.multiplier == Decimal(1)
    spot = next(e for e in executions if e.broker_execution_id == "BTCUSDT:s-000001")
    assert spot.price == Decimal("30000.10") and spot.quantity == Decimal("0.010")
    assert spot.fees == Decimal("0.00001") and spot.fee_currency == "BTC"  # a spot buy pays in the coin bought
    assert spot.instrument.instrument_id == "BTCUSDT" and perp.instrument.instrument_id == "swap:BTCUSDT"
    assert '"linear|*"' in cursor


async def test_incremental_sync_asks_from_the_last_fill_and_gets_only_new_ones(open_broker, vtime) -> None:
    fake = FakeBybit()
    async with open_broker("bybit", fake.transport()) as broker:
        _, cursor = await collect(broker, CREDS)
    newest = max(f["time"] for f in fake.fills if f["category"] == "spot")
    fake.fills.append({**fake.fills[0], "n": 99_001, "exec_id": "s-new", "time": newest})  # same ms as the newest
    fake.fills.append({**fake.fills[0], "n": 99_002, "exec_id": "s-newer", "time": NOW_MS + 3_600_000})
    vtime.now += 7200
    fake.requests.clear()
    async with open_broker("bybit", fake.transport()) as broker:
        new, _ = await collect(broker, CREDS, cursor)
    assert sorted(e.broker_execution_id for e in new) == ["BTCUSDT:s-new", "BTCUSDT:s-newer"]
    spot_asks = [dict(r.url.params) for r in fake.paths("/v5/execution/list") if r.url.params["category"] == "spot"]
    assert min(int(a["startTime"]) for a in spot_asks) == newest - 1  # from the last fill, not two years again
    assert len(spot_asks) == 1


async def test_non_trade_exec_types_are_not_fills_even_if_the_filter_is_ignored(open_broker) -> None:
    fake = FakeBybit()
    original = fake.executions

    def ignoring_filter(params: dict[str, str]):  # an API answer that mixes funding rows in
        return original({k: v for k, v in params.items() if k != "execType"})

    fake.executions = ignoring_filter  # type: ignore[method-assign]
    async with open_broker("bybit", fake.transport()) as broker:
        executions, _ = await collect(broker, CREDS)
    assert sorted(e.broker_execution_id for e in executions) == sorted(trade_ids(fake))
    assert any(f["exec_type"] == "Funding" for f in fake.fills)


async def test_invalid_key_is_an_auth_error(open_broker) -> None:
    fake = FakeBybit(api_key="someone-else")
    async with open_broker("bybit", fake.transport()) as broker:
        with pytest.raises(brokersync.BrokerAuthError, match="bybit"):
            await broker.authenticate(CREDS)


async def test_too_many_visits_backs_off_and_loses_nothing(open_broker, vtime) -> None:
    fake = FakeBybit()
    limited = reply(
        200,
        {"retCode": 10006, "retMsg": "Too many visits!", "result": {}, "retExtInfo": {}, "time": NOW_MS},
        {"X-Bapi-Limit-Status": "0", "X-Bapi-Limit": "50", "X-Bapi-Limit-Reset-Timestamp": str(NOW_MS + 2000)},
    )
    fake.fail_next(limited, limited)
    async with open_broker("bybit", fake.transport()) as broker:
        executions, _ = await collect(broker, CREDS)
    assert len(vtime.sleeps) >= 2 and all(s > 0 for s in vtime.sleeps[:2])
    assert sorted(e.broker_execution_id for e in executions) == sorted(trade_ids(fake))


async def test_two_connections_of_one_key_share_its_budget(vtime) -> None:
    from ccxt_conftest import budget_waits

    units = 1200  # one sync costs about 1090 of ccxt's cost units: one fits in a window, two do not
    alone = await budget_waits(vtime, "bybit", [(FakeBybit().transport(), CREDS)], units)
    same = await budget_waits(
        vtime, "bybit", [(FakeBybit().transport(), CREDS), (FakeBybit().transport(), CREDS)], units
    )
    other = {**CREDS, "api_key": "key-2"}
    apart = await budget_waits(
        vtime, "bybit", [(FakeBybit().transport(), CREDS), (FakeBybit(api_key="key-2").transport(), other)], units
    )
    assert alone == 0 and apart == 0
    assert same >= 10  # the second connection waited for the key's window to free up


def test_windows_never_exceed_what_the_fake_accepts() -> None:
    fake = FakeBybit()
    too_wide = fake.executions({"category": "spot", "startTime": str(NOW_MS - 8 * DAY_MS), "endTime": str(NOW_MS)})
    assert too_wide.json()["retCode"] == 10001  # the fake enforces the documented 7-day rule the walk obeys
