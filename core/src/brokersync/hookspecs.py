"""The broker plugin contract: the hooks a broker plugin implements.

A broker plugin is a module, class or object with functions marked ``@brokersync.hookimpl`` whose
names are the hooks below. It is found through the entry point group ``brokersync.brokers``
(entry point name = broker key). The core gives each broker its own pluggy ``PluginManager``, so a
call reaches exactly that broker's implementation, and pluggy checks hook names and arguments
when the plugin is registered.

Rules (see ``docs/hooks.md`` and ``docs/adr/0001-plugin-contract.md``):

* An implementation may accept any subset of a hook's arguments, by name. New arguments may be
  added to a hook in later versions; none is ever renamed or removed within a major plugin API.
* I/O hooks may be ``async def`` (preferred) or plain functions; the core awaits whatever they
  return. ``get_trades`` may also be an async generator that yields :class:`~brokersync.TradePage`
  objects, so large histories stream in batches.
* Every HTTP request goes through ``ctx.http``, the core's client, which applies rate limits,
  retries, the circuit breaker, timeouts and error mapping. A plugin never builds its own client.
* Raise :mod:`brokersync.errors` exceptions: ``BrokerAuthError`` for rejected credentials,
  ``BrokerRateLimitError(retry_after=...)`` for broker-specific throttling signals, and so on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from brokersync._context import BrokerContext
    from brokersync.models import Account, AuthResult, BrokerMetadata, Credentials

__all__ = [
    "PROJECT_NAME",
    "authenticate",
    "broker_metadata",
    "get_accounts",
    "get_trades",
    "hookimpl",
    "hookspec",
    "refresh_token",
    "validate_response",
]

PROJECT_NAME = "brokersync"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

#: Hooks every broker plugin must implement.
REQUIRED_HOOKS = ("broker_metadata", "authenticate", "get_accounts", "get_trades")
#: Hooks a broker plugin may implement.
OPTIONAL_HOOKS = ("refresh_token", "validate_response")

TradesResult = (
    "AsyncIterator[TradePage] | Awaitable[Sequence[Trade | Mapping[str, Any]] | TradePage]"
    " | Sequence[Trade | Mapping[str, Any]] | TradePage"
)


@hookspec(firstresult=True)
def broker_metadata() -> BrokerMetadata:  # type: ignore[empty-body]
    """Describe the broker: name, credential schema, environments, capabilities, limits.

    Called once when the plugin is loaded; must not do I/O.

    Returns:
        The broker's :class:`~brokersync.BrokerMetadata`. Its ``key`` must equal the entry point name.
    """


@hookspec(firstresult=True)
def authenticate(ctx: BrokerContext, credentials: Credentials) -> Awaitable[AuthResult] | AuthResult:  # type: ignore[empty-body]
    """Exchange credentials for an access token, or check a static token.

    The core has already validated ``credentials`` against the metadata's credential schema.
    Brokers with a static token (no auth exchange) return it as ``access_token`` with
    ``expires_at=None`` after a cheap call that proves it works.

    Args:
        ctx: The core's context: environment, base URL, options, ``http`` client, clock and sleep.
        credentials: The connection's credential values (secret fields are masked in repr).

    Returns:
        An :class:`~brokersync.AuthResult` with a tz-aware ``expires_at`` (or ``None``).

    Raises:
        BrokerAuthError: The broker rejected the credentials. Never retried.
    """


@hookspec(firstresult=True)
def refresh_token(
    ctx: BrokerContext, credentials: Credentials, auth: AuthResult
) -> Awaitable[AuthResult | None] | AuthResult | None:
    """Renew ``auth`` before it expires. Optional.

    The core calls it (one refresh at a time per connection) when the token is close to expiry and
    persists the result. Return ``None`` when renewal is impossible: the core then calls
    ``authenticate`` again.

    Args:
        ctx: The core's context.
        credentials: The connection's credential values.
        auth: The current token.

    Returns:
        The new :class:`~brokersync.AuthResult`, or ``None``.
    """


@hookspec(firstresult=True)
def get_accounts(ctx: BrokerContext, auth: AuthResult) -> Awaitable[Sequence[Account]] | Sequence[Account]:  # type: ignore[empty-body]
    """List the accounts the token gives access to.

    Args:
        ctx: The core's context. ``ctx.cache`` lives for one sync run and may keep data that
            ``get_trades`` reuses (e.g. a statement that lists accounts and trades together).
        auth: The current token.

    Returns:
        The broker's :class:`~brokersync.Account` objects.
    """


@hookspec(firstresult=True)
def get_trades(
    ctx: BrokerContext,
    auth: AuthResult,
    account: Account,
    since: dt.datetime | None,
    cursor: str | None,
) -> Any:
    """Fetch the account's round-trip trades, newest state of each.

    Args:
        ctx: The core's context.
        auth: The current token.
        account: The account to fetch trades for.
        since: Fetch trades closed (or changed) at or after this tz-aware UTC time; ``None`` means
            all history the broker offers. The core already applies its lookback window.
        cursor: The opaque cursor this plugin returned at the end of the last successful sync
            (``TradePage.cursor``), exactly as returned; ``None`` on the first sync.

    Returns:
        An async iterator of :class:`~brokersync.TradePage` (preferred for large histories: the
        core stores each page as it arrives), or a ``TradePage``, or a sequence of trades. Records
        may be :class:`~brokersync.Trade` objects or mappings with the same field names; invalid
        records are reported and skipped by the core. A trade the broker cancelled (busted) goes in
        ``TradePage.cancellations`` as a :class:`~brokersync.TradeCancellation`: the core keeps a
        tombstone and leaves the trade out of listings, whether the trade came before, in the same
        page, or never.
    """


@hookspec(firstresult=True)
def validate_response(ctx: BrokerContext, response: Any) -> None:
    """Turn a broker-specific error that arrives as a normal response into an exception. Optional.

    Called by the core client for every response before it is returned to the plugin, so the
    core's retry and rate limiting apply to what the plugin raises here. An error status (400 and
    above) reaches it first too: raise a more precise error from the body, or return and the
    core maps the status. Example: Tradovate's
    penalty ticket (HTTP 200 with ``p-time``) becomes ``BrokerRateLimitError(retry_after=p_time)``.

    Args:
        ctx: The core's context.
        response: The ``httpx.Response`` (body already read).

    Raises:
        BrokerError: Any subclass; the core treats it like the matching HTTP failure.
    """
