"""Tradovate wire records -> brokersync records: pure functions, no I/O.

Everything here takes the entities the Tradovate REST API returns (decoded with
:func:`loads`, so every JSON number with a fraction is an exact :class:`~decimal.Decimal`) and
returns mappings with the field names of :class:`brokersync.Trade` (validated by the core, one
record at a time), or :class:`brokersync.Execution` / :class:`brokersync.Position` objects.

The rules (``docs/brokers/tradovate.md`` says them for users):

* a round trip is one ``fillPair``; its broker trade id is the pair id;
* direction: long when the buy fill is not later than the sell fill, else short; entry and exit
  times are the fills' ``timestamp``s, the prices are the pair's ``buyPrice``/``sellPrice``;
* gross P&L = ``(sellPrice - buyPrice) * qty * product.valuePerPoint`` in the product's currency;
* fees: each fill's ``fillFee`` components are added up, and split over the pairs the fill takes
  part in by ``pair.qty / fill.qty``, with cumulative rounding (see :func:`fee_shares`), so the
  pieces of one fill's fee always add up exactly to that fee once the fill is fully paired.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import attrs
from brokersync import (
    AssetClass,
    Execution,
    ExecutionCancellation,
    Instrument,
    Position,
    Side,
    TradeCancellation,
    TradePage,
)
from brokersync.parsing import parse_decimal, parse_time

__all__ = [
    "FEE_FIELDS",
    "Catalog",
    "Cursor",
    "build_page",
    "derive_device_id",
    "fee_shares",
    "fill_execution",
    "fill_fee_total",
    "instrument",
    "is_busted",
    "limit_key",
    "loads",
    "number",
    "pair_fee_shares",
    "pair_record",
    "position_snapshot",
    "side_of",
    "time_of",
]

#: The ``fillFee`` components that are a cost of the fill (each with its ``...CurrencyId``).
FEE_FIELDS = ("commission", "clearingFee", "exchangeFee", "nfaFee", "brokerageFee", "ipFee", "orderRoutingFee")
_CENT = Decimal("0.01")
_DEVICE_NAMESPACE = uuid.UUID("6f1c1f0e-53a5-4f7e-9a43-7d0c2b5e8a10")


def loads(text: str) -> Any:
    """Decode a Tradovate JSON body; numbers with a fraction become exact Decimals (never floats)."""
    return json.loads(text, parse_float=Decimal)


def number(value: Any, field: str) -> Decimal:
    """Read one numeric field of a decoded entity as a Decimal (ints and Decimals; floats are refused).

    Raises:
        TypeError, ValueError: naming ``field``, for a missing or non-numeric value.
    """
    if value is None:
        raise ValueError(f"{field}: missing")
    return parse_decimal(value, field=field)


def time_of(value: Any, field: str) -> dt.datetime:
    """Read a Tradovate timestamp (``2022-10-25T19:31:02.965Z``) as a tz-aware UTC datetime."""
    if not isinstance(value, str):
        raise TypeError(f"{field}: expected an ISO timestamp, got {value!r}")
    return parse_time(value)


def side_of(action: Any) -> Side:
    """Read ``"Buy"``/``"Sell"`` as a :class:`brokersync.Side`."""
    if action == "Buy":
        return Side.BUY
    if action == "Sell":
        return Side.SELL
    raise ValueError(f"action: expected 'Buy' or 'Sell', got {action!r}")


def derive_device_id(username: str, cid: str) -> str:
    """Return a device id that is the same on every machine and every run for one user and API key.

    Tradovate wants a stable per-device id (up to 64 characters); a new one on every run looks like
    a new device to its live checks. It is a name-based UUID of the user name and the API key id:
    no secret goes into it, and it survives a password change.
    """
    return str(uuid.uuid5(_DEVICE_NAMESPACE, f"{username.strip().casefold()}\n{cid.strip()}"))


def limit_key(username: str) -> str:
    """Return the key Tradovate's per-user limits are counted under (a hash: no user name in limiter keys)."""
    return "user-" + hashlib.sha256(username.strip().casefold().encode()).hexdigest()[:16]


class Catalog:
    """The entities one sync has read, by id: fills, fees, contracts, maturities, products, currencies.

    Contracts, maturities, products and currencies never change for an id; fills and fees are
    re-read each sync. The client fills it; the functions below only read it.
    """

    def __init__(self) -> None:
        self.fills: dict[int, Mapping[str, Any]] = {}
        self.fees: dict[int, Mapping[str, Any]] = {}  # by fill id
        self.orders: dict[int, Mapping[str, Any]] = {}
        self.contracts: dict[int, Mapping[str, Any]] = {}
        self.maturities: dict[int, Mapping[str, Any]] = {}
        self.products: dict[int, Mapping[str, Any]] = {}
        self.currencies: dict[int, Mapping[str, Any]] = {}

    def product_of(self, contract_id: int) -> Mapping[str, Any]:
        """Return the product of a contract (through its maturity); KeyError if one was not read."""
        contract = self.contracts[contract_id]
        maturity = self.maturities[contract["contractMaturityId"]]
        return self.products[maturity["productId"]]

    def currency_of(self, product: Mapping[str, Any]) -> str:
        """Return the ISO code of a product's currency."""
        return str(self.currencies[product["currencyId"]]["name"])


def instrument(catalog: Catalog, contract_id: int) -> Instrument:
    """Describe a Tradovate contract as a :class:`brokersync.Instrument` (a future; ``instrument_id`` = contractId)."""
    contract = catalog.contracts[contract_id]
    maturity = catalog.maturities[contract["contractMaturityId"]]
    product = catalog.products[maturity["productId"]]
    expiry = maturity.get("expirationDate")
    product_type = product.get("productType")
    return Instrument(
        symbol=contract["name"],
        asset_class=AssetClass.FUTURE if product_type in (None, "Futures") else AssetClass.OTHER,
        currency=catalog.currency_of(product),
        multiplier=number(product.get("valuePerPoint"), "product.valuePerPoint"),
        instrument_id=str(contract_id),
        underlying=product.get("name"),
        expiry=time_of(expiry, "contractMaturity.expirationDate").date() if expiry else None,
    )


def fill_fee_total(fee: Mapping[str, Any] | None, currency_id: int | None = None) -> Decimal:
    """Add up a ``fillFee``'s cost components (0 when the fill has no fee record).

    Raises:
        ValueError: when a non-zero component is billed in another currency than ``currency_id``
            (the fee could not be stated in the trade's currency without an exchange rate).
    """
    if fee is None:
        return Decimal(0)
    total = Decimal(0)
    for name in FEE_FIELDS:
        value = fee.get(name)
        if value is None:
            continue
        amount = number(value, f"fillFee.{name}")
        billed_in = fee.get(f"{name}CurrencyId")
        if amount and currency_id is not None and billed_in is not None and billed_in != currency_id:
            raise ValueError(
                f"fillFee {fee.get('id')}: {name} is billed in currency id {billed_in}, not the product's "
                f"currency id {currency_id}"
            )
        total += amount
    return total


def _quantum(total: Decimal) -> Decimal:
    exponent = total.as_tuple().exponent
    return _CENT if not isinstance(exponent, int) or exponent >= -2 else Decimal(1).scaleb(exponent)


def fee_shares(total: Decimal, fill_qty: Decimal, pair_qtys: Sequence[Decimal]) -> list[Decimal]:
    """Split one fill's fee over the pairs it takes part in (in pair id order), exactly.

    The rule: pair ``i`` gets ``R(total * (q1 + ... + qi) / fill_qty) - R(total * (q1 + ... + q(i-1)) / fill_qty)``
    where ``R`` rounds half up to the cent (or to the fee's own precision when it has more places).
    So the shares of a fully paired fill add up to exactly ``total``, an earlier pair's share never
    changes when later pairs arrive, and no share differs from the exact pro rata by a cent or more.
    """
    if fill_qty <= 0:
        raise ValueError(f"fill qty must be positive, got {fill_qty}")
    quantum = _quantum(total)
    shares: list[Decimal] = []
    done = Decimal(0)
    before = Decimal(0)
    for qty in pair_qtys:
        done += qty
        upto = (total * done / fill_qty).quantize(quantum, rounding=ROUND_HALF_UP)
        shares.append(upto - before)
        before = upto
    return shares


def pair_record(
    pair: Mapping[str, Any],
    *,
    account_id: str,
    catalog: Catalog,
    contract_id: int,
    fees: Mapping[int, Decimal],
) -> dict[str, Any]:
    """Map one ``fillPair`` to a mapping with :class:`brokersync.Trade`'s field names (not validated).

    Args:
        pair: The fillPair entity.
        account_id: The broker account (the position's ``accountId``).
        catalog: The fills, contracts, maturities, products and currencies read in this sync.
        contract_id: The position's ``contractId``.
        fees: This pair's share of each of its fills' fees, by fill id (see :func:`fee_shares`).

    Raises:
        KeyError, ValueError, TypeError: a referenced entity is missing or a field is malformed;
            the caller reports the pair as an invalid record.
    """
    buy = catalog.fills[pair["buyFillId"]]
    sell = catalog.fills[pair["sellFillId"]]
    for fill in (buy, sell):
        if fill["id"] not in fees:
            raise ValueError(f"the fee of fill {fill['id']} could not be split over its pairs")
    product = catalog.product_of(contract_id)
    qty = number(pair.get("qty"), "fillPair.qty")
    buy_price = number(pair.get("buyPrice"), "fillPair.buyPrice")
    sell_price = number(pair.get("sellPrice"), "fillPair.sellPrice")
    bought_at = time_of(buy.get("timestamp"), "fill.timestamp")
    sold_at = time_of(sell.get("timestamp"), "fill.timestamp")
    long = bought_at <= sold_at
    value_per_point = number(product.get("valuePerPoint"), "product.valuePerPoint")
    return {
        "broker_trade_id": str(pair["id"]),
        "account_id": account_id,
        "symbol": catalog.contracts[contract_id]["name"],
        "direction": "long" if long else "short",
        "opened_at": bought_at if long else sold_at,
        "closed_at": sold_at if long else bought_at,
        "entry_price": buy_price if long else sell_price,
        "exit_price": sell_price if long else buy_price,
        "quantity": qty,
        "realized_pnl": (sell_price - buy_price) * qty * value_per_point,
        "fees": fees.get(buy["id"], Decimal(0)) + fees.get(sell["id"], Decimal(0)),
        "currency": catalog.currency_of(product),
        "raw": {"fillPair": dict(pair), "buyFill": dict(buy), "sellFill": dict(sell)},
    }


def fill_execution(fill: Mapping[str, Any], *, account_id: str, catalog: Catalog) -> Execution:
    """Read one ``fill`` as a :class:`brokersync.Execution` (its fee in the product's currency).

    Raises:
        KeyError, ValueError, TypeError: a referenced entity is missing or a field is malformed.
    """
    contract_id = fill["contractId"]
    product = catalog.product_of(contract_id)
    return Execution(
        broker_execution_id=str(fill["id"]),
        account_id=account_id,
        instrument=instrument(catalog, contract_id),
        side=side_of(fill.get("action")),
        quantity=number(fill.get("qty"), "fill.qty"),
        price=number(fill.get("price"), "fill.price"),
        executed_at=time_of(fill.get("timestamp"), "fill.timestamp"),
        fees=fill_fee_total(catalog.fees.get(fill["id"]), product.get("currencyId")),
        fee_currency=catalog.currency_of(product),
        order_id=str(fill["orderId"]) if fill.get("orderId") is not None else None,
        raw=dict(fill),
    )


def position_snapshot(position: Mapping[str, Any], *, catalog: Catalog) -> Position | None:
    """Read a ``position`` entity as an open :class:`brokersync.Position`; ``None`` when it is flat."""
    net = number(position.get("netPos", 0), "position.netPos")
    if net == 0:
        return None
    stamp = position.get("timestamp")
    return Position(
        account_id=str(position["accountId"]),
        instrument=instrument(catalog, position["contractId"]),
        quantity=net,
        average_price=number(position.get("netPrice"), "position.netPrice"),
        opened_at=time_of(stamp, "position.timestamp") if stamp else None,
        raw=dict(position),
    )


def is_busted(pair: Mapping[str, Any], catalog: Catalog) -> bool:
    """Tell whether a pair was busted: it, or one of its fills, is no longer ``active``."""
    if pair.get("active", True) is False:
        return True
    fills = [catalog.fills.get(pair[k]) for k in ("buyFillId", "sellFillId") if k in pair]
    return any(f is not None and f.get("active", True) is False for f in fills)


def pair_fee_shares(
    pairs: Iterable[Mapping[str, Any]], catalog: Catalog, currency_of_fill: Mapping[int, int | None]
) -> tuple[dict[int, dict[int, Decimal]], dict[int, str]]:
    """Return every pair's share of its two fills' fees: ``({pair id: {fill id: share}}, {fill id: problem})``.

    Inactive (busted) pairs take no share. A fill whose fee cannot be split (a malformed fee, a
    fee billed in another currency) is named in the problems; its pairs are reported invalid.
    """
    problems: dict[int, str] = {}
    by_fill: dict[int, list[Mapping[str, Any]]] = {}
    for pair in pairs:
        if is_busted(pair, catalog):
            continue
        for key in ("buyFillId", "sellFillId"):
            by_fill.setdefault(pair[key], []).append(pair)
    result: dict[int, dict[int, Decimal]] = {}
    for fill_id, fill_pairs in by_fill.items():
        fill = catalog.fills.get(fill_id)
        if fill is None:
            continue
        try:
            total = fill_fee_total(catalog.fees.get(fill_id), currency_of_fill.get(fill_id))
            ordered = sorted(fill_pairs, key=lambda p: p["id"])
            shares = fee_shares(total, number(fill.get("qty"), "fill.qty"), [number(p["qty"], "qty") for p in ordered])
        except (TypeError, ValueError) as exc:
            problems[fill_id] = str(exc)
            continue
        for pair, share in zip(ordered, shares, strict=True):
            result.setdefault(pair["id"], {})[fill_id] = share
    return result, problems


@attrs.frozen
class Cursor:
    """Record where an account's last sync stopped: the highest fillPair, fill and executionReport ids seen.

    Tradovate's listings have no time filter, so every sync reads them again; only pairs and
    fills above the cursor are reported (plus pairs a newer correction touched), and the core's
    dedupe absorbs any overlap.
    """

    pair: int = 0
    fill: int = 0
    report: int = 0

    def encode(self) -> str:
        """Return the cursor as the opaque text the core stores."""
        return json.dumps({"fill": self.fill, "pair": self.pair, "report": self.report}, sort_keys=True)

    @classmethod
    def decode(cls, text: str | None) -> Cursor:
        """Read a stored cursor; an unreadable one starts over (safe: the core deduplicates)."""
        if not text:
            return cls()
        try:
            data = json.loads(text)
            return cls(pair=int(data["pair"]), fill=int(data["fill"]), report=int(data.get("report", 0)))
        except (ValueError, TypeError, KeyError):
            return cls()


def _report_by_order(reports: Iterable[Mapping[str, Any]], kind: str) -> dict[Any, Mapping[str, Any]]:
    return {r.get("orderId"): r for r in sorted(reports, key=lambda r: r.get("id", 0)) if r.get("execType") == kind}


def build_page(
    *,
    account_id: str,
    positions: Sequence[Mapping[str, Any]],
    pairs: Sequence[Mapping[str, Any]],
    account_fills: Iterable[int],
    reports: Sequence[Mapping[str, Any]],
    catalog: Catalog,
    cursor: Cursor,
    problems: list[str] | None = None,
) -> TradePage:
    """Build one account's page: new (or corrected) round trips, new fills, busts, the open positions, the next cursor.

    Args:
        account_id: The broker account.
        positions: The account's ``position`` entities (flat ones included).
        pairs: The fillPairs of those positions.
        account_fills: The ids of the account's own fills (unpaired ones included).
        reports: The account's ``executionReport``s.
        catalog: Everything else read in this sync.
        cursor: Where the last sync stopped.
        problems: Collects a line for each record that could not be built (it is skipped or
            reported as invalid, never half-built).
    """
    notes = problems if problems is not None else []
    by_position = {p["id"]: p for p in positions}
    currency_of_fill: dict[int, int | None] = {}
    for fill_id, fill in catalog.fills.items():
        try:
            currency_of_fill[fill_id] = catalog.product_of(fill["contractId"]).get("currencyId")
        except (KeyError, TypeError):
            currency_of_fill[fill_id] = None
    shares, fee_problems = pair_fee_shares(pairs, catalog, currency_of_fill)
    new_reports = [r for r in reports if isinstance(r.get("id"), int) and r["id"] > cursor.report]
    corrected_orders = {r.get("orderId") for r in new_reports if r.get("execType") == "TradeCorrect"}
    corrected_fills = {f for f, fill in catalog.fills.items() if fill.get("orderId") in corrected_orders}
    cancels = _report_by_order(reports, "TradeCancel")

    records: list[Mapping[str, Any]] = []
    cancellations: list[TradeCancellation | ExecutionCancellation] = []
    for pair in sorted(pairs, key=lambda p: p["id"]):
        if is_busted(pair, catalog):
            cancellations.append(_pair_cancellation(pair, account_id, catalog, cancels))
            continue
        touched = pair.get("buyFillId") in corrected_fills or pair.get("sellFillId") in corrected_fills
        if pair["id"] <= cursor.pair and not touched:
            continue
        position = by_position.get(pair.get("positionId"))
        try:
            if position is None:
                raise KeyError(f"position {pair.get('positionId')}")  # noqa: TRY301 - reported like any lookup failure
            for fill_id in (pair["buyFillId"], pair["sellFillId"]):
                if fill_id in fee_problems:
                    raise ValueError(fee_problems[fill_id])  # noqa: TRY301
            records.append(
                pair_record(
                    pair,
                    account_id=account_id,
                    catalog=catalog,
                    contract_id=position["contractId"],
                    fees=shares.get(pair["id"], {}),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            why = f"missing {exc.args[0]}" if isinstance(exc, KeyError) else str(exc)
            notes.append(f"fillPair {pair.get('id')}: {why}")
            records.append(
                {
                    "broker_trade_id": str(pair.get("id")),
                    "account_id": account_id,
                    "symbol": None,
                    "raw": {"fillPair": dict(pair), "problem": why},
                }
            )

    executions: list[Execution] = []
    own = sorted(set(account_fills))
    for fill_id in own:
        own_fill = catalog.fills.get(fill_id)
        if own_fill is None:
            continue
        fill = own_fill
        if fill.get("active", True) is False:
            cancellations.append(_fill_cancellation(fill, account_id, cancels))
            continue
        if fill_id <= cursor.fill:
            continue
        try:
            executions.append(fill_execution(fill, account_id=account_id, catalog=catalog))
        except (KeyError, TypeError, ValueError) as exc:
            notes.append(f"fill {fill_id}: {exc}")

    snapshot: list[Position] = []
    for position in positions:
        try:
            open_position = position_snapshot(position, catalog=catalog)
        except (KeyError, TypeError, ValueError) as exc:
            notes.append(f"position {position.get('id')}: {exc}")
            continue
        if open_position is not None:
            snapshot.append(open_position)

    following = Cursor(
        pair=max([cursor.pair, *(p["id"] for p in pairs if isinstance(p.get("id"), int))]),
        fill=max([cursor.fill, *own]),
        report=max([cursor.report, *(r["id"] for r in new_reports)]),
    )
    return TradePage(
        records=records,
        executions=executions,
        cancellations=cancellations,
        positions=snapshot,
        cursor=following.encode(),
    )


def _pair_cancellation(
    pair: Mapping[str, Any], account_id: str, catalog: Catalog, cancels: Mapping[Any, Mapping[str, Any]]
) -> TradeCancellation:
    fills = [f for f in (catalog.fills.get(pair[k]) for k in ("buyFillId", "sellFillId") if k in pair) if f]
    busted = [f for f in fills if f.get("active", True) is False] or fills
    report = next((cancels[f.get("orderId")] for f in busted if f.get("orderId") in cancels), None)
    return TradeCancellation(
        account_id=account_id,
        broker_trade_id=str(pair["id"]),
        cancelled_at=_cancel_time(report, busted[0] if busted else None),
        reason=_reason(report),
        raw={"fillPair": dict(pair), "executionReport": dict(report) if report else None},
    )


def _fill_cancellation(
    fill: Mapping[str, Any], account_id: str, cancels: Mapping[Any, Mapping[str, Any]]
) -> ExecutionCancellation:
    report = cancels.get(fill.get("orderId"))
    return ExecutionCancellation(
        account_id=account_id,
        broker_execution_id=str(fill["id"]),
        cancelled_at=_cancel_time(report, fill),
        reason=_reason(report),
        raw={"fill": dict(fill), "executionReport": dict(report) if report else None},
    )


def _cancel_time(report: Mapping[str, Any] | None, fill: Mapping[str, Any] | None) -> dt.datetime:
    for source in (report, fill):
        if source is not None and isinstance(source.get("timestamp"), str):
            try:
                return time_of(source["timestamp"], "timestamp")
            except ValueError:
                continue
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _reason(report: Mapping[str, Any] | None) -> str:
    if report is None:
        return "inactive fill (busted)"
    text = report.get("text")
    return f"TradeCancel: {text}" if text else "TradeCancel"
