"""Coinbase Advanced Trade: historical fills newest first by ``cursor``, a CDP key signing an ES256 JWT per request."""

from __future__ import annotations

from decimal import Decimal

import brokersync
import pytest
from ccxt_conftest import budget_waits, collect
from fakes import FakeCoinbase, _iso, reply

pytestmark = pytest.mark.anyio


def all_ids(fake: FakeCoinbase) -> set[str]:
    return {f"{f['market']}:t-{f['n']:06d}" for f in fake.fills}


async def test_full_history_follows_the_cursor_across_same_time_fills(open_broker) -> None:
    fake = FakeCoinbase()
    async with open_broker("coinbase", fake.transport()) as broker:
        executions, cursor = await collect(broker, fake.credentials)
    ids = [e.broker_execution_id for e in executions]
    assert sorted(ids) == sorted(all_ids(fake))
    asks = [dict(r.url.params) for r in fake.paths("/orders/historical/fills")]
    assert [("cursor" in a) for a in asks] == [False, True, True]  # 560 fills, the server's pages of 250
    assert fake.split_groups() == 1  # the 250th and 251st fill share a timestamp
    assert asks[0]["start_sequence_timestamp"].startswith("2017-01-01")  # no published depth: from history_start
    one = next(e for e in executions if e.broker_execution_id == "BTC-USD:t-000001")
    assert one.price == Decimal(fake.fills[0]["price"]) and one.quantity == Decimal(fake.fills[0]["qty"])
    assert one.fees == Decimal(fake.fills[0]["fee"]) and one.fee_currency == "USD"  # commission is in the quote
    assert one.executed_at.isoformat().startswith(_iso(fake.fills[0]["time"])[:19])
    assert '"spot|*"' in cursor and '"linear|*"' not in cursor  # one walk: the endpoint covers every product


async def test_incremental_sync_starts_at_the_last_fill(open_broker, vtime) -> None:
    fake = FakeCoinbase()
    async with open_broker("coinbase", fake.transport()) as broker:
        _, cursor = await collect(broker, fake.credentials)
    newest = max(f["time"] for f in fake.fills)
    fake.fills.append({**fake.fills[1], "n": 900, "time": newest})
    vtime.now += 60
    fake.requests.clear()
    async with open_broker("coinbase", fake.transport()) as broker:
        new, _ = await collect(broker, fake.credentials, cursor)
    assert [e.broker_execution_id for e in new] == [f"{fake.fills[1]['market']}:t-000900"]
    [ask] = [dict(r.url.params) for r in fake.paths("/orders/historical/fills")]
    assert ask["start_sequence_timestamp"] == _iso(newest - 1).replace("000000Z", "Z")


async def test_a_key_coinbase_does_not_know_is_an_auth_error(open_broker) -> None:
    fake = FakeCoinbase()
    stranger = FakeCoinbase()  # another EC key: its JWT signature does not verify with the registered key
    async with open_broker("coinbase", fake.transport()) as broker:
        with pytest.raises(brokersync.BrokerAuthError, match="coinbase"):
            await broker.authenticate({**fake.credentials, "secret": stranger.secret})


async def test_rate_limit_waits_and_loses_nothing(open_broker, vtime) -> None:
    fake = FakeCoinbase()
    fake.fail_next(reply(429, {"error": "rate_limit_exceeded", "message": "Too many requests"}, {"Retry-After": "2"}))
    async with open_broker("coinbase", fake.transport()) as broker:
        executions, _ = await collect(broker, fake.credentials)
    assert any(s >= 2 for s in vtime.sleeps)
    assert sorted(e.broker_execution_id for e in executions) == sorted(all_ids(fake))


async def test_two_connections_of_one_key_share_its_budget(vtime) -> None:
    a = FakeCoinbase()

    def knowing_a() -> FakeCoinbase:  # another copy of the API where a's CDP key is registered
        fake = FakeCoinbase()
        fake.accepted_keys = a.accepted_keys
        return fake

    units = 20  # one sync costs 13 to 16 of ccxt's cost units: one fits in a window, two do not
    alone = await budget_waits(vtime, "coinbase", [(knowing_a().transport(), a.credentials)], units)
    assert alone == 0
    runs = [(knowing_a().transport(), a.credentials), (knowing_a().transport(), a.credentials)]
    same = await budget_waits(vtime, "coinbase", runs, units)
    c, d = FakeCoinbase(), FakeCoinbase(api_key="organizations/org-1/apiKeys/key-2")
    apart = await budget_waits(
        vtime, "coinbase", [(c.transport(), c.credentials), (d.transport(), d.credentials)], units
    )
    assert apart == 0
    assert same >= 10
