"""Re-authentication belongs to the core: a 401 in the middle of the pages renews once and resumes.

The plugins here carry no auth header and no renew-on-401 code; the fake API ends every session
after a few requests, so a sync of 40 trades in pages of 5 meets several 401s.
"""

from __future__ import annotations

import pytest
from brokersync import BrokerAuthError, ConnectionStatus, SyncTrigger
from expiring import ExpiringApi, LoginOnlyPlugin, RefreshingPlugin

pytestmark = pytest.mark.anyio

USER = "u1"
#: The cursors of the 8 pages of 40 trades, in order (the fake records only requests it served).
PAGES = [None, *[str(n) for n in range(5, 40, 5)]]


async def _connect(engine, api: ExpiringApi) -> str:
    result = await engine.connect_broker(USER, "expiring", {"user": "alice", "password": api.password})
    return result.connection_id


async def _stored_ids(engine, connection_id: str) -> list[str]:
    return [t.broker_trade_id async for t in engine.iter_trades(user_id=USER, connection_id=connection_id)]


async def test_without_refresh_the_core_logs_in_again_from_stored_credentials_and_resumes_the_page(make_engine):
    api = ExpiringApi(trades=40, page_size=5, token_uses=3)
    engine = make_engine(LoginOnlyPlugin(), api)
    connection_id = await _connect(engine, api)
    assert api.logins == 1
    result = await engine.sync_broker_trades(connection_id, USER)
    assert result.imported == 40
    assert sorted(await _stored_ids(engine, connection_id)) == [t["id"] for t in api.trades]  # nothing missing
    # Each expiry cost one login and one resend of the same page (no page skipped, none re-read twice).
    assert api.logins == 1 + api.expired_answers
    # Each page was served exactly once: the rejected one was asked again, with the same cursor.
    assert api.trade_requests == PAGES
    # The renewed token was stored: the next sync starts with it (no login just to start).
    logins = api.logins
    api.token_uses = 100
    await engine.sync_broker_trades(connection_id, USER, trigger=SyncTrigger.SCHEDULED)
    assert api.logins == logins


async def test_with_refresh_the_core_refreshes_and_never_logs_in_again(make_engine):
    api = ExpiringApi(trades=40, page_size=5, token_uses=4)
    engine = make_engine(RefreshingPlugin(), api)
    connection_id = await _connect(engine, api)
    result = await engine.sync_broker_trades(connection_id, USER)
    assert result.imported == 40
    assert api.expired_answers >= 2
    assert api.logins == 1  # the connect only
    assert api.refreshes == api.expired_answers
    assert api.trade_requests == PAGES


async def test_a_refused_login_after_the_expiry_fails_the_sync_and_marks_the_connection_needs_reauth(make_engine):
    api = ExpiringApi(trades=40, page_size=5, token_uses=3)
    engine = make_engine(LoginOnlyPlugin(), api)
    connection_id = await _connect(engine, api)
    api.password = "changed-by-the-user"  # the stored credentials no longer work
    with pytest.raises(BrokerAuthError) as caught:
        await engine.sync_broker_trades(connection_id, USER)
    assert "alice" not in str(caught.value) and "pw-secret-42" not in str(caught.value)
    info = await engine.get_connection(connection_id, USER)
    assert info.status is ConnectionStatus.NEEDS_REAUTH
    # What arrived before the expiry stays stored; nothing is half-stored.
    stored = sorted(await _stored_ids(engine, connection_id))
    assert stored == [t["id"] for t in api.trades[: len(stored)]]


async def test_a_second_401_after_the_renewal_is_an_auth_error_not_a_loop(make_engine):
    api = ExpiringApi(trades=40, page_size=5, token_uses=3)
    engine = make_engine(RefreshingPlugin(), api)
    connection_id = await _connect(engine, api)
    api.token_uses = 0  # every token is refused at once, even a fresh one
    with pytest.raises(BrokerAuthError, match="rejected the renewed token too"):
        await engine.sync_broker_trades(connection_id, USER)
    assert api.refreshes + api.logins - 1 <= 2  # renewed at most once per call: no loop


async def test_concurrent_401s_share_one_renewal():
    # A facade used on its own renews from the credentials given to authenticate(), once for all.
    import asyncio

    from brokersync import BrokerRegistry

    api = ExpiringApi(token_uses=1)
    registry = BrokerRegistry(entry_points=False)
    registry.register("expiring", RefreshingPlugin())
    async with registry.get("expiring", transport=api.transport()) as broker:
        auth = await broker.authenticate({"user": "alice", "password": api.password})
        await broker.get_accounts(auth)
        api.token_uses = 100
        api.uses[auth.access_token] = 10**6  # the broker ended this session
        results = await asyncio.gather(*(broker.http.get("accounts") for _ in range(5)))
    assert [r.status_code for r in results] == [200] * 5
    assert api.refreshes == 1 and api.logins == 1
    assert broker.token_session.renewals == 1
