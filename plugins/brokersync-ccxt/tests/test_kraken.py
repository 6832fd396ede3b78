"""Kraken: TradesHistory paged by ofs (50 a time, newest first), API-Sign checked, invalid nonce re-signed."""

from __future__ import annotations

from decimal import Decimal

import brokersync
import pytest
from ccxt_conftest import collect
from fakes import FakeKraken, reply

pytestmark = pytest.mark.anyio
CREDS = {"api_key": "key-1", "secret": "c2VjcmV0LXNlY3JldA=="}


async def test_full_history_by_offsets_keeps_same_time_fills_at_the_page_boundary(open_broker) -> None:
    fake = FakeKraken()
    async with open_broker("kraken", fake.transport()) as broker:
        executions, _ = await collect(broker, CREDS)
    assert sorted(e.raw["trade_id"] for e in executions) == [f["n"] for f in fake.fills]
    offsets = [
        dict(__import__("urllib.parse").parse.parse_qsl(r.content.decode())).get("ofs")
        for r in fake.paths("TradesHistory")
    ]
    assert offsets == ["0", "50", "100"]
    one = next(e for e in executions if e.raw["trade_id"] == 1)
    assert one.instrument.symbol == "BTC/USD" and one.price == Decimal(fake.fills[0]["price"])
    assert one.fees == Decimal(fake.fills[0]["fee"]) and one.fee_currency == "USD"


async def test_incremental_sync_starts_at_the_last_fill(open_broker) -> None:
    fake = FakeKraken()
    async with open_broker("kraken", fake.transport()) as broker:
        _, cursor = await collect(broker, CREDS)
    fake.fills.append({**fake.fills[-1], "n": 500, "time": fake.fills[-1]["time"] + 60_000})
    async with open_broker("kraken", fake.transport()) as broker:
        new, _ = await collect(broker, CREDS, cursor)
    assert [e.raw["trade_id"] for e in new] == [500]


async def test_invalid_nonce_is_signed_again(open_broker) -> None:
    fake = FakeKraken()
    fake.fail_next(reply(200, {"error": ["EAPI:Invalid nonce"]}))
    async with open_broker("kraken", fake.transport()) as broker:
        executions, _ = await collect(broker, CREDS)
    assert len(executions) == len(fake.fills)
    nonces = [
        dict(__import__("urllib.parse").parse.parse_qsl(r.content.decode()))["nonce"] for r in fake.paths("/0/private/")
    ]
    assert len(set(nonces)) == len(nonces)  # the retry carried a fresh nonce, not the rejected request again


async def test_wrong_key_is_an_auth_error(open_broker) -> None:
    fake = FakeKraken(api_key="other")
    async with open_broker("kraken", fake.transport()) as broker:
        with pytest.raises(brokersync.BrokerAuthError, match="kraken"):
            await broker.authenticate(CREDS)


async def test_rate_limit_answer_waits_and_loses_nothing(open_broker, vtime) -> None:
    fake = FakeKraken()
    fake.fail_next(reply(429, {"error": ["EAPI:Rate limit exceeded"]}, {"Retry-After": "5"}))
    async with open_broker("kraken", fake.transport()) as broker:
        executions, _ = await collect(broker, CREDS)
    assert any(s >= 5 for s in vtime.sleeps)
    assert len(executions) == len(fake.fills)
