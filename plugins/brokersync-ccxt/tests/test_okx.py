"""OKX: fills-history (3 months deep) by instType, pages of 100 older by ``after`` (bill id), OK-ACCESS-SIGN."""

from __future__ import annotations

from decimal import Decimal

import brokersync
import pytest
from ccxt_conftest import budget_waits, collect
from fakes import DAY_MS, NOW_MS, FakeOkx, reply

pytestmark = pytest.mark.anyio
CREDS = {"api_key": "key-1", "secret": "c2VjcmV0LXNlY3JldA==", "password": "pass-phrase-1"}


def served_ids(fake: FakeOkx) -> set[str]:
    """What the API can still give: fills of the last 90 days (older ones need the export file)."""
    return {r["id"] for r in fake.truth()}


async def test_full_history_of_three_months_pages_by_bill_id(open_broker) -> None:
    fake = FakeOkx()
    async with open_broker("okx", fake.transport()) as broker:
        executions, cursor = await collect(broker, CREDS)
    ids = [e.broker_execution_id for e in executions]
    assert sorted(ids) == sorted(served_ids(fake))
    assert len(served_ids(fake)) < len(fake.fills)  # the fake holds older fills the API no longer serves
    asks = [dict(r.url.params) for r in fake.paths("/trade/fills-history")]
    assert {a["instType"] for a in asks} == {"SPOT", "SWAP"}
    assert all(int(a["begin"]) >= NOW_MS - 90 * DAY_MS for a in asks)  # never asks beyond the 3 months
    spot_afters = [a.get("after") for a in asks if a["instType"] == "SPOT"]
    assert spot_afters[0] is None and len(spot_afters) == 2  # 189 fills: 100, then the 89 older than bill id
    assert fake.split_groups() == 1  # the page boundary fell inside fills sharing one timestamp
    swap = next(e for e in executions if e.broker_execution_id.startswith("swap:BTC-USDT-SWAP:"))
    assert swap.instrument.symbol == "BTC/USDT:USDT" and swap.instrument.multiplier == Decimal("0.01")
    assert swap.instrument.currency == "USDT"
    first = next(f for f in fake.fills if f["time"] >= NOW_MS - 90 * DAY_MS and f["inst_type"] == "SPOT")
    mine = next(e for e in executions if e.broker_execution_id == f"{first['market']}:{900_000 + first['n']}")
    assert mine.price == Decimal(first["price"]) and mine.quantity == Decimal(first["qty"])
    assert mine.fees == Decimal(first["fee"]) and mine.fee_currency == first["fee_ccy"]  # "-0.00x" charged -> cost
    assert '"spot|*"' in cursor and '"linear|*"' in cursor


async def test_incremental_sync_begins_at_the_last_fill(open_broker, vtime) -> None:
    fake = FakeOkx()
    async with open_broker("okx", fake.transport()) as broker:
        _, cursor = await collect(broker, CREDS)
    newest = max(f["time"] for f in fake.fills if f["inst_type"] == "SPOT")
    fake.fills.append({**fake.fills[0], "n": 5000, "bill": 9_000_000, "time": newest})
    vtime.now += 600
    fake.requests.clear()
    async with open_broker("okx", fake.transport()) as broker:
        new, _ = await collect(broker, CREDS, cursor)
    assert [e.broker_execution_id for e in new] == [f"{fake.fills[0]['market']}:905000"]
    spot = [dict(r.url.params) for r in fake.paths("/trade/fills-history") if r.url.params["instType"] == "SPOT"]
    assert [int(a["begin"]) for a in spot] == [newest - 1]


async def test_wrong_passphrase_is_an_auth_error(open_broker) -> None:
    fake = FakeOkx(passphrase="another")
    async with open_broker("okx", fake.transport()) as broker:
        with pytest.raises(brokersync.BrokerAuthError, match="okx"):
            await broker.authenticate(CREDS)


async def test_too_many_requests_waits_and_loses_nothing(open_broker, vtime) -> None:
    fake = FakeOkx()
    fake.fail_next(reply(429, {"code": "50011", "msg": "Too Many Requests", "data": []}))
    async with open_broker("okx", fake.transport()) as broker:
        executions, _ = await collect(broker, CREDS)
    assert vtime.sleeps and vtime.sleeps[0] > 0
    assert sorted(e.broker_execution_id for e in executions) == sorted(served_ids(fake))


async def test_two_connections_of_one_key_share_its_budget(vtime) -> None:
    units = 12  # one sync costs 10 of ccxt's cost units: one fits in a window, two do not
    alone = await budget_waits(vtime, "okx", [(FakeOkx().transport(), CREDS)], units)
    same = await budget_waits(vtime, "okx", [(FakeOkx().transport(), CREDS), (FakeOkx().transport(), CREDS)], units)
    other = {**CREDS, "api_key": "key-2"}
    apart = await budget_waits(
        vtime, "okx", [(FakeOkx().transport(), CREDS), (FakeOkx(api_key="key-2").transport(), other)], units
    )
    assert alone == 0 and apart == 0
    assert same >= 10
