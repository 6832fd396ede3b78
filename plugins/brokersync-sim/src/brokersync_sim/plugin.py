"""The ``sim`` broker plugin: metadata and the hook implementations.

This module is the whole contract a broker plugin fulfils, and the example to copy:

* :func:`broker_metadata` describes the broker (credential schema with secret flags, environments,
  capabilities, rate limits, retry policy) and does no I/O;
* :func:`authenticate`, :func:`refresh_token`, :func:`get_accounts` and :func:`get_trades` talk to
  the broker only through :class:`~brokersync_sim.client.SimClient`, which uses ``ctx.http`` (the
  core's client: rate limits, retries, circuit breaker, timeouts and error mapping come for free);
* :func:`to_record` maps one wire record to the field names of :class:`brokersync.Trade` without
  validating it: the core validates each record on its own, so one broken record is reported and
  skipped instead of failing the page.

The entry point ``sim = "brokersync_sim.plugin"`` registers this module; nothing heavy is imported
here, so ``brokersync plugins`` stays fast.
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
    TokenAuth,
    TradePage,
    hookimpl,
)

from brokersync_sim.client import SimClient

__all__ = [
    "APP_LIMIT",
    "LOCAL_BASE_URL",
    "SIM_BASE_URL",
    "USER_LIMIT",
    "authenticate",
    "broker_metadata",
    "get_accounts",
    "get_trades",
    "refresh_token",
    "to_cancellation",
    "to_execution",
    "to_execution_cancellation",
    "to_record",
]

#: Where the in-process fake answers (``.invalid`` never resolves: nothing can leave the machine).
SIM_BASE_URL = "https://api.sim.brokersync.invalid/v1"
#: Where ``brokersync-sim serve`` listens by default.
LOCAL_BASE_URL = "http://127.0.0.1:8765/v1"
#: The sim API's documented limits: (max requests, window seconds) per user and for the whole API.
USER_LIMIT = (20, 1.0)
APP_LIMIT = (1000, 1.0)

METADATA = BrokerMetadata(
    key="sim",
    name="Simulated Broker",
    description="A deterministic fake broker for demos and tests: no account, no network.",
    auth_type=AuthType.PASSWORD,
    credential_fields=(
        CredentialField(name="username", label="Username", description="Any name; it selects the user's accounts."),
        CredentialField(name="password", label="Password", secret=True, description="'sim-password' for the fake."),
    ),
    environments={"sim": SIM_BASE_URL, "local": LOCAL_BASE_URL},
    default_environment="sim",
    # The fills account reports executions for the core to pair (the broker's declaration); the
    # other accounts report round trips, which ``get_accounts`` declares per account
    # (``Account.reports``), so an execution from one of them would be refused, not paired.
    capabilities=Capabilities(
        refresh_token=True,
        historical=True,
        max_history_days=None,
        cursor=CursorKind.OPAQUE,
        reports=Reports.EXECUTIONS,
    ),
    rate_limits=(
        RateLimit(max_requests=USER_LIMIT[0], window_seconds=USER_LIMIT[1], scope="account"),
        RateLimit(max_requests=APP_LIMIT[0], window_seconds=APP_LIMIT[1], scope="broker"),
    ),
    retry=RetryPolicy(max_retries=5, initial_delay=0.2, max_delay=5.0, request_timeout=10.0, max_retry_after=30.0),
    docs_url="https://github.com/brokersync/brokersync/blob/main/docs/demo.md",
    plugin_api=">=1,<2",
    # The core attaches the token to every request and renews it when the broker ends a session early.
    token_auth=TokenAuth.bearer(),
)


@hookimpl
def broker_metadata() -> BrokerMetadata:
    """Describe the simulated broker."""
    return METADATA


@hookimpl
async def authenticate(ctx: BrokerContext, credentials: Credentials) -> AuthResult:
    """Log in with username and password; the token expires (``expires_at``) and can be renewed."""
    return await SimClient(ctx).login(credentials["username"], credentials["password"])


@hookimpl
async def refresh_token(ctx: BrokerContext, auth: AuthResult) -> AuthResult | None:
    """Renew the access token with the refresh token; ``None`` makes the core log in again."""
    return await SimClient(ctx).renew(auth)


@hookimpl
async def get_accounts(ctx: BrokerContext, auth: AuthResult) -> list[Account]:
    """List the user's accounts: the fills account reports executions, the others round trips."""
    return [
        Account(
            id=a["id"],
            name=a.get("name"),
            currency=a.get("currency"),
            type=a.get("type"),
            raw=a,
            reports=Reports.EXECUTIONS if a.get("type") == "fills" else Reports.ROUND_TRIPS,
        )
        for a in await SimClient(ctx).accounts(auth)
    ]


@hookimpl
async def get_trades(
    ctx: BrokerContext,
    auth: AuthResult,
    account: Account,
    since: dt.datetime | None,
    cursor: str | None,
) -> AsyncIterator[TradePage]:
    """Stream the account's trades page by page; each page carries the cursor that resumes after it.

    With a ``cursor`` only the trades that changed since then arrive (corrections included); without
    one, ``since`` limits the listing to trades changed at or after that time. A trade the broker
    cancelled (busted) arrives as itself (kept for audit) plus a cancellation in the same page.
    A fills account (``type == "fills"``) reports executions instead, busts likewise.
    """
    if account.type == "fills":
        async for fills, next_cursor in SimClient(ctx).fill_pages(auth, account.id, since=since, cursor=cursor):
            yield TradePage(
                executions=[to_execution(f) for f in fills],
                cursor=next_cursor,
                cancellations=[to_execution_cancellation(f) for f in fills if f.get("status") == "CANCELLED"],
            )
        return
    async for records, next_cursor in SimClient(ctx).trade_pages(auth, account.id, since=since, cursor=cursor):
        yield TradePage(
            records=[to_record(r) for r in records],
            cursor=next_cursor,
            cancellations=[to_cancellation(r) for r in records if r.get("status") == "CANCELLED"],
        )


def to_record(wire: Mapping[str, Any]) -> dict[str, Any]:
    """One sim API trade as a mapping with :class:`brokersync.Trade`'s field names (not validated)."""
    side = wire.get("side")
    return {
        "broker_trade_id": wire.get("id"),
        "account_id": wire.get("account"),
        "symbol": wire.get("instrument"),
        "direction": "long" if side == "BUY" else "short" if side == "SELL" else side,
        "opened_at": wire.get("openedAt"),
        "closed_at": wire.get("closedAt"),
        "entry_price": wire.get("entryPrice"),
        "exit_price": wire.get("exitPrice"),
        "quantity": wire.get("quantity"),
        "realized_pnl": wire.get("realizedPnl"),
        "fees": wire.get("commission"),
        "currency": wire.get("currency"),
        "raw": dict(wire),
    }


def to_execution(wire: Mapping[str, Any]) -> dict[str, Any]:
    """One sim API fill as a mapping with :class:`brokersync.Execution`'s field names (not validated)."""
    return {
        "broker_execution_id": wire.get("id"),
        "account_id": wire.get("account"),
        "instrument": {
            "symbol": wire.get("symbol"),
            "instrument_id": wire.get("instrumentId"),
            "asset_class": wire.get("assetClass"),
            "currency": wire.get("currency"),
            "multiplier": wire.get("multiplier"),
        },
        "side": {"BUY": "buy", "SELL": "sell"}.get(side, side) if isinstance(side := wire.get("side"), str) else side,
        "quantity": wire.get("quantity"),
        "price": wire.get("price"),
        "executed_at": wire.get("executedAt"),
        "fees": wire.get("commission"),
        "order_id": wire.get("orderId"),
        "raw": dict(wire),
    }


def to_execution_cancellation(wire: Mapping[str, Any]) -> dict[str, Any]:
    """Map a busted sim API fill to :class:`brokersync.ExecutionCancellation`'s field names (not validated)."""
    return {
        "broker_execution_id": wire.get("id"),
        "account_id": wire.get("account"),
        "cancelled_at": wire.get("cancelledAt"),
        "reason": wire.get("cancelReason"),
        "raw": {k: wire.get(k) for k in ("id", "account", "status", "cancelledAt", "cancelReason")},
    }


def to_cancellation(wire: Mapping[str, Any]) -> dict[str, Any]:
    """Map a cancelled sim API trade to :class:`brokersync.TradeCancellation`'s field names (not validated)."""
    return {
        "broker_trade_id": wire.get("id"),
        "account_id": wire.get("account"),
        "cancelled_at": wire.get("cancelledAt"),
        "reason": wire.get("cancelReason"),
        "raw": {k: wire.get(k) for k in ("id", "account", "status", "cancelledAt", "cancelReason")},
    }
