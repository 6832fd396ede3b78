"""The broker facade: the one way the core (and integrators) call a broker plugin.

It builds the hook context, calls the plugin's hooks through its own pluggy manager, awaits
whatever they return (coroutines, plain values, async generators), checks the results against the
contract, normalizes trade records one by one, and traces hook calls when
``BROKERSYNC_TRACE_PLUGINS=1``.
"""

from __future__ import annotations

import datetime as dt
import inspect
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from brokersync._clocks import WallClock
from brokersync._context import BrokerContext, HttpClient
from brokersync._converters import normalize_trade, wire_converter
from brokersync._log import get_logger
from brokersync._normalize_executions import normalize_any_cancellation, normalize_execution, normalize_position
from brokersync._reauth import TokenSession, token_call
from brokersync.errors import BrokerError, PluginContractError, RecordValidationError
from brokersync.models import (
    Account,
    AuthResult,
    BrokerMetadata,
    Execution,
    ExecutionCancellation,
    Position,
    Reports,
    Trade,
    TradeCancellation,
    TradePage,
)

if TYPE_CHECKING:
    import httpx
    import pluggy

    from brokersync.files import FileFormat

_T = TypeVar("_T")

__all__ = ["Broker", "RecordError", "TradeBatch"]

_PAGE_SIZE = 500


@attrs.frozen(kw_only=True)
class RecordError:
    """A broker record that could not be normalized: reported in the sync run, never stored."""

    broker_trade_id: str | None
    reason: str


@attrs.frozen(kw_only=True)
class TradeBatch:
    """One normalized page of trades and cancellations, the records that failed validation, and the page's cursor."""

    trades: tuple[Trade, ...]
    errors: tuple[RecordError, ...] = ()
    cursor: str | None = None
    cancellations: tuple[TradeCancellation, ...] = ()
    executions: tuple[Execution, ...] = ()
    execution_cancellations: tuple[ExecutionCancellation, ...] = ()
    positions: tuple[Position, ...] | None = None  # None: the page carries no position snapshot
    reports: Reports | None = None  # the account's own declaration (Account.reports); None: the broker's


def trace_enabled() -> bool:
    """Whether ``BROKERSYNC_TRACE_PLUGINS`` asks for hook call tracing."""
    return os.environ.get("BROKERSYNC_TRACE_PLUGINS", "").strip().lower() in ("1", "true", "yes", "on")


async def await_me_maybe(value: Any) -> Any:
    """Await ``value`` if it is awaitable; otherwise return it."""
    if inspect.isawaitable(value):
        return await value
    return value


HttpFactory = Callable[["Broker"], HttpClient]


class Broker:
    """A broker plugin bound to one environment. Get one from :func:`brokersync.get_broker`.

    Use it as an async context manager (``async with get_broker("sim") as broker``) so its HTTP
    client is closed. Every method validates what the plugin returns.
    """

    def __init__(
        self,
        *,
        key: str,
        metadata: BrokerMetadata,
        plugin_manager: pluggy.PluginManager,
        environment: str | None = None,
        base_url: str | None = None,
        options: Mapping[str, Any] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        http: HttpClient | HttpFactory | None = None,
        connection_id: str | None = None,
        clock: WallClock | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        self.key = key
        self.metadata = metadata
        self.environment = metadata.resolve_environment(environment)
        self.base_url = base_url or metadata.environments.get(self.environment, "")
        self.options: Mapping[str, Any] = dict(options or {})
        self.connection_id = connection_id
        self._pm = plugin_manager
        self._transport = transport
        self._http_spec = http
        self._http: HttpClient | None = None
        self._owns_http = False
        self._clock = clock
        self._sleep = sleep
        self._ctx: BrokerContext | None = None
        self._trace = trace_enabled()
        #: The token this facade's requests carry, renewed on 401 when an engine is behind it.
        self.token_session = TokenSession(metadata.token_auth)
        self.logger = get_logger(broker=key, environment=self.environment, connection_id=connection_id)

    # -- plumbing ------------------------------------------------------------------------------

    def implements(self, hook: str) -> bool:
        """Whether the plugin implements ``hook``."""
        return bool(getattr(self._pm.hook, hook).get_hookimpls())

    def file_formats(self) -> tuple[FileFormat, ...]:
        """The export file formats the plugin reads (its optional ``file_formats`` hook), checked.

        Raises:
            PluginContractError: the hook returned something other than uniquely named ``FileFormat`` objects.
        """
        from brokersync.files import FileFormat

        if not self.implements("file_formats"):
            return ()
        formats = self._pm.hook.file_formats()
        if not isinstance(formats, list | tuple) or not all(isinstance(f, FileFormat) for f in formats):
            raise PluginContractError(f"broker {self.key!r}: file_formats() must return a list of FileFormat")
        names = [f.name for f in formats]
        if len(set(names)) != len(names):
            raise PluginContractError(f"broker {self.key!r}: file_formats() repeats a format name: {names}")
        return tuple(formats)

    def validate_response(self, response: httpx.Response) -> Awaitable[None] | None:
        """Run the plugin's ``validate_response`` hook (if any) on ``response``.

        Returns what the hook returns: an ``async def`` hook's coroutine, which the core client awaits.
        """
        if self.implements("validate_response"):
            try:
                outcome: Awaitable[None] | None = self._pm.hook.validate_response(ctx=self.context, response=response)
            except BrokerError as exc:
                self.stamp(exc)
                raise
            if inspect.isawaitable(outcome):
                return self._stamped(outcome)
        return None

    async def _stamped(self, outcome: Awaitable[None]) -> None:
        try:
            await outcome
        except BrokerError as exc:
            self.stamp(exc)
            raise

    def stamp(self, exc: BaseException) -> BaseException:
        """Name this broker and connection on a broker error a plugin raised without them."""
        if isinstance(exc, BrokerError):
            if exc.broker is None:
                exc.broker = self.key
            if exc.connection_id is None:
                exc.connection_id = self.connection_id
        return exc

    def get_trades_unchecked(
        self, auth: AuthResult, account: Account, *, since: dt.datetime | None = None, cursor: str | None = None
    ) -> Any:
        """What the plugin's ``get_trades`` hook returns, as it returns it: not awaited, checked or normalized.

        For tools that inspect a plugin's pages (the conformance suite); syncing uses :meth:`iter_trades`.
        """
        self.token_session.adopt(auth)
        return self._pm.hook.get_trades(ctx=self.context, auth=auth, account=account, since=since, cursor=cursor)

    @property
    def transport(self) -> httpx.AsyncBaseTransport | None:
        """The httpx transport the facade's HTTP client sends through (None: the network)."""
        return self._transport

    @property
    def http(self) -> HttpClient:
        """The core HTTP client for this broker (built on first use)."""
        if self._http is None:
            if self._http_spec is None:
                # Even a facade used directly goes through the limiter, circuit breaker and retry.
                from brokersync._resilience import get_default_resilience

                self._http = get_default_resilience().client_for(self, own_circuit=True)
                self._owns_http = True
            elif callable(self._http_spec) and not hasattr(self._http_spec, "request"):
                self._http = self._http_spec(self)
                self._owns_http = True
            else:
                self._http = self._http_spec  # type: ignore[assignment]
        assert self._http is not None
        return self._http

    @property
    def context(self) -> BrokerContext:
        """The hook context (one per facade, so ``ctx.cache`` lives as long as this object)."""
        if self._ctx is None:
            extra: dict[str, Any] = {}
            if self._clock is not None:
                extra["clock"] = self._clock
            if self._sleep is not None:
                extra["sleep"] = self._sleep
            self._ctx = BrokerContext(
                broker=self.key,
                environment=self.environment,
                base_url=self.base_url,
                options=self.options,
                http=self.http,
                logger=self.logger,
                connection_id=self.connection_id,
                **extra,
            )
        return self._ctx

    async def aclose(self) -> None:
        """Close the HTTP client if this facade created it."""
        if self._http is not None and self._owns_http:
            closer = getattr(self._http, "aclose", None)
            if closer is not None:
                await closer()
        self._http = None
        self._ctx = None

    async def __aenter__(self) -> Broker:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _trace_call(self, hook: str, started: float, outcome: str) -> None:
        if self._trace:
            self.logger.info(
                "hook {hook} -> {outcome} in {ms:.1f} ms",
                hook=hook,
                outcome=outcome,
                ms=(time.perf_counter() - started) * 1000,
            )

    async def _call(self, hook: str, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            if hook in ("authenticate", "refresh_token"):
                # Getting a token: ctx.http attaches none, and a 401 is the answer, not a reason to renew.
                with token_call():
                    result = await await_me_maybe(getattr(self._pm.hook, hook)(ctx=self.context, **kwargs))
            else:
                result = await await_me_maybe(getattr(self._pm.hook, hook)(ctx=self.context, **kwargs))
        except BaseException as exc:
            self.stamp(exc)
            self._trace_call(hook, started, f"error {type(exc).__name__}")
            raise
        self._trace_call(hook, started, "ok")
        return result

    def _contract(self, hook: str, message: str) -> PluginContractError:
        return PluginContractError(f"broker {self.key!r}: hook {hook} {message}", broker=self.key)

    # -- the contract --------------------------------------------------------------------------

    async def authenticate(self, credentials: Mapping[str, Any]) -> AuthResult:
        """Validate ``credentials`` against the schema (before any network call), then authenticate."""
        checked = self.metadata.validate_credentials(credentials)
        result = await self._call("authenticate", credentials=checked)
        if not isinstance(result, AuthResult):
            raise self._contract("authenticate", f"returned {type(result).__name__}, expected AuthResult")
        session = self.token_session
        if session.renewer is None:
            # Used on its own (no engine), the facade renews a token rejected mid-call from these
            # credentials, in memory; an engine replaces this with its persisting bookkeeping.
            async def renew(rejected: AuthResult) -> AuthResult:
                from brokersync._reauth import renew_token

                return await renew_token(self, checked, rejected)

            session.renewer = renew
        session.adopt(result)
        return result

    async def refresh_token(self, credentials: Mapping[str, Any], auth: AuthResult) -> AuthResult | None:
        """Renew ``auth``; ``None`` if the plugin cannot (or does not implement the hook)."""
        if not self.implements("refresh_token"):
            return None
        checked = self.metadata.validate_credentials(credentials)
        result = await self._call("refresh_token", credentials=checked, auth=auth)
        if result is not None and not isinstance(result, AuthResult):
            raise self._contract("refresh_token", f"returned {type(result).__name__}, expected AuthResult or None")
        return result

    async def get_accounts(self, auth: AuthResult) -> list[Account]:
        """List the accounts ``auth`` gives access to."""
        self.token_session.adopt(auth)
        result = await self._call("get_accounts", auth=auth)
        if isinstance(result, Mapping | str | bytes) or not hasattr(result, "__iter__"):
            raise self._contract("get_accounts", f"returned {type(result).__name__}, expected a list of Account")
        accounts: list[Account] = []
        for index, item in enumerate(result):
            if isinstance(item, Account):
                accounts.append(item)
                continue
            try:
                accounts.append(wire_converter().structure(item, Account))
            except Exception as exc:
                raise self._contract("get_accounts", f"returned an invalid account at index {index}: {exc}") from exc
        ids = [a.id for a in accounts]
        if len(set(ids)) != len(ids):
            raise self._contract("get_accounts", f"returned duplicate account ids: {sorted(ids)}")
        return accounts

    async def iter_trades(
        self,
        auth: AuthResult,
        account: Account,
        *,
        since: dt.datetime | None = None,
        cursor: str | None = None,
    ) -> AsyncIterator[TradeBatch]:
        """Yield the account's trades in normalized batches, each with its cursor."""
        if since is not None and (since.tzinfo is None or since.utcoffset() is None):
            raise ValueError("since must be a timezone-aware datetime")
        self.token_session.adopt(auth)
        started = time.perf_counter()
        try:
            result = self._pm.hook.get_trades(
                ctx=self.context,
                auth=auth,
                account=account,
                since=since.astimezone(dt.UTC) if since else None,
                cursor=cursor,
            )
            if hasattr(result, "__aiter__"):
                pending: list[Trade | Mapping[str, Any]] = []
                async for item in result:
                    if isinstance(item, TradePage):
                        if pending:
                            yield self._normalize(pending, account, None)
                            pending = []
                        yield self._normalize(item.records, account, item.cursor, item.cancellations, item)
                    else:
                        pending.append(item)
                        if len(pending) >= _PAGE_SIZE:
                            yield self._normalize(pending, account, None)
                            pending = []
                if pending:
                    yield self._normalize(pending, account, None)
            else:
                result = await await_me_maybe(result)
                if isinstance(result, TradePage):
                    yield self._normalize(result.records, account, result.cursor, result.cancellations, result)
                elif isinstance(result, Mapping | str | bytes) or not hasattr(result, "__iter__"):
                    raise self._contract(  # noqa: TRY301 - traced by the handler below like any hook failure
                        "get_trades", f"returned {type(result).__name__}, expected TradePage pages or a list of trades"
                    )
                else:
                    records = list(result)
                    for start in range(0, max(len(records), 1), _PAGE_SIZE):
                        yield self._normalize(records[start : start + _PAGE_SIZE], account, None)
        except BaseException as exc:
            self.stamp(exc)
            self._trace_call("get_trades", started, f"error {type(exc).__name__}")
            raise
        self._trace_call("get_trades", started, "ok")

    def normalize_page(self, page: TradePage, *, account_id: str) -> TradeBatch:
        """Validate one page for ``account_id`` record by record, as ``iter_trades`` does (file imports use it)."""
        return self._normalize(page.records, Account(id=account_id), page.cursor, page.cancellations, page)

    def _normalize(
        self, records: Any, account: Account, cursor: str | None, cancellations: Any = (), page: TradePage | None = None
    ) -> TradeBatch:
        errors: list[RecordError] = []

        def valid(entries: Any, normalize: Callable[..., _T]) -> tuple[_T, ...]:
            kept: list[_T] = []
            for entry in entries:
                try:
                    kept.append(normalize(entry, account_id=account.id))
                except RecordValidationError as exc:
                    errors.append(RecordError(broker_trade_id=exc.broker_trade_id, reason=exc.message))
            return tuple(kept)

        trades = valid(records, normalize_trade)
        cancelled = valid(cancellations, normalize_any_cancellation)
        if cursor is not None and not isinstance(cursor, str):
            raise self._contract("get_trades", f"returned a cursor of type {type(cursor).__name__}, expected str")
        executions = valid(page.executions, normalize_execution) if page is not None else ()
        if executions and (account.reports or self.metadata.capabilities.reports) is Reports.ROUND_TRIPS:
            whose = "Account.reports" if account.reports is not None else "capabilities.reports"
            raise self._contract(
                "get_trades",
                f"returned executions for account {account.id!r}, which reports round trips only ({whose} is "
                "'round_trips'): declare Reports.EXECUTIONS for the core to pair them, or Reports.BOTH to keep "
                "the fills behind round trips the broker paired",
            )
        positions = None
        if page is not None and page.positions is not None:
            positions = valid(page.positions, normalize_position)
        return TradeBatch(
            trades=trades,
            errors=tuple(errors),
            cursor=cursor,
            cancellations=tuple(c for c in cancelled if isinstance(c, TradeCancellation)),
            executions=executions,
            execution_cancellations=tuple(c for c in cancelled if isinstance(c, ExecutionCancellation)),
            positions=positions,
            reports=account.reports,
        )
