"""The broker plugin for one ccxt exchange: metadata from the static table, hooks that import ccxt lazily.

Listing the ~95 brokers loads this module and builds one small object per exchange, so nothing here
imports more than the static table at import time: the request bridge, the history walk and the
trade parser (and ccxt) load when a broker first authenticates or syncs.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from brokersync import (
    Account,
    AuthResult,
    BrokerMetadata,
    ConfigurationError,
    Credentials,
    Execution,
    PluginError,
    RecordValidationError,
    TradePage,
    hookimpl,
)

from brokersync_ccxt._metadata import OPTION_FIELDS, UNBOUNDED_DAYS, limits_for, metadata_for

if TYPE_CHECKING:
    from brokersync import BrokerContext

__all__ = ["CcxtExchangeBroker"]

_CURSOR_VERSION = 1
#: Where time-windowed walks start when the exchange publishes no history depth (before any fill).
DEFAULT_HISTORY_START = dt.datetime(2017, 1, 1, tzinfo=dt.UTC)
_DISCOVERY = ("balance", "deposits", "withdrawals", "ledger")
DAY_MS = 86_400_000
#: The hooks this class implements: all that pluggy needs to look at when it registers a broker.
_HOOKS = ("authenticate", "broker_metadata", "get_accounts", "get_trades", "validate_response")


def _ms(value: dt.datetime) -> int:
    return int(value.timestamp() * 1000)


def _settings(ctx: BrokerContext, credentials: Mapping[str, str]) -> dict[str, Any]:
    """Return the plugin's options: ``ctx.options`` (library use), overridden by the connection's option fields."""
    return {**ctx.options, **{name: credentials[name] for name in OPTION_FIELDS if credentials.get(name)}}


def _option_list(options: Mapping[str, Any], name: str) -> list[str] | None:
    value = options.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    raise ConfigurationError(f"option {name!r} must be a list or a comma separated string, got {value!r}")


class CcxtExchangeBroker:
    """The brokersync plugin of one ccxt exchange (``CcxtExchangeBroker("binance")``).

    Options (``ctx.options``; ``symbols`` and ``market_types`` also as the connection's optional
    credential fields, which win): ``symbols`` (extra markets to search, e.g. ``"SOL/USDT,ETH/BTC"``),
    ``market_types`` (``spot``, ``linear``), ``discover`` (sources of symbol discovery:
    ``balance,deposits,withdrawals,ledger``), ``history_start`` (ISO date where time-windowed walks
    start when the exchange publishes no depth).
    """

    def __init__(self, exchange_id: str) -> None:
        self.exchange_id = exchange_id

    def __repr__(self) -> str:
        return f"CcxtExchangeBroker({self.exchange_id!r})"

    def __dir__(self) -> list[str]:
        # pluggy inspects every name dir() returns when it registers a plugin; listing ~95 brokers
        # registers ~95 of these, so show it the hooks only (the helpers are private anyway).
        return list(_HOOKS)

    @hookimpl
    def broker_metadata(self) -> BrokerMetadata:
        """Return the exchange's metadata (static: no ccxt import)."""
        return metadata_for(self.exchange_id)

    # -- hooks that talk to the exchange -------------------------------------------------------

    def _exchange(self, ctx: BrokerContext, credentials: Mapping[str, str]) -> Any:
        from brokersync_ccxt._exchange import build_exchange

        return build_exchange(ctx, self.exchange_id, credentials)

    async def _call(self, ctx: BrokerContext, coro: Any) -> Any:
        from brokersync_ccxt._errors import translate

        try:
            return await coro
        except Exception as exc:
            mapped = translate(exc, broker=ctx.broker, connection_id=ctx.connection_id)
            if mapped is None or mapped is exc:
                raise
            raise mapped from None

    @hookimpl
    async def authenticate(self, ctx: BrokerContext, credentials: Credentials) -> AuthResult:
        """Ccxt signs every request with the key: prove it works with a balance call, keep it for the hooks."""
        values = dict(credentials.items())
        exchange = self._exchange(ctx, values)
        await self._call(ctx, exchange.load_markets())
        if exchange.has.get("fetchBalance"):
            ctx.cache["brokersync_ccxt.balance"] = await self._call(ctx, exchange.fetch_balance())
        return AuthResult(access_token=values.get("api_key") or self.exchange_id, state={"credentials": values})

    @hookimpl
    def validate_response(self, ctx: BrokerContext, response: Any) -> None:
        """Ccxt's own error handling on every answer (error statuses included)."""
        from brokersync_ccxt._exchange import check_response

        check_response(ctx, response)

    @hookimpl
    async def get_accounts(self, ctx: BrokerContext, auth: AuthResult) -> list[Account]:
        """One account per API key: the exchange account it signs for (its balance is read to prove the key).

        The balance is kept for symbol discovery in the same run, so a sync that starts here (with a
        stored key, without ``authenticate``) costs no extra request.
        """
        meta = metadata_for(self.exchange_id)
        exchange = self._exchange(ctx, dict(auth.state.get("credentials") or {}))
        if exchange.has.get("fetchBalance"):
            await self._call(ctx, exchange.load_markets())
            ctx.cache["brokersync_ccxt.balance"] = await self._call(ctx, exchange.fetch_balance())
        return [Account(id=self.exchange_id, name=meta.name, type="crypto")]

    @hookimpl
    async def get_trades(
        self,
        ctx: BrokerContext,
        auth: AuthResult,
        account: Account,
        since: dt.datetime | None,
        cursor: str | None,
    ) -> AsyncIterator[TradePage]:
        """Every fill of every searched market as executions, one page per exchange page."""
        from brokersync_ccxt._history import UNTYPED, MarketState, walk

        credentials = dict(auth.state.get("credentials") or {})
        exchange = self._exchange(ctx, credentials)
        options = _settings(ctx, credentials)
        state = _load_cursor(cursor, ctx.broker)
        await self._call(ctx, exchange.load_markets())
        now_ms = _ms(ctx.now())
        kinds = _option_list(options, "market_types") or [
            kind for kind, lim in limits_for(self.exchange_id).items() if kind == "spot" or not lim["symbol_required"]
        ]
        if self.exchange_id in UNTYPED:
            kinds = ["spot"] if "spot" in kinds else kinds[:1]  # one endpoint answers for every market type
        searched: dict[str, list[str]] = {}
        for kind in kinds:
            limits = limits_for(self.exchange_id).get(kind)
            if limits is None:
                raise ConfigurationError(
                    f"exchange {ctx.broker!r} has no {kind!r} fills; market_types may be "
                    f"{', '.join(limits_for(self.exchange_id))}"
                )
            symbols: list[str | None]
            if limits["symbol_required"]:
                symbols = list(await self._symbols(ctx, exchange, kind, state, options))
            else:
                symbols = [None]
            searched[kind] = [s or "*" for s in symbols]
            if limits["symbol_required"]:
                # The user must know which markets were looked at: a market never traded from a
                # balance or transfer the exchange reports is not searched unless named.
                ctx.warn(
                    f"{ctx.broker}: searched {len(symbols)} {kind} market(s) found from balances, transfers "
                    f"and the symbols option ({', '.join(str(s) for s in symbols) or 'none'}); fills in other "
                    f"{kind} markets are not fetched: add them with --set symbols=...",
                    account_id=account.id,
                    code="ccxt.markets_searched",
                )
            else:
                ctx.logger.info("{exchange}: searching every {kind} market", exchange=ctx.broker, kind=kind)
            start_ms = self._start_ms(options, limits, since, now_ms)
            if cursor is None and since is None and start_ms > self._start_ms(options, {}, since, now_ms):
                ctx.warn(
                    f"{ctx.broker}: {kind} history reaches back {limits['days_back']} days at this exchange; "
                    "older fills cannot be fetched through its API",
                    account_id=account.id,
                    code="ccxt.history_depth",
                )
            for symbol in symbols:
                market_key = f"{kind}|{symbol or '*'}"
                market_state = MarketState.from_json(state["markets"].get(market_key, {}))
                seen: set[str] = set()
                pages = walk(
                    exchange,
                    kind=kind,
                    symbol=symbol,
                    state=market_state,
                    start_ms=start_ms,
                    now_ms=now_ms,
                    limits=limits,
                    seen=seen,
                )
                while True:
                    try:
                        trades = await self._call(ctx, pages.__anext__())
                    except StopAsyncIteration:
                        break
                    executions = self._executions(ctx, exchange, account, trades, kind)
                    state["markets"][market_key] = market_state.to_json()
                    state["searched"] = searched
                    yield TradePage(executions=executions, cursor=json.dumps(state, sort_keys=True))
                state["markets"][market_key] = market_state.to_json()
        state["searched"] = searched
        state["now"] = now_ms
        yield TradePage(cursor=json.dumps(state, sort_keys=True))

    def _start_ms(
        self, options: Mapping[str, Any], limits: Mapping[str, Any], since: dt.datetime | None, now_ms: int
    ) -> int:
        days_back = limits.get("days_back")
        floor = now_ms - int(days_back) * DAY_MS if days_back and days_back < UNBOUNDED_DAYS else None
        raw_start = options.get("history_start")
        try:
            start = dt.datetime.fromisoformat(str(raw_start)) if raw_start else DEFAULT_HISTORY_START
        except ValueError as exc:
            raise ConfigurationError(f"option history_start must be an ISO date, got {raw_start!r}") from exc
        if start.tzinfo is None:
            start = start.replace(tzinfo=dt.UTC)
        begin = _ms(since) if since is not None else _ms(start)
        return max(begin, floor) if floor is not None else begin

    def _executions(
        self, ctx: BrokerContext, exchange: Any, account: Account, trades: list[dict[str, Any]], kind: str
    ) -> list[Execution | Mapping[str, Any]]:
        from brokersync_ccxt._history import UNTYPED
        from brokersync_ccxt._parse import to_execution

        out: list[Execution | Mapping[str, Any]] = []
        for trade in trades:
            info = trade.get("info") or {}
            if self.exchange_id == "bybit" and info.get("execType") not in (None, "Trade"):
                continue  # funding, settlement and ADL rows are not fills
            market = exchange.markets.get(trade.get("symbol")) if trade.get("symbol") else None
            if market is not None and self.exchange_id not in UNTYPED and not _of_kind(market, kind):
                # A row without its category and a pair id its perpetual shares (Bybit's BTCUSDT): ccxt
                # may resolve a spot fill to the perpetual. The walk asked for one market type: parse again.
                right = _market_of_kind(exchange, market["id"], kind)
                if right is not None:
                    trade, market = exchange.parse_trade(info, right), right
            if market is None:
                ctx.logger.warning(
                    "{exchange}: fill {id} of unknown market {symbol} skipped",
                    exchange=ctx.broker,
                    id=trade.get("id"),
                    symbol=trade.get("symbol"),
                )
                continue
            try:
                out.append(to_execution(trade, market, account_id=account.id, exchange_id=self.exchange_id))
            except (RecordValidationError, ValueError, TypeError) as exc:
                ctx.logger.warning(
                    "{exchange}: fill {id} skipped: {error}", exchange=ctx.broker, id=trade.get("id"), error=str(exc)
                )
        return out

    async def _symbols(
        self, ctx: BrokerContext, exchange: Any, kind: str, state: dict[str, Any], options: Mapping[str, Any]
    ) -> list[str]:
        """Markets to search where the exchange needs a symbol: from what the account holds and moved."""
        sources = _option_list(options, "discover") or list(_DISCOVERY)
        currencies: set[str] = set()
        if "balance" in sources and exchange.has.get("fetchBalance"):
            balance = ctx.cache.get("brokersync_ccxt.balance") or await self._call(ctx, exchange.fetch_balance())
            for code, amount in (balance.get("total") or {}).items():
                if _nonzero(amount):
                    currencies.add(str(code))
        for source, method in (
            ("deposits", "fetchDeposits"),
            ("withdrawals", "fetchWithdrawals"),
            ("ledger", "fetchLedger"),
        ):
            if source not in sources or not exchange.has.get(method):
                continue
            fetch = getattr(
                exchange,
                {
                    "fetchDeposits": "fetch_deposits",
                    "fetchWithdrawals": "fetch_withdrawals",
                    "fetchLedger": "fetch_ledger",
                }[method],
            )
            try:
                rows = await self._call(ctx, fetch())
            except Exception as exc:
                # ccxt's "not supported" (Binance's ledger is the futures wallets' only): expected, every sync.
                if isinstance(exc, PluginError):
                    ctx.logger.info(
                        "{exchange}: symbol discovery from {source} is not supported: {error}",
                        exchange=ctx.broker,
                        source=source,
                        error=str(exc),
                    )
                else:
                    ctx.warn(
                        f"{ctx.broker}: finding markets from {source} failed ({exc}); markets seen only there "
                        "are not searched this time",
                        code="ccxt.discovery_failed",
                    )
                continue
            currencies.update(str(r["currency"]) for r in rows if r.get("currency"))
        wanted_type = "spot" if kind == "spot" else "swap"
        found = {
            symbol
            for symbol, market in exchange.markets.items()
            if market.get("type") == wanted_type
            and (kind == "spot" or market.get("linear"))
            and market.get("base") in currencies
        }
        extra = _option_list(options, "symbols") or []
        unknown = [s for s in extra if s not in exchange.markets]
        if unknown:
            raise ConfigurationError(
                f"exchange {ctx.broker!r} has no market {', '.join(unknown)} (option symbols); "
                "symbols are ccxt's, like BTC/USDT or BTC/USDT:USDT"
            )
        found.update(s for s in extra if exchange.markets[s].get("type") == wanted_type)
        # Markets searched before keep being searched (a coin sold to zero still has its history).
        found.update(k.split("|", 1)[1] for k in state["markets"] if k.startswith(f"{kind}|") and not k.endswith("*"))
        return sorted(found)


def _of_kind(market: Mapping[str, Any], kind: str) -> bool:
    """Whether a ccxt market is of the market type a walk asked for (``spot`` or ``linear``)."""
    if kind == "spot":
        return bool(market.get("spot"))
    return bool(market.get("contract")) and bool(market.get(kind, True))


def _market_of_kind(exchange: Any, market_id: str, kind: str) -> dict[str, Any] | None:
    """Return the market with exchange id ``market_id`` and the walk's market type, if the exchange has one."""
    found = exchange.markets_by_id.get(market_id) or []
    candidates = found if isinstance(found, list) else [found]
    return next((m for m in candidates if _of_kind(m, kind)), None)


def _nonzero(value: Any) -> bool:
    try:
        return value is not None and Decimal(str(value)) != 0
    except InvalidOperation:
        return False


def _load_cursor(cursor: str | None, broker: str) -> dict[str, Any]:
    if not cursor:
        return {"v": _CURSOR_VERSION, "markets": {}}
    try:
        data = json.loads(cursor)
    except ValueError as exc:
        raise ConfigurationError(
            f"exchange {broker!r}: the stored cursor is not this plugin's: {cursor[:40]!r}"
        ) from exc
    if not isinstance(data, dict) or data.get("v") != _CURSOR_VERSION:
        raise ConfigurationError(f"exchange {broker!r}: the stored cursor is not this plugin's: {cursor[:40]!r}")
    data.setdefault("markets", {})
    return data
