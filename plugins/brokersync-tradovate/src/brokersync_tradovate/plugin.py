"""The ``tradovate`` broker plugin: metadata and the hook implementations.

* :func:`broker_metadata`: environments ``live`` and ``demo``, the credential schema (user name,
  password, API key id ``cid`` and secret ``sec``, app id/version, an optional device id),
  Tradovate's per-user rate limits with the much stricter ``auth`` class, and capabilities:
  round trips the broker paired (``fillPair``) with the fills behind them, open positions, an
  opaque cursor, token renewal.
* :func:`authenticate` / :func:`refresh_token`: ``accesstokenrequest`` (penalty tickets honoured)
  and ``renewaccesstoken``; the core caches the token, so a sync never logs in again while the
  session can be renewed (each login opens a new Tradovate session and may end the user's own).
* :func:`get_accounts` / :func:`get_trades`: ``account/list``; one page per account built by
  :func:`brokersync_tradovate.parse.build_page` from entities read in batches.
* :func:`validate_response`: Tradovate's 429 without ``Retry-After`` is an hour-long lockout of
  the user; 423 is the warning before it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from brokersync import (
    Account,
    AuthResult,
    AuthType,
    BrokerContext,
    BrokerMetadata,
    BrokerRateLimitError,
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
from brokersync.files import FileFormat

from brokersync_tradovate.parse import Cursor, build_page

if TYPE_CHECKING:
    from brokersync_tradovate.client import TradovateClient

__all__ = [
    "BROKER",
    "DEMO_BASE_URL",
    "LIVE_BASE_URL",
    "LOCKOUT_SECONDS",
    "METADATA",
    "WARNING_PAUSE_SECONDS",
    "authenticate",
    "broker_metadata",
    "get_accounts",
    "get_trades",
    "refresh_token",
    "validate_response",
]

BROKER = "tradovate"
LIVE_BASE_URL = "https://live.tradovateapi.com/v1"
DEMO_BASE_URL = "https://demo.tradovateapi.com/v1"
#: How long Tradovate keeps a user locked out after a 429.
LOCKOUT_SECONDS = 3600.0
#: After a 423 ("about to be locked out"), this user's requests pause this long.
WARNING_PAUSE_SECONDS = 900.0

METADATA = BrokerMetadata(
    key=BROKER,
    name="Tradovate",
    description="Tradovate futures accounts (also NinjaTrader brokerage): round trips, fills, positions, busts.",
    auth_type=AuthType.PASSWORD,
    credential_fields=(
        CredentialField(name="username", label="User name", description="Your Tradovate (Trader) user name."),
        CredentialField(name="password", label="Password", secret=True, description="Your Tradovate password."),
        CredentialField(name="cid", label="API key id (cid)", description="The id of the API key you generated."),
        CredentialField(name="sec", label="API secret (sec)", secret=True, description="The API key's secret."),
        CredentialField(
            name="app_id",
            label="App id",
            required=False,
            default="brokersync",
            description="The application name Tradovate shows in Trader.",
        ),
        CredentialField(name="app_version", label="App version", required=False, default="1.0"),
        CredentialField(
            name="device_id",
            label="Device id",
            required=False,
            description="A stable id of this installation (up to 64 characters); derived from the user name and "
            "API key id when empty.",
        ),
    ),
    environments={"live": LIVE_BASE_URL, "demo": DEMO_BASE_URL},
    default_environment="live",
    capabilities=Capabilities(
        refresh_token=True,
        historical=True,
        max_history_days=None,
        cursor=CursorKind.OPAQUE,
        reports=Reports.BOTH,
        positions=True,
    ),
    rate_limits=(
        # Tradovate counts per user; every request names the user's key (scope "account").
        RateLimit(max_requests=5000, window_seconds=3600, scope="account"),
        RateLimit(max_requests=5000, window_seconds=60, scope="account"),
        RateLimit(max_requests=1000, window_seconds=1, scope="account"),
        RateLimit(max_requests=10, window_seconds=60, scope="account", name="auth"),
        RateLimit(max_requests=200, window_seconds=60, scope="account", name="reporting"),
    ),
    retry=RetryPolicy(max_retries=4, initial_delay=1.0, max_delay=30.0, request_timeout=30.0, max_retry_after=120.0),
    docs_url="https://partner.tradovate.com/api/rest-api-endpoints",
    plugin_api=">=1,<2",
)


def _client(ctx: BrokerContext) -> TradovateClient:
    # Imported on first use: discovering plugins (``brokersync plugins``) must not load httpx.
    from brokersync_tradovate.client import TradovateClient

    return TradovateClient(ctx)


@hookimpl
def broker_metadata() -> BrokerMetadata:
    """Describe Tradovate."""
    return METADATA


@hookimpl
async def authenticate(ctx: BrokerContext, credentials: Credentials) -> AuthResult:
    """Log in with ``accesstokenrequest`` (waiting out penalty tickets); the token carries its expiry."""
    return await _client(ctx).login(credentials)


@hookimpl
async def refresh_token(ctx: BrokerContext, credentials: Credentials, auth: AuthResult) -> AuthResult | None:
    """Extend the session with ``renewaccesstoken``; ``None`` (log in again) once it has expired."""
    if auth.expires_at is not None and auth.expires_at <= ctx.now():
        return None
    return await _client(ctx).renew(auth)


@hookimpl
async def get_accounts(ctx: BrokerContext, auth: AuthResult) -> list[Account]:
    """``account/list``: the integer entity id is the account id, ``DEMO…``/``LIVE…`` its name."""
    return [
        Account(id=str(a["id"]), name=a.get("name"), type=a.get("accountType"), raw=a)
        for a in await _client(ctx).accounts(auth)
        if not a.get("archived")
    ]


@hookimpl
async def get_trades(
    ctx: BrokerContext,
    auth: AuthResult,
    account: Account,
    since: dt.datetime | None,
    cursor: str | None,
) -> AsyncIterator[TradePage]:
    """One page per account: new round trips and fills since ``cursor``, busts, corrections, positions.

    ``since`` is not used: Tradovate's listings have no time filter, and how far back they reach is
    the broker's choice (see the docs); the cursor keeps the sync incremental.
    """
    client = _client(ctx)
    data = await client.account_data(auth, account.id)
    problems: list[str] = []
    page = build_page(
        account_id=account.id,
        positions=data.positions,
        pairs=data.pairs,
        account_fills=data.fill_ids,
        reports=data.reports,
        catalog=data.catalog,
        cursor=Cursor.decode(cursor),
        problems=problems,
    )
    for problem in problems:
        ctx.logger.warning("tradovate account {account}: {problem}", account=account.id, problem=problem)
    yield page


@hookimpl
def validate_response(ctx: BrokerContext, response: Any) -> None:
    """Tradovate's lockout statuses, which the core's generic mapping cannot know.

    * 429 without ``Retry-After``: the user is locked out for an hour (every request counts, so
      retrying only extends it): :class:`~brokersync.BrokerRateLimitError` with
      ``retry_after=3600``; the core pauses this user's key in every process and the sync stops.
    * 423: Tradovate warns that the lockout is near: stop and pause this user's key for 15 minutes.
    """
    status = getattr(response, "status_code", None)
    if status == 429 and not response.headers.get("Retry-After"):
        raise BrokerRateLimitError(
            "broker 'tradovate': Tradovate locked this user out for an hour (HTTP 429: too many requests in the "
            "last hour). brokersync sends nothing for this user until then; the next sync after that continues.",
            broker=BROKER,
            status_code=429,
            retry_after=LOCKOUT_SECONDS,
        )
    if status == 423:
        ctx.logger.warning("Tradovate warns (HTTP 423) that this user is about to be locked out for an hour")
        raise BrokerRateLimitError(
            "broker 'tradovate': Tradovate warns that this user is about to be locked out for an hour (HTTP 423); "
            f"brokersync pauses this user's requests for {WARNING_PAUSE_SECONDS / 60:.0f} minutes.",
            broker=BROKER,
            status_code=423,
            retry_after=WARNING_PAUSE_SECONDS,
        )


@hookimpl
def file_formats() -> list[FileFormat]:
    """Return the export files ``brokersync import`` reads for this broker."""
    from brokersync_tradovate.formats import ORDERS_CSV, PERFORMANCE_CSV, POSITION_HISTORY_CSV

    return [POSITION_HISTORY_CSV, PERFORMANCE_CSV, ORDERS_CSV]
