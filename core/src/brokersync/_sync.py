"""One sync run of one connection: token, accounts, then every account's trades in batches.

The engine (``_engine.py``) owns the run's bookkeeping (lease, audit row, connection status); this
module does the work between "lease taken" and "lease released".

Per account, batches are written with a one-batch look-ahead: every batch is stored in its own
transaction together with the plugin's cursor for that page, and the LAST batch is stored in the
same transaction as the account's new watermark. A run that dies half-way therefore leaves the
watermark where it was, and the next run fetches again from there (the upsert skips what is
already stored).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import attrs

from brokersync._broker import Broker, TradeBatch, await_me_maybe
from brokersync._reauth import renew_token
from brokersync._results import SyncProgress, SyncRecordError
from brokersync._store import AccountInfo, Store, SyncTrigger, UpsertCounts
from brokersync.errors import BrokerAuthError
from brokersync.models import Account, AuthResult, Credentials

__all__ = ["ProgressCallback", "SyncJob", "TokenKeeper", "auth_from_json", "auth_to_json"]

ProgressCallback = Callable[[SyncProgress], Awaitable[None] | None]
Clock = Callable[[], dt.datetime]


def auth_to_json(auth: AuthResult) -> dict[str, Any]:
    """The token as a JSON-able mapping (encrypted by the vault before it is stored)."""
    return {
        "access_token": auth.access_token,
        "refresh_token": auth.refresh_token,
        "expires_at": auth.expires_at.isoformat() if auth.expires_at else None,
        "state": dict(auth.state),
    }


def auth_from_json(data: Mapping[str, Any]) -> AuthResult:
    """The inverse of :func:`auth_to_json`."""
    expires = data.get("expires_at")
    return AuthResult(
        access_token=data["access_token"],
        refresh_token=data.get("refresh_token"),
        expires_at=dt.datetime.fromisoformat(expires) if expires else None,
        state=data.get("state") or {},
    )


SaveToken = Callable[[AuthResult], Awaitable[None]]


class TokenKeeper:
    """Hands out a valid token for one connection: cached, refreshed before expiry, or re-issued.

    One refresh at a time per connection: callers share ``lock`` (the engine keeps one per
    connection), and across processes the sync lease already serializes runs.
    """

    def __init__(
        self,
        *,
        broker: Broker,
        credentials: Credentials,
        cached: AuthResult | None,
        save: SaveToken,
        lock: asyncio.Lock,
        margin: dt.timedelta,
        clock: Clock,
    ) -> None:
        self._broker = broker
        self._credentials = credentials
        self._auth = cached
        self._save = save
        self._lock = lock
        self._margin = margin
        self._clock = clock
        # A 401 in the middle of a hook renews through here (see brokersync._reauth).
        broker.token_session.renewer = self.renew_rejected

    async def token(self) -> AuthResult:
        """A token that is not about to expire."""
        async with self._lock:
            auth = self._auth
            if auth is not None and not auth.expires_within(self._margin, now=self._clock()):
                return auth
            new: AuthResult | None = None
            if auth is not None:
                try:
                    new = await self._broker.refresh_token(self._credentials, auth)
                except BrokerAuthError:
                    new = None  # the refresh token was refused: fall back to the credentials
            if new is None:
                new = await self._broker.authenticate(self._credentials)
            await self._save(new)
            self._auth = new
            return new

    async def renew_rejected(self, rejected: AuthResult) -> AuthResult:
        """Renew a token the broker rejected with 401: refresh it, else log in again; store it.

        Raises:
            BrokerAuthError: The login from the stored credentials was refused too.
        """
        async with self._lock:
            if self._auth is not None and self._auth.access_token != rejected.access_token:
                return self._auth  # another task already replaced it
            new = await renew_token(self._broker, self._credentials, rejected)
            await self._save(new)
            self._auth = new
            return new

    async def reissue(self, rejected: AuthResult) -> AuthResult:
        """Authenticate again after the broker rejected ``rejected`` (e.g. revoked early)."""
        async with self._lock:
            if self._auth is not None and self._auth is not rejected:
                return self._auth  # another task already replaced it
            new = await self._broker.authenticate(self._credentials)
            await self._save(new)
            self._auth = new
            return new


@attrs.define
class _Totals:
    counts: UpsertCounts = UpsertCounts()
    cancelled: int = 0
    batches: int = 0
    error_count: int = 0
    errors: list[SyncRecordError] = attrs.Factory(list)


@attrs.frozen(kw_only=True)
class JobOutcome:
    """What a finished job counted."""

    counts: UpsertCounts
    cancelled: int
    errors: tuple[SyncRecordError, ...]
    error_count: int
    accounts: int


class SyncJob:
    """Fetch and store the trades of every account of one connection."""

    def __init__(
        self,
        *,
        store: Store,
        broker: Broker,
        tokens: TokenKeeper,
        connection_id: str,
        trigger: SyncTrigger,
        since: dt.datetime | None,
        started_at: dt.datetime,
        lookback: dt.timedelta,
        settle: dt.timedelta,
        lease: tuple[str, dt.timedelta],
        clock: Clock,
        on_progress: ProgressCallback | None,
        max_record_errors: int,
    ) -> None:
        self._store = store
        self._broker = broker
        self._tokens = tokens
        self._connection_id = connection_id
        self._trigger = trigger
        self._since = since
        self._started_at = started_at
        self._lookback = lookback
        self._settle = settle
        self._holder, self._ttl = lease
        self._clock = clock
        self._on_progress = on_progress
        self._max_errors = max_record_errors
        self._totals = _Totals()

    async def run(self) -> JobOutcome:
        """Sync every account; raise on the first failure (what was stored stays stored)."""
        auth = await self._tokens.token()
        try:
            account_list = await self._broker.get_accounts(auth)
        except BrokerAuthError:
            auth = await self._tokens.reissue(auth)
            account_list = await self._broker.get_accounts(auth)
        stored = await self._store.sync_accounts(self._connection_id, account_list, self._clock())
        positions = {a.account_id: a for a in stored}
        for account in account_list:
            await self._sync_account(account, positions.get(account.id))
        totals = self._totals
        return JobOutcome(
            counts=totals.counts,
            cancelled=totals.cancelled,
            errors=tuple(totals.errors),
            error_count=totals.error_count,
            accounts=len(account_list),
        )

    def _window(self, position: AccountInfo | None) -> tuple[dt.datetime | None, str | None]:
        if self._trigger is SyncTrigger.SCHEDULED and position is not None:
            since = position.watermark - self._lookback if position.watermark is not None else None
            return since, position.cursor
        return self._since, None

    def _next_watermark(self, since: dt.datetime | None, position: AccountInfo | None) -> dt.datetime | None:
        old = position.watermark if position is not None else None
        # The watermark says "everything up to here is stored". A run covering [since, now] only
        # extends that if it starts at or before the old watermark (or covers all history).
        if since is not None and (old is None or since > old):
            return None
        safe = self._started_at - self._settle
        return max(old, safe) if old is not None else safe

    async def _batches(
        self, account: Account, since: dt.datetime | None, cursor: str | None
    ) -> AsyncIterator[TradeBatch]:
        auth = await self._tokens.token()
        async for batch in self._broker.iter_trades(auth, account, since=since, cursor=cursor):
            yield batch

    async def _sync_account(self, account: Account, position: AccountInfo | None) -> None:
        since, cursor = self._window(position)
        watermark = self._next_watermark(since, position)
        pending: TradeBatch | None = None
        async for batch in self._batches(account, since, cursor):
            if pending is not None:
                await self._store_batch(account, pending, watermark=None)
            pending = batch
        await self._store_batch(account, pending or TradeBatch(trades=()), watermark=watermark)

    async def _store_batch(self, account: Account, batch: TradeBatch, *, watermark: dt.datetime | None) -> None:
        now = self._clock()
        counts = await self._store.store_batch(
            connection_id=self._connection_id,
            account_id=account.id,
            batch=batch.trades,
            now=now,
            cursor=batch.cursor,
            watermark=watermark,
            lease=(self._holder, now + self._ttl),
            cancellations=batch.cancellations,
        )
        totals = self._totals
        totals.counts = totals.counts + counts
        totals.cancelled += counts.cancelled
        totals.batches += 1
        totals.error_count += len(batch.errors)
        for error in batch.errors:
            if len(totals.errors) < self._max_errors:
                totals.errors.append(
                    SyncRecordError(account_id=account.id, broker_trade_id=error.broker_trade_id, reason=error.reason)
                )
        if self._on_progress is not None:
            await await_me_maybe(
                self._on_progress(
                    SyncProgress(
                        connection_id=self._connection_id,
                        account_id=account.id,
                        batches=totals.batches,
                        imported=totals.counts.imported,
                        skipped=totals.counts.skipped,
                        updated=totals.counts.updated,
                        errors=totals.error_count,
                        cancelled=totals.cancelled,
                    )
                )
            )
