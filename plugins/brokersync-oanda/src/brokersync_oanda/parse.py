"""OANDA v20 JSON to brokersync records: pure functions, no I/O.

v20 sends every number as a decimal string and every time as RFC 3339 with nine fractional digits
(``"2016-10-28T15:11:58.023004583Z"``). Numbers are read with :func:`~brokersync.parsing.parse_decimal`
(never through float) and times with :func:`~brokersync.parsing.parse_time` (truncated to
microseconds; the raw record keeps the original text).

A value that does not parse is handed to the core as it came: the core then reports that one
record as invalid, naming the field, and stores the rest of the page.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, TypeVar

from brokersync import AssetClass
from brokersync.parsing import parse_decimal, parse_time

__all__ = [
    "FINANCING_FIELD",
    "closed_trade_ids",
    "commission_shares",
    "fill_trade_ids",
    "instrument",
    "is_fill",
    "to_account",
    "to_position",
    "to_record",
]

#: Where a synced trade keeps what is not in its P&L: ``raw["brokersync"]["financing"]`` (account
#: currency, as text) and ``raw["brokersync"]["commissions"]`` (fill id -> this trade's share).
FINANCING_FIELD = "brokersync"

# Currencies OANDA quotes as forex pairs; anything else (XAU_USD, SPX500_USD, BCO_USD) is a CFD.
_FIAT = frozenset("AUD CAD CHF CNH CZK DKK EUR GBP HKD HUF JPY MXN NOK NZD PLN SEK SGD THB TRY USD ZAR".split())

_T = TypeVar("_T")


def _or_raw(parse: Callable[[Any], _T], value: Any) -> _T | Any:
    """``parse(value)``, or ``value`` unchanged when it does not parse (the core reports the record)."""
    try:
        return parse(value)
    except (TypeError, ValueError):
        return value


def is_fill(transaction: Mapping[str, Any]) -> bool:
    """Whether a transaction is an ORDER_FILL (the only kind that opens, reduces or closes trades)."""
    return transaction.get("type") == "ORDER_FILL"


def _parts(fill: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    # A fill's per-trade entries in a fixed order: trades closed, the trade reduced, the trade opened.
    parts = list(fill.get("tradesClosed") or [])
    parts.extend(fill[key] for key in ("tradeReduced", "tradeOpened") if fill.get(key))
    return parts


def fill_trade_ids(fill: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """Return ``(closed, touched)``: the trades a fill closed, and every trade it opened, reduced or closed."""
    closed = [str(part["tradeID"]) for part in fill.get("tradesClosed") or []]
    return closed, [str(part["tradeID"]) for part in _parts(fill)]


def commission_shares(fill: Mapping[str, Any]) -> dict[str, Decimal]:
    """Split a fill's commission over the trades it touched, by units; the shares add up exactly.

    One fill may close several trades and open a new one (FIFO netting, a reversal): charging its
    whole commission to each of them would count it several times. Each share is rounded to the
    commission's own precision; the last trade gets what rounding left over.
    """
    commission = parse_decimal(fill.get("commission") or "0", field="commission")
    parts = [(str(p["tradeID"]), abs(parse_decimal(p["units"], field="units"))) for p in _parts(fill)]
    total = sum((units for _, units in parts), Decimal(0))
    if not parts or total == 0:
        return {}
    exponent = Decimal(1).scaleb(min(commission.as_tuple().exponent, 0))  # type: ignore[arg-type]
    shares: dict[str, Decimal] = {}
    left = commission
    for index, (trade_id, units) in enumerate(parts):
        share = left if index == len(parts) - 1 else (commission * units / total).quantize(exponent, ROUND_HALF_EVEN)
        shares[trade_id] = shares.get(trade_id, Decimal(0)) + share
        left -= share
    return shares


def instrument(name: str, *, home_currency: str | None = None) -> dict[str, Any]:
    """Describe OANDA instrument (``"EUR_USD"``) as :class:`brokersync.Instrument` fields (quoted in its 2nd leg)."""
    base, _, quote = name.partition("_")
    forex = base in _FIAT and quote in _FIAT
    return {
        "symbol": name,
        "asset_class": AssetClass.FOREX if forex else AssetClass.CFD,
        "currency": quote or home_currency or base,
    }


def to_account(listed: Mapping[str, Any], summary: Mapping[str, Any]) -> dict[str, Any]:
    """Map a ``/v3/accounts`` entry and its ``/summary`` to :class:`brokersync.Account` fields.

    ``raw`` keeps what describes the account (not its balance, which changes every minute).
    """
    stable = ("id", "alias", "currency", "hedgingEnabled", "createdTime", "createdByUserID")
    return {
        "id": listed["id"],
        "name": summary.get("alias") or None,
        "currency": summary.get("currency"),
        "type": "hedging" if summary.get("hedgingEnabled") else "fifo",
        "raw": {**dict(listed), **{k: summary[k] for k in stable if k in summary}},
    }


def to_record(
    trade: Mapping[str, Any],
    *,
    account_id: str,
    currency: str,
    fills: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """Map a CLOSED v20 ``Trade`` to :class:`brokersync.Trade` fields.

    Args:
        trade: The trade as ``GET .../trades`` returns it.
        account_id: The account it belongs to.
        currency: The account's home currency: ``realizedPL`` and commissions are in it.
        fills: ORDER_FILL transactions by id; must hold the opening fill (id = trade id) and every
            id in ``closingTransactionIDs``.

    Raises:
        KeyError: A fill the trade needs is missing from ``fills``.
    """
    trade_id = str(trade.get("id"))
    units = _or_raw(parse_decimal, trade.get("initialUnits"))
    fill_ids = [trade_id, *map(str, trade.get("closingTransactionIDs") or [])]
    commissions = {fid: commission_shares(fills[fid]).get(trade_id, Decimal(0)) for fid in fill_ids}
    financing = _or_raw(parse_decimal, trade.get("financing") or "0")
    return {
        "broker_trade_id": trade_id,
        "account_id": account_id,
        "symbol": trade.get("instrument"),
        "direction": ("long" if units > 0 else "short") if isinstance(units, Decimal) else units,
        "quantity": abs(units) if isinstance(units, Decimal) else units,
        "opened_at": _or_raw(parse_time, trade.get("openTime")),
        "closed_at": _or_raw(parse_time, trade.get("closeTime")),
        "entry_price": _or_raw(parse_decimal, trade.get("price")),
        "exit_price": _or_raw(parse_decimal, trade.get("averageClosePrice")),
        "realized_pnl": _or_raw(parse_decimal, trade.get("realizedPL")),
        "fees": sum(commissions.values(), Decimal(0)),
        "currency": currency,
        "raw": {
            **dict(trade),
            FINANCING_FIELD: {
                "financing": str(financing),
                "commissions": {fid: str(share) for fid, share in commissions.items()},
                "currency": currency,
            },
        },
    }


def to_position(trade: Mapping[str, Any], *, account_id: str) -> dict[str, Any]:
    """Map an OPEN v20 ``Trade`` to :class:`brokersync.Position` fields (signed ``currentUnits``)."""
    return {
        "account_id": account_id,
        "instrument": instrument(str(trade.get("instrument"))),
        "quantity": _or_raw(parse_decimal, trade.get("currentUnits")),
        "average_price": _or_raw(parse_decimal, trade.get("price")),
        "opened_at": _or_raw(parse_time, trade.get("openTime")),
        "raw": dict(trade),
    }


def closed_trade_ids(transactions: Iterable[Mapping[str, Any]]) -> list[str]:
    """Ids of the trades the ORDER_FILLs among ``transactions`` closed, in order, without repeats."""
    seen: dict[str, None] = {}
    for transaction in transactions:
        if is_fill(transaction):
            seen.update(dict.fromkeys(fill_trade_ids(transaction)[0]))
    return list(seen)
