"""Complete fill history, driven here (never ccxt's ``paginate=True``, which stops after 10 calls).

Per (market type, symbol) the walk uses the exchange's native cursor where it has one and time
windows no longer than ccxt's ``features`` allow:

* ``fromId`` (Binance family): trade ids upward from 0, or from the last id seen.
* ``ofs`` (Kraken): offsets of 50 from the newest trade, bounded below by the last time seen.
* ``cursor`` (Coinbase, Bybit): the exchange's page cursor inside each time window.
* ``after`` (OKX): bill ids backwards inside each window (fills-history reaches 90 days).
* otherwise: time windows; a full page is followed by a request from its last timestamp again,
  dropping ids already seen, so trades sharing a timestamp at a page boundary are never lost.

The position of each walk is kept in :class:`MarketState` inside the opaque cursor.

Kraken, Coinbase, Bybit and OKX page newest first. Their fills are gathered for a whole window (Kraken:
the whole walk) and handed on oldest first, the position moving with each page handed on: pairing then
meets fills in time order (no round trip made and undone within one sync), and a sync stopped halfway
resumes from a position below which everything was stored (a newest-first page would have moved it
past every older fill still unread).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import attrs

__all__ = ["MarketState", "walk"]

DAY_MS = 86_400_000
UNBOUNDED_DAYS = 100000
_STRATEGY = {
    "binance": "fromId",
    "binanceus": "fromId",
    "binanceusdm": "fromId",
    "kraken": "ofs",
    "coinbase": "cursor",
    "bybit": "cursor",
    "okx": "after",
}
_CURSOR_FIELD = {"coinbase": "cursor", "bybit": "nextPageCursor"}
_KRAKEN_PAGE = 50
_OKX_PAGE = 100
#: Strategies whose pages come newest first: gathered per window, handed on oldest first.
_NEWEST_FIRST = frozenset({"ofs", "cursor", "after"})
#: Fills per page handed on from a gathered window.
CHUNK = 500


@attrs.define
class MarketState:
    """Where the walk of one (market type, symbol) stands: newest time seen, ids at that time, next id."""

    last_ms: int | None = None
    ids_at_last: list[str] = attrs.field(factory=list)
    next_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain data for the cursor."""
        return {"t": self.last_ms, "ids": self.ids_at_last, "from_id": self.next_id}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MarketState:
        """Back from the cursor."""
        return cls(last_ms=data.get("t"), ids_at_last=list(data.get("ids") or []), next_id=data.get("from_id"))

    def advance(self, trades: list[dict[str, Any]]) -> None:
        """Remember the newest trades of a page."""
        for trade in trades:
            ts = trade.get("timestamp")
            if ts is None:
                continue
            if self.last_ms is None or ts > self.last_ms:
                self.last_ms, self.ids_at_last = ts, [str(trade["id"])]
            elif ts == self.last_ms and str(trade["id"]) not in self.ids_at_last:
                self.ids_at_last.append(str(trade["id"]))


def strategy_for(exchange_id: str) -> str:
    """How the history of ``exchange_id`` is paged."""
    return _STRATEGY.get(exchange_id, "time")


#: Exchanges whose fills endpoint answers for every market type at once (ccxt would pass ``type`` on as a query).
UNTYPED = frozenset({"coinbase", "kraken"})
#: Exchanges whose ccxt method reads ``type`` alone (``subType`` would be sent on as an unknown query parameter).
_TYPE_ONLY = frozenset({"okx", "myokx", "okxus"})


def _type_params(exchange_id: str, kind: str) -> dict[str, Any]:
    if exchange_id in UNTYPED:
        return {}
    if kind == "spot":
        return {"type": "spot"}
    return {"type": "swap"} if exchange_id in _TYPE_ONLY else {"type": "swap", "subType": "linear"}


def _page_cursor(trades: list[dict[str, Any]], field: str) -> str | None:
    for trade in trades:
        value = (trade.get("info") or {}).get(field)
        if value:
            return str(value)
    return None


async def walk(
    exchange: Any,
    *,
    kind: str,
    symbol: str | None,
    state: MarketState,
    start_ms: int,
    now_ms: int,
    limits: Mapping[str, Any],
    seen: set[str],
) -> AsyncIterator[list[dict[str, Any]]]:
    """Yield pages of new ccxt trades (ids not in ``seen``), oldest first, updating ``state`` and ``seen``."""
    strategy = strategy_for(exchange.id)
    pages = _walk(exchange, strategy, kind=kind, symbol=symbol, state=state, start_ms=start_ms, now_ms=now_ms,
                  limits=limits, seen=seen)  # fmt: skip
    if strategy not in _NEWEST_FIRST:
        async for new in pages:
            state.advance(new)
            yield new
        return
    gathered: list[dict[str, Any]] = []
    async for new in pages:
        if new:
            gathered.extend(new)
            continue
        # the end of a window: hand its fills on in time order
        gathered.sort(key=lambda t: (t.get("timestamp") or 0, str(t["id"])))
        for start in range(0, len(gathered), CHUNK):
            chunk = gathered[start : start + CHUNK]
            state.advance(chunk)
            yield chunk
        gathered = []


async def _walk(
    exchange: Any,
    strategy: str,
    *,
    kind: str,
    symbol: str | None,
    state: MarketState,
    start_ms: int,
    now_ms: int,
    limits: Mapping[str, Any],
    seen: set[str],
) -> AsyncIterator[list[dict[str, Any]]]:
    """The exchange's pages of new trades as they come; an empty list closes a window (newest-first strategies)."""
    seen.update(state.ids_at_last)

    def fresh(trades: list[dict[str, Any]]) -> list[dict[str, Any]]:
        new = [t for t in trades if str(t["id"]) not in seen]
        seen.update(str(t["id"]) for t in new)
        return new

    # A symbol names its market's type; without one, ccxt needs the type (and passes unknown keys on as query).
    params = {} if symbol else _type_params(exchange.id, kind)
    if strategy == "fromId":
        from_id = state.next_id or 0
        page = int(limits.get("limit") or 1000)
        while True:
            trades = await exchange.fetch_my_trades(symbol, None, page, {**params, "fromId": from_id})
            new = fresh(trades)
            if trades:
                from_id = max(int(t["id"]) for t in trades) + 1
                state.next_id = from_id
            if new:
                yield new
            if len(trades) < page:
                return
    if strategy == "ofs":
        # Newest first in pages of 50; ``start`` (exclusive, seconds) bounds the walk at the last time seen.
        since = max(start_ms, (state.last_ms or 0) - 1000) if state.last_ms else start_ms
        offset = 0
        while True:
            trades = await exchange.fetch_my_trades(symbol, since or None, None, {**params, "ofs": offset})
            new = fresh(trades)
            if new:
                yield new
            if len(trades) < _KRAKEN_PAGE:
                yield []
                return
            offset += len(trades)
    until_days = limits.get("until_days")
    step = int(until_days) * DAY_MS if until_days and until_days < UNBOUNDED_DAYS else None
    # From the last fill seen (1 ms before it: inclusive and exclusive bounds both return it; seen ids drop it).
    window_start = max(start_ms, state.last_ms - 1) if state.last_ms is not None else start_ms
    while window_start <= now_ms:
        window_end = min(window_start + step - 1, now_ms) if step else now_ms
        async for new in _window(exchange, strategy, symbol, params, window_start, window_end, limits, fresh):
            yield new
        if strategy in _NEWEST_FIRST:
            yield []
        window_start = window_end + 1


async def _window(
    exchange: Any,
    strategy: str,
    symbol: str | None,
    params: dict[str, Any],
    start: int,
    end: int,
    limits: Mapping[str, Any],
    fresh: Any,
) -> AsyncIterator[list[dict[str, Any]]]:
    if strategy == "cursor":
        page = int(limits.get("limit") or 100)
        page = min(page, 100) if exchange.id == "bybit" else page
        field = _CURSOR_FIELD.get(exchange.id, "cursor")
        cursor: str | None = None
        while True:
            extra = {**params, "until": end, **({"cursor": cursor} if cursor else {})}
            trades = await exchange.fetch_my_trades(symbol, start, page, extra)
            trades = [t for t in trades if t.get("timestamp") is None or t["timestamp"] <= end]
            new = fresh(trades)
            if new:
                yield new
            cursor = _page_cursor(trades, field)
            if not cursor or not trades:
                return
    if strategy == "after":
        after: str | None = None
        while True:
            extra = {**params, "until": end, **({"after": after} if after else {})}
            trades = await exchange.fetch_my_trades(symbol, start, None, extra)
            new = fresh(trades)
            if new:
                yield new
            if len(trades) < _OKX_PAGE:
                return
            bills = [str((t.get("info") or {}).get("billId") or "") for t in trades]
            bills = [b for b in bills if b]
            if not bills:
                return
            after = min(bills, key=int)
    # Plain time paging: a full page continues from its last timestamp (inclusive), seen ids dropped.
    page = int(limits.get("limit") or 100)
    since = start
    while True:
        trades = await exchange.fetch_my_trades(symbol, since, page, {**params, "until": end})
        trades = [t for t in trades if t.get("timestamp") is not None and t["timestamp"] <= end]
        new = fresh(trades)
        if new:
            yield new
        if len(trades) < page:
            return
        last = max(t["timestamp"] for t in trades)
        # A full page of one timestamp, all seen: time cannot page further; step past it.
        since = last if new else last + 1
