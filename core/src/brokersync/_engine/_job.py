"""The work of one sync run: token, accounts, then every account's trades in batches, into the store.

``_start`` took the lease and ``_finish`` records the outcome; this module does the work between
"lease taken" and "lease released".

Per account, batches are written with a one-batch look-ahead: every batch is stored in its own
transaction together with the plugin's cursor for that page, and the LAST batch is stored in the
same transaction as the account's new watermark. A run that dies half-way therefore leaves the
watermark where it was, and the next run fetches again from there (the upsert skips what is
already stored).
"""

from __future__ import annotations

import datetime as dt

import attrs

from brokersync._broker import Broker, TradeBatch, await_me_maybe
from brokersync._clocks import WallClock
from brokersync._config import EngineSettings
from brokersync._engine._context import RunContext
from brokersync._engine._execution_batches import execution_kwargs
from brokersync._engine._tokens import TokenKeeper
from brokersync._store import Store, UpsertCounts
from brokersync.errors import BrokerAuthError
from brokersync.models import Account
from brokersync.results import (
    MAX_WARNINGS,
    AccountInfo,
    ConnectionStatus,
    SyncProgress,
    SyncRecordError,
    SyncTrigger,
    SyncWarning,
)

__all__ = ["JobOutcome", "SyncJob"]


@attrs.define
class _Totals:
    counts: UpsertCounts = UpsertCounts()
    cancelled: int = 0
    batches: int = 0
    error_count: int = 0
    errors: list[SyncRecordError] = attrs.Factory(list)
    warnings: list[SyncWarning] = attrs.Factory(list)
    warning_count: int = 0


@attrs.frozen(kw_only=True)
class JobOutcome:
    """What a finished job counted."""

    counts: UpsertCounts
    cancelled: int
    errors: tuple[SyncRecordError, ...]
    error_count: int
    accounts: int
    warnings: tuple[SyncWarning, ...] = ()
    warning_count: int = 0


class SyncJob:
    """Fetch and store the trades of every account of one connection."""

    def __init__(
        self,
        *,
        store: Store,
        broker: Broker,
        tokens: TokenKeeper,
        ctx: RunContext,
        settings: EngineSettings,
        holder: str,
        clock: WallClock,
    ) -> None:
        self._store = store
        self._broker = broker
        self._tokens = tokens
        self._connection_id = ctx.connection_id
        self._row = ctx.row
        self._trigger = ctx.trigger
        self._since = ctx.since
        self._started_at = ctx.started_at
        self._lookback = settings.lookback
        self._settle = settings.settle
        self._holder = holder
        self._ttl = settings.lease_ttl
        self._clock = clock
        self._on_progress = ctx.on_progress
        self._max_errors = settings.max_record_errors
        self._totals = _Totals()
        self._accounts = 0
        self._account: str | None = None  # the account whose trades are being fetched

    def warn(self, warning: SyncWarning) -> None:
        """Keep a warning of the run (the plugin's ``ctx.warn`` delivers here): the first
        :data:`~brokersync.results.MAX_WARNINGS`, the rest counted.

        A warning without an account, reported while an account's trades are fetched, concerns that account.
        """
        totals = self._totals
        totals.warning_count += 1
        if len(totals.warnings) >= MAX_WARNINGS:
            return
        if warning.account_id is None and self._account is not None:
            warning = attrs.evolve(warning, account_id=self._account)
        totals.warnings.append(warning)

    def progress(self) -> JobOutcome:
        """What the job has committed so far (an interrupted or failed run records these counts)."""
        totals = self._totals
        return JobOutcome(
            counts=totals.counts,
            cancelled=totals.cancelled,
            errors=tuple(totals.errors),
            error_count=totals.error_count,
            accounts=self._accounts,
            warnings=tuple(totals.warnings),
            warning_count=totals.warning_count,
        )

    async def run(self) -> JobOutcome:
        """Sync every account; raise on the first failure (what was stored stays stored)."""
        auth = await self._tokens.token()
        try:
            account_list = await self._broker.get_accounts(auth)
        except BrokerAuthError:
            auth = await self._tokens.reissue(auth)
            account_list = await self._broker.get_accounts(auth)
        self._accounts = len(account_list)
        account_list = await self._own_accounts(account_list)
        stored = await self._store.sync_accounts(self._connection_id, account_list, self._clock())
        positions = {a.account_id: a for a in stored}
        for account in account_list:
            self._account = account.id
            try:
                await self._sync_account(account, positions.get(account.id))
            finally:
                self._account = None
        return self.progress()

    async def _own_accounts(self, account_list: list[Account]) -> list[Account]:
        """The accounts this connection owns; another active connection's are reported, not synced.

        A broker account's identity is (user, broker, environment, account id): a login connected
        twice, or an account the broker added to a second login, would store every trade twice.
        """
        row = self._row
        owners = await self._store.account_owners(
            user_id=row.user_id,
            broker=row.broker,
            environment=row.environment,
            account_ids=[a.id for a in account_list],
            status=ConnectionStatus.ACTIVE,
            including=self._connection_id,
        )
        mine = []
        for account in account_list:
            owner = owners.get(account.id, self._connection_id)
            if owner == self._connection_id:
                mine.append(account)
                continue
            self._totals.error_count += 1
            self._totals.errors.append(
                SyncRecordError(
                    account_id=account.id,
                    broker_trade_id=None,
                    reason=(
                        f"broker account {account.id} is already synced by connection {owner} of this user; "
                        f"connection {self._connection_id} stored none of its trades (disconnect one of the two)"
                    ),
                )
            )
        return mine

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

    async def _sync_account(self, account: Account, position: AccountInfo | None) -> None:
        since, cursor = self._window(position)
        watermark = self._next_watermark(since, position)
        pending: TradeBatch | None = None
        relogged = False
        while True:
            auth = await self._tokens.token()
            try:
                async for batch in self._broker.iter_trades(auth, account, since=since, cursor=cursor):
                    if pending is not None:
                        await self._store_batch(account, pending, watermark=None)
                        cursor = pending.cursor or cursor
                    pending = batch
                break
            except BrokerAuthError:
                # The token was refused between pages (revoked, or a refresh token the broker
                # refused): log in once with the stored credentials and resume after the last
                # page received. Only a refused login (raised by reissue) is a credentials problem.
                if relogged:
                    raise
                relogged = True
                await self._tokens.reissue(auth)
                if pending is not None:
                    await self._store_batch(account, pending, watermark=None)
                    cursor = pending.cursor or cursor
                    pending = None
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
            **execution_kwargs(self._broker.metadata.capabilities, batch),
        )
        # what pairing found (a broker's P&L the round trips disagree with) takes the plugin's ctx.warn
        # path, now that the page is stored: redacted, logged, and kept by :meth:`warn`
        for warning in counts.warnings:
            self._broker.context.warn(
                warning.message, account_id=warning.account_id, record_id=warning.record_id, code=warning.code
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
