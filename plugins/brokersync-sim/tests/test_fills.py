"""The fills account: a paged execution feed with partial fills, a late fill and a bust."""

from __future__ import annotations

import datetime as dt

import pytest

pytestmark = pytest.mark.anyio


async def _read(broker, auth, account, cursor=None):
    executions, busts, pages, last = [], [], 0, cursor
    async for batch in broker.iter_trades(auth, account, cursor=cursor):
        pages += 1
        executions.extend(batch.executions)
        busts.extend(batch.execution_cancellations)
        last = batch.cursor
        assert not batch.trades and not batch.errors
    return executions, busts, pages, last


async def test_the_fills_feed_pages_then_brings_a_late_fill_and_a_bust(make_broker, credentials):
    _api, broker = make_broker(seed=5, accounts=1, trades_per_account=10, fills=True)
    auth = await broker.authenticate(credentials)
    accounts = await broker.get_accounts(auth)
    fills = [a for a in accounts if a.type == "fills"]
    assert len(fills) == 1 and fills[0].id.endswith("-FILLS") and len(accounts) == 2

    first, busts, pages, cursor = await _read(broker, auth, fills[0])
    assert pages == 1  # the plugin asks for 1000 a page
    assert not busts
    keys = [e.broker_execution_id.rsplit("-", 1)[1] for e in first]
    assert keys == ["A1", "A2", "A3", "A4", "A5", "E1", "E2", "E3", "M1", "M2", "M4"]
    assert [str(e.quantity) for e in first if e.order_id and e.order_id.endswith("-O1")] == ["100", "50"]

    later, busts, _, cursor2 = await _read(broker, auth, fills[0], cursor=cursor)
    late, busted = later
    assert late.broker_execution_id.endswith("-M3")
    m4 = next(e for e in first if e.broker_execution_id.endswith("-M4"))
    assert late.executed_at < m4.executed_at, "the late fill executed before fills already listed"
    assert [b.broker_execution_id for b in busts] == [busted.broker_execution_id]
    assert busted.broker_execution_id.endswith("-A5") and busts[0].cancelled_at.tzinfo is dt.UTC

    again, busts_again, _, _ = await _read(broker, auth, fills[0], cursor=cursor2)
    assert again == [] and busts_again == [], "nothing changes after the one round"
    full, busts_full, _, _ = await _read(broker, auth, fills[0])
    assert len(full) == 12 and len({e.broker_execution_id for e in full}) == 12  # the bust is listed once
    assert len(busts_full) == 1


async def test_without_fills_there_is_no_fills_account(make_broker, credentials):
    _api, broker = make_broker(accounts=1, trades_per_account=5)
    auth = await broker.authenticate(credentials)
    assert all(a.type != "fills" for a in await broker.get_accounts(auth))


async def test_the_fills_endpoint_pages_with_a_cursor_and_refuses_other_accounts(make_broker):
    import httpx

    api, _broker = make_broker(accounts=1, trades_per_account=5, fills=True)
    async with httpx.AsyncClient(transport=api.transport(), base_url=api.base_url + "/") as http:
        token = (await http.post("auth/token", json={"username": "bob", "password": "sim-password"})).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        account = api.fills_account("bob")
        assert account is not None
        seen, params, pages = [], {"limit": "4"}, 0
        while True:
            body = (await http.get(f"accounts/{account['id']}/fills", params=params, headers=headers)).json()
            pages += 1
            assert len(body["fills"]) <= 4
            seen += [f["id"] for f in body["fills"]]
            if not body["has_more"]:
                break
            params = {"limit": "4", "cursor": body["next_cursor"]}
        assert pages == 3 and len(seen) == len(set(seen)) == 11
        other = await http.get("accounts/SIMX-000000-FILLS/fills", headers=headers)
        assert other.status_code == 404
