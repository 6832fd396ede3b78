"""ccxt unified trades (string-number mode) -> :class:`brokersync.Execution`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from brokersync import AssetClass, Execution, Instrument, RecordValidationError
from brokersync.parsing import parse_decimal, parse_decimal_optional

__all__ = ["execution_id", "market_key", "plain", "to_execution"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def plain(value: Any) -> Any:
    """A JSON-safe copy of a raw record: Decimals become their exact text."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float):
        # Never through float: ccxt's string mode should have kept the exchange's text.
        raise RecordValidationError(f"a number arrived as float ({value!r}); refusing to guess its exact value")
    return str(value)


def _one_fee(fees: list[tuple[Decimal, str | None]], quote: Any) -> tuple[Decimal, str | None]:
    """One fee and its currency per execution.

    Zero entries are ignored (ccxt lists a currency's zero fee beside the one charged, e.g. 0 USDT and
    0.00012 BNB: the fee is BNB). If the exchange charged in several currencies at once, the quote
    currency's part is the fee (it is what pairing subtracts); every part stays in
    ``raw["brokersync_fees"]``. Without a quote part, the first currency the exchange lists is kept.
    """
    charged = [(cost, cur) for cost, cur in fees if cost]
    currencies = list(dict.fromkeys(cur for _, cur in charged))
    if not currencies:
        return Decimal(0), next((cur for _, cur in fees if cur), None)
    chosen = quote if quote in currencies else currencies[0]
    return sum((cost for cost, cur in charged if cur == chosen), Decimal(0)), chosen


def market_key(market: Mapping[str, Any]) -> str:
    """The exchange's market id, with ccxt's market type in front for a derivative (``swap:BTCUSDT``).

    Binance and Bybit give a pair's perpetual the spot pair's id (``BTCUSDT``), and Binance numbers the
    trades of each product separately: without the type, a perpetual would be paired with the spot
    pair and its fills would collide with spot fills of the same number.
    """
    if market.get("spot", market.get("type") == "spot"):
        return str(market["id"])
    return f"{market.get('type') or 'contract'}:{market['id']}"


def execution_id(trade: Mapping[str, Any], market: Mapping[str, Any]) -> str:
    """Stable id: the market key with the exchange's trade id (some exchanges number trades per market)."""
    return f"{market_key(market)}:{trade['id']}"


def to_execution(
    trade: Mapping[str, Any], market: Mapping[str, Any], *, account_id: str, exchange_id: str
) -> Execution:
    """One fill as an execution: quote-currency prices, contract size as the multiplier, fee in its own currency."""
    trade_id = trade.get("id")
    if not trade_id:
        raise RecordValidationError(f"{exchange_id}: a trade without an id: {plain(trade.get('info'))!r}")
    timestamp = trade.get("timestamp")
    if timestamp is None:
        raise RecordValidationError(f"{exchange_id}: trade {trade_id} has no time", broker_trade_id=str(trade_id))
    executed_at = _EPOCH + dt.timedelta(milliseconds=int(timestamp))
    contract = bool(market.get("contract"))
    multiplier = parse_decimal(_text(market.get("contractSize")) or "1") if contract else Decimal(1)
    fees: list[tuple[Decimal, str | None]] = []
    for fee in trade.get("fees") or ([trade["fee"]] if trade.get("fee") else []):
        cost = parse_decimal_optional(_text(fee.get("cost")))
        if cost is not None:
            fees.append((cost, fee.get("currency")))
    fee_total, fee_currency = _one_fee(fees, market.get("quote"))
    raw = plain(trade.get("info") or {})
    if len({cur for cost, cur in fees if cost}) > 1:
        raw = {**raw, "brokersync_fees": [{"cost": str(c), "currency": cur} for c, cur in fees]}
    return Execution(
        broker_execution_id=execution_id(trade, market),
        account_id=account_id,
        instrument=Instrument(
            symbol=str(market["symbol"]),
            asset_class=AssetClass.CRYPTO,
            currency=str(market.get("settle") if contract and market.get("settle") else market["quote"]),
            multiplier=multiplier,
            instrument_id=market_key(market),
            exchange=exchange_id,
        ),
        side=str(trade["side"]).lower(),
        quantity=parse_decimal(_text(trade.get("amount")) or ""),
        price=parse_decimal(_text(trade.get("price")) or ""),
        executed_at=executed_at,
        fees=fee_total,
        fee_currency=fee_currency,
        order_id=_text(trade.get("order")),
        raw=raw,
    )
