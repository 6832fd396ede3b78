"""The ``oanda`` broker plugin: metadata and hooks for the OANDA v20 REST API.

How a sync works (all requests through ``ctx.http``, see :mod:`brokersync_oanda.client`):

* **Round trips**: OANDA pairs by itself. One CLOSED OANDA trade is one brokersync round trip;
  a partially closed trade stays open until its last units close. Open trades are the account's
  position snapshot (``TradePage.positions``).
* **Cursor**: the id of the last transaction processed, per account. The first sync walks the
  closed trades (``beforeID`` paging); later syncs read ``transactions/sinceid`` from the cursor,
  collect the trades its ORDER_FILLs closed and fetch them by id.
* **Nothing new costs nothing extra**: ``get_accounts`` reads each account's summary (home
  currency, alias, last transaction id); when the last transaction id equals the cursor,
  ``get_trades`` sends no request at all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Mapping
from typing import Any

from brokersync import (
    Account,
    AuthResult,
    AuthType,
    BrokerContext,
    BrokerMetadata,
    Capabilities,
    CredentialField,
    Credentials,
    CursorKind,
    RateLimit,
    Reports,
    RetryPolicy,
    TradePage,
    hookimpl,
)
from brokersync.parsing import parse_time_optional

from brokersync_oanda import parse
from brokersync_oanda.client import MAX_COUNT, OandaClient

__all__ = ["METADATA", "authenticate", "broker_metadata", "get_accounts", "get_trades"]

_LAST_TRANSACTION = "oanda.last_transaction"  # ctx.cache: account id -> lastTransactionID from its summary

METADATA = BrokerMetadata(
    key="oanda",
    name="OANDA",
    description="OANDA v20 (fxTrade and fxTrade Practice): closed trades as round trips, open trades as positions.",
    auth_type=AuthType.TOKEN,
    credential_fields=(
        CredentialField(
            name="token",
            label="Personal access token",
            secret=True,
            description="Generated under 'Manage API Access' in the OANDA portal; one per environment.",
        ),
    ),
    environments={"practice": "https://api-fxpractice.oanda.com/v3", "live": "https://api-fxtrade.oanda.com/v3"},
    default_environment="practice",
    capabilities=Capabilities(
        refresh_token=False,
        historical=True,
        cursor=CursorKind.OPAQUE,
        reports=Reports.ROUND_TRIPS,
        positions=True,
    ),
    # OANDA: 120 requests/s for REST, 100/s on one keep-alive connection; stay under the lower one.
    # scope="account" is counted per connection (one token) by the core.
    rate_limits=(RateLimit(max_requests=100, window_seconds=1.0, scope="account"),),
    retry=RetryPolicy(max_retries=5, initial_delay=0.5, max_delay=20.0, request_timeout=30.0),
    docs_url="https://developer.oanda.com/rest-live-v20/introduction/",
    plugin_api=">=1,<2",
)


@hookimpl
def broker_metadata() -> BrokerMetadata:
    """Describe OANDA."""
    return METADATA


@hookimpl
async def authenticate(ctx: BrokerContext, credentials: Credentials) -> AuthResult:
    """Check the token with the cheapest call (``GET /accounts``); it never expires and is never refreshed."""
    token = credentials["token"]
    await OandaClient(ctx, token).accounts()
    return AuthResult(access_token=token, expires_at=None)


@hookimpl
async def get_accounts(ctx: BrokerContext, auth: AuthResult) -> list[Account]:
    """List the token's accounts, with home currency and alias from each account's summary."""
    client = OandaClient(ctx, auth.access_token)
    last: dict[str, int] = ctx.cache.setdefault(_LAST_TRANSACTION, {})
    accounts = []
    for listed in await client.accounts():
        summary, last[str(listed["id"])] = await client.summary(str(listed["id"]))
        accounts.append(Account(**parse.to_account(listed, summary)))
    return accounts


@hookimpl
async def get_trades(
    ctx: BrokerContext, auth: AuthResult, account: Account, since: dt.datetime | None, cursor: str | None
) -> AsyncIterator[TradePage]:
    """Stream the closed trades since ``cursor`` (without one: all, or those closed at/after ``since``).

    Pages carry no cursor until the last one, which carries the last transaction id processed and,
    when fills happened, the open trades as the position snapshot: a run that stops half-way
    starts again from the previous cursor.
    """
    client = OandaClient(ctx, auth.access_token)
    # The run's account listing read each account's last transaction id; used once, never stale.
    listed_last = ctx.cache.get(_LAST_TRANSACTION, {}).pop(account.id, None)
    currency = account.currency or (await client.summary(account.id))[0]["currency"]
    fills: dict[str, dict[str, Any]] = {}  # ORDER_FILL transactions by id: their commissions are the fees

    async def records(trades: list[dict[str, Any]]) -> list[dict[str, Any]]:
        needed = {int(i) for t in trades for i in [t["id"], *(t.get("closingTransactionIDs") or [])]}
        fills.update(await client.fills(account.id, (i for i in needed if str(i) not in fills)))
        return [parse.to_record(t, account_id=account.id, currency=currency, fills=fills) for t in trades]

    if cursor is None:
        last: int | None = None
        async for trades, page_last in client.trade_pages(account.id, "CLOSED"):
            last = last or page_last  # the log's end when the walk began: later closes come by sinceid
            kept = [t for t in trades if not _closed_before(t, since)]
            yield TradePage(records=await records(kept))
        if last is None:
            last = (await client.summary(account.id))[1]
        fills_happened = True
    else:
        last = int(cursor)
        if listed_last == last:
            yield TradePage(cursor=cursor)  # nothing happened since the last sync
            return
        transactions, last = await client.transactions_since(account.id, last)
        fills.update({str(t["id"]): t for t in transactions if parse.is_fill(t)})
        closed = parse.closed_trade_ids(transactions)
        for start in range(0, len(closed), MAX_COUNT):
            batch = await client.trades_by_id(account.id, closed[start : start + MAX_COUNT], "CLOSED")
            yield TradePage(records=await records(batch))
        fills_happened = any(parse.is_fill(t) for t in transactions)
    positions = None
    if fills_happened:
        positions = [
            parse.to_position(t, account_id=account.id)
            async for page, _ in client.trade_pages(account.id, "OPEN")
            for t in page
        ]
    yield TradePage(cursor=str(last), positions=positions)


def _closed_before(trade: Mapping[str, Any], since: dt.datetime | None) -> bool:
    if since is None:
        return False
    try:
        closed = parse_time_optional(trade.get("closeTime"))
    except (TypeError, ValueError):
        return False  # let the core report the bad time
    return closed is not None and closed < since
