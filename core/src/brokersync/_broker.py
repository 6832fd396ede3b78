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

from brokersync._context import BrokerContext, HttpClient
from brokersync._converters import normalize_cancellation, normalize_trade, wire_converter
from brokersync._log import get_logger
from brokersync.errors import PluginContractError, RecordValidationError
from brokersync.models import (
    Account,
    AuthResult,
    BrokerMetadata,
    ExecutionCancellation,
    Trade,
    TradeCancellation,
    TradePage,
)

if TYPE_CHECKING:
    import httpx
    import pluggy

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


def _is_execution_cancellation(entry: Any) -> bool:
    if isinstance(entry, ExecutionCancellation):
        return True
    return isinstance(entry, Mapping) and "broker_execution_id" in entry and "broker_trade_id" not in entry


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
        clock: Callable[[], dt.datetime] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        self.key = key
        self.metadata = metadata
        self.environment = metadata.resolve_environment(environment)
        self.base_url = base_url or metadata.environments[self.environment]
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
        self.logger = get_logger(broker=key, environment=self.environment, connection_id=connection_id)

    # -- plumbing ------------------------------------------------------------------------------

    def implements(self, hook: str) -> bool:
        """Whether the plugin implements ``hook``."""
        return bool(getattr(self._pm.hook, hook).get_hookimpls())

    def validate_response(self, response: httpx.Response) -> None:
        """Run the plugin's ``validate_response`` hook (if any) on ``response``."""
        if self.implements("validate_response"):
            self._pm.hook.validate_response(ctx=self.context, response=response)

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
            result = await await_me_maybe(getattr(self._pm.hook, hook)(ctx=self.context, **kwargs))
        except BaseException as exc:
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
                        yield self._normalize(item.records, account, item.cursor, item.cancellations)
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
                    yield self._normalize(result.records, account, result.cursor, result.cancellations)
                elif isinstance(result, Mapping | str | bytes) or not hasattr(result, "__iter__"):
                    raise self._contract(  # noqa: TRY301 - traced by the handler below like any hook failure
                        "get_trades", f"returned {type(result).__name__}, expected TradePage pages or a list of trades"
                    )
                else:
                    records = list(result)
                    for start in range(0, max(len(records), 1), _PAGE_SIZE):
                        yield self._normalize(records[start : start + _PAGE_SIZE], account, None)
        except BaseException as exc:
            self._trace_call("get_trades", started, f"error {type(exc).__name__}")
            raise
        self._trace_call("get_trades", started, "ok")

    def _normalize(self, records: Any, account: Account, cursor: str | None, cancellations: Any = ()) -> TradeBatch:
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
        # Busted executions (ExecutionCancellation, or a mapping naming broker_execution_id) wait for
        # the executions store; until then they are not mistaken for malformed trade cancellations.
        cancelled = valid((c for c in cancellations if not _is_execution_cancellation(c)), normalize_cancellation)
        if cursor is not None and not isinstance(cursor, str):
            raise self._contract("get_trades", f"returned a cursor of type {type(cursor).__name__}, expected str")
        return TradeBatch(trades=trades, errors=tuple(errors), cursor=cursor, cancellations=cancelled)
