"""The ``ibkr`` broker plugin: metadata and hooks over the Flex Web Service.

* :func:`authenticate` checks the credentials' shape, then sends ``SendRequest`` for each query id
  (the cheapest call that proves the token and the queries work) and keeps IB's answers in
  ``ctx.cache`` so the statement is fetched, not requested again, by the hooks that follow.
* :func:`get_accounts` downloads each query's statement and :func:`get_trades` reads it from
  ``ctx.cache``, once per account: connect costs one statement, a sync one statement per query.
* :func:`get_trades` streams the statement's executions for one account (pages of
  :data:`PAGE_SIZE`), then its cancellations; the core pairs executions into round trips and
  dedupes overlapping statements by (account, execution id). Each execution carries IB's
  ``fifoPnlRealized`` as ``Execution.broker_realized_pnl``: the core checks it against the round
  trips it pairs, with the lots it keeps across syncs, and warns on a mismatch
  (``brokersync.pnl_mismatch``; the plugin option ``check_pnl = false`` leaves the figure out). A
  trade row that could not be read is reported with ``ctx.warn`` (:data:`UNREADABLE_ROW`): the user
  sees both in ``SyncResult.warnings`` and ``brokersync sync``.
* :func:`validate_response` is :func:`brokersync_ibkr.client.check_envelope`: IB's error codes
  become brokersync errors inside the core's retry, wherever they arrive.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import attrs
from brokersync import (
    Account,
    AuthResult,
    AuthType,
    BrokerApiError,
    BrokerContext,
    BrokerMetadata,
    Capabilities,
    ConfigurationError,
    CredentialField,
    Credentials,
    CursorKind,
    Execution,
    ExecutionCancellation,
    RateLimit,
    Reports,
    RetryPolicy,
    TradePage,
    hookimpl,
)
from brokersync.files import FileFormat
from brokersync.parsing import zone

# Discovery imports this module for the metadata only: the client, the parser and httpx load with
# the first hook call, so `brokersync plugins` stays fast.
if TYPE_CHECKING:
    import httpx

    from brokersync_ibkr.client import FlexStatus
    from brokersync_ibkr.parse import FlexFormatError

#: Where ``SendRequest`` lives (the AccountManagement host); see :mod:`brokersync_ibkr.client`.
LIVE_BASE_URL = "https://ndcdyn.interactivebrokers.com/AccountManagement/FlexWebService"
#: The statement zone when the times carry no abbreviation (see :mod:`brokersync_ibkr.parse`).
DEFAULT_TIME_ZONE = "America/New_York"

__all__ = [
    "METADATA",
    "PAGE_SIZE",
    "UNREADABLE_ROW",
    "authenticate",
    "broker_metadata",
    "get_accounts",
    "get_trades",
    "query_ids",
    "validate_response",
]

#: Executions per TradePage.
PAGE_SIZE = 1000
#: Activity data refreshes once a day (IB: "not suitable for active polling"); syncing every six
#: hours picks the day's statement up within six hours of IB publishing it, at 2 requests a sync.
MIN_SYNC_INTERVAL = 6 * 3600.0
#: The code of the warning for a trade row of a statement that could not be read.
UNREADABLE_ROW = "ibkr.unreadable_row"
_PREPARED = "ibkr.prepared"
_STATEMENTS = "ibkr.statements"

METADATA = BrokerMetadata(
    key="ibkr",
    name="Interactive Brokers",
    description="Executions from IBKR Flex queries (Activity or Trade Confirmation) via the Flex Web Service.",
    auth_type=AuthType.TOKEN,
    credential_fields=(
        CredentialField(
            name="token",
            label="Flex Web Service token",
            secret=True,
            description="Client Portal > Performance & Reports > Flex Queries > Flex Web Service Configuration.",
        ),
        CredentialField(
            name="query_id",
            label="Flex query id(s)",
            description="The numeric id of an Activity or Trade Confirmation Flex query; several: comma separated.",
        ),
        CredentialField(
            name="time_zone",
            label="Statement time zone",
            required=False,
            default=DEFAULT_TIME_ZONE,
            description="IANA zone of the statement's times when they carry no abbreviation (IB's default: "
            "US/Eastern).",
        ),
    ),
    environments={"live": LIVE_BASE_URL},
    capabilities=Capabilities(
        refresh_token=False,
        historical=True,
        max_history_days=365,
        cursor=CursorKind.NONE,
        reports=Reports.EXECUTIONS,
        min_sync_interval_seconds=MIN_SYNC_INTERVAL,
    ),
    # IB: "one request per second, 10 requests per minute (per token)", both steps counted. A
    # connection holds one token, and the core counts scope="account" limits per connection.
    rate_limits=(
        RateLimit(max_requests=1, window_seconds=1.0, scope="account"),
        RateLimit(max_requests=10, window_seconds=60.0, scope="account"),
    ),
    retry=RetryPolicy(
        max_retries=4, initial_delay=5.0, max_delay=60.0, timeout=600.0, request_timeout=180.0, max_retry_after=120.0
    ),
    docs_url="https://www.ibkrguides.com/clientportal/performanceandstatements/flex3.htm",
    plugin_api=">=1,<2",
)

_QUERY_ID = re.compile(r"^\d{1,20}$")


def query_ids(text: str) -> list[str]:
    """Return the query ids in a credential value (comma, semicolon or space separated), in order, once each.

    Raises:
        ConfigurationError: No id, or one that is not a number.
    """
    ids = [part for part in re.split(r"[,;\s]+", text.strip()) if part]
    bad = [part for part in ids if not _QUERY_ID.match(part)]
    if not ids or bad:
        raise ConfigurationError(
            f"broker 'ibkr': query_id must be one or more numeric Flex query ids, got {', '.join(bad) or 'none'}"
        )
    return list(dict.fromkeys(ids))


def _time_zone(name: str | None) -> str:
    name = (name or DEFAULT_TIME_ZONE).strip()
    try:
        zone(name)
    except ValueError as exc:
        raise ConfigurationError(f"broker 'ibkr': time_zone: {exc}") from None
    return name


@hookimpl
def broker_metadata() -> BrokerMetadata:
    """Describe Interactive Brokers' Flex Web Service."""
    return METADATA


@hookimpl
def validate_response(response: httpx.Response) -> None:
    """Raise the brokersync error matching a Flex error code (see :func:`~brokersync_ibkr.client.check_envelope`)."""
    from brokersync_ibkr.client import check_envelope

    check_envelope(response)


@hookimpl
async def authenticate(ctx: BrokerContext, credentials: Credentials) -> AuthResult:
    """Prove the token and every query id with ``SendRequest``; the token is static (no expiry known)."""
    from brokersync_ibkr.client import FlexClient

    ids = query_ids(credentials["query_id"])
    time_zone = _time_zone(credentials.get("time_zone") or ctx.options.get("time_zone"))
    client = FlexClient(ctx, credentials["token"])
    prepared: dict[str, FlexStatus] = ctx.cache.setdefault(_PREPARED, {})
    for query_id in ids:
        prepared[query_id] = await client.send_request(query_id)
    return AuthResult(
        access_token=credentials["token"],
        expires_at=None,
        state={"query_ids": ids, "time_zone": time_zone},
    )


def _settings(ctx: BrokerContext, auth: AuthResult) -> tuple[list[str], str, float]:
    ids = auth.state.get("query_ids")
    if not isinstance(ids, list) or not ids:
        raise ConfigurationError("broker 'ibkr': the connection has no Flex query id; reconnect it")
    time_zone = _time_zone(auth.state.get("time_zone") or ctx.options.get("time_zone"))
    max_wait = float(ctx.options.get("max_statement_wait", 300.0))
    return [str(i) for i in ids], time_zone, max_wait


async def _statement(
    ctx: BrokerContext, auth: AuthResult, query_id: str, max_wait: float, *, account: str | None = None
) -> bytes:
    """Return the statement of ``query_id``: downloaded by ``get_accounts``, read once per account.

    ``get_accounts`` always downloads (a listing is a fresh look); ``get_trades`` reads what it
    left in ``ctx.cache`` (so a sync run downloads each statement once), unless this account was
    already read from it: then a later pass over the accounts gets a fresh statement.
    """
    from brokersync_ibkr.client import FlexClient

    statements: dict[str, tuple[bytes, set[str]]] = ctx.cache.setdefault(_STATEMENTS, {})
    cached = statements.get(query_id)
    if account is not None and cached is not None and account not in cached[1]:
        cached[1].add(account)
        return cached[0]
    prepared: dict[str, FlexStatus] = ctx.cache.setdefault(_PREPARED, {})
    client = FlexClient(ctx, auth.access_token, max_wait=max_wait)
    statements.pop(query_id, None)  # never hold two statements of one query
    content = await client.download(query_id, prepared.pop(query_id, None))
    statements[query_id] = (content, {account} if account is not None else set())
    return content


def _unreadable(query_id: str, exc: FlexFormatError) -> BrokerApiError:
    return BrokerApiError(f"broker 'ibkr': the statement of Flex query {query_id} is unreadable: {exc}", broker="ibkr")


@hookimpl
async def get_accounts(ctx: BrokerContext, auth: AuthResult) -> list[Account]:
    """List the accounts of every query's statement (a multi-account query lists several)."""
    from brokersync_ibkr.parse import FlexFormatError, iter_statement

    ids, time_zone, max_wait = _settings(ctx, auth)
    accounts: dict[str, Account] = {}
    for query_id in ids:
        content = await _statement(ctx, auth, query_id, max_wait)
        try:
            for item in iter_statement(content, tz=time_zone, accounts_only=True):
                if isinstance(item, Account):
                    accounts.setdefault(item.id, item)
        except FlexFormatError as exc:
            raise _unreadable(query_id, exc) from None
    return list(accounts.values())


@hookimpl
async def get_trades(
    ctx: BrokerContext, auth: AuthResult, account: Account, since: dt.datetime | None, cursor: str | None
) -> AsyncIterator[TradePage]:
    """Stream the account's executions and cancellations from every query's statement.

    ``since`` and ``cursor`` are not sent to IB: the query's own period decides what a statement
    covers (overriding it is unreliable), and the core dedupes the overlap. So no page has a cursor
    (``CursorKind.NONE``: a cursor nothing can resume from would make the core fetch again forever);
    the end of the period covered and the last transaction id seen are logged instead.

    A ``TradeCorrect`` row reports the execution it corrects again, under the same id: within one
    fetch each execution id appears once, with its last (corrected) values, in first-seen order.
    """
    from brokersync_ibkr.parse import FlexFormatError, RowError, StatementInfo, iter_statement

    ids, time_zone, max_wait = _settings(ctx, auth)
    period_end: dt.date | None = None
    last_transaction: int | None = None
    executions: dict[str, Execution] = {}
    cancellations: list[ExecutionCancellation] = []
    check = bool(ctx.options.get("check_pnl", True))  # False: the core does not check IB's P&L
    for query_id in ids:
        content = await _statement(ctx, auth, query_id, max_wait, account=account.id)
        try:
            for item in iter_statement(content, tz=time_zone, account_id=account.id):
                if isinstance(item, Execution | ExecutionCancellation):
                    transaction = str(item.raw.get("transactionID", ""))
                    if transaction.isdigit():
                        number = int(transaction)
                        last_transaction = number if last_transaction is None else max(last_transaction, number)
                if isinstance(item, Execution):
                    if not check and item.broker_realized_pnl is not None:
                        item = attrs.evolve(item, broker_realized_pnl=None)
                    executions[item.broker_execution_id] = item
                elif isinstance(item, ExecutionCancellation):
                    cancellations.append(item)
                elif isinstance(item, StatementInfo) and item.to_date is not None:
                    period_end = max(period_end, item.to_date) if period_end else item.to_date
                elif isinstance(item, RowError):
                    ctx.warn(
                        f"trade row {item.row} of the statement of Flex query {query_id} was not read: {item.reason}",
                        account_id=item.account_id,
                        record_id=item.key,
                        code=UNREADABLE_ROW,
                    )
        except FlexFormatError as exc:
            raise _unreadable(query_id, exc) from None
    ctx.logger.info(
        "IB statements of account {account}: period end {period_end}, last transaction {last_transaction}",
        account=account.id,
        period_end=period_end.isoformat() if period_end is not None else None,
        last_transaction=last_transaction,
    )
    found = list(executions.values())
    pages = [found[start : start + PAGE_SIZE] for start in range(0, len(found), PAGE_SIZE)] or [[]]
    for page in pages[:-1]:
        yield TradePage(executions=page)
    yield TradePage(executions=pages[-1], cancellations=cancellations)


@hookimpl
def file_formats() -> list[FileFormat]:
    """Return the export files ``brokersync import`` reads for this broker."""
    from brokersync_ibkr.formats import ACTIVITY_CSV, FLEX_XML

    return [FLEX_XML, ACTIVITY_CSV]
