"""Tradovate's CSV exports, read into the same pages ``get_trades`` yields: pure functions, no I/O of their own.

The file-import mechanism (a later core feature) will call these with an opened text stream. Each
parser streams (one row in memory at a time, pages of :data:`PAGE_SIZE`) and never stops on a bad
row: a row that cannot be read becomes a mapping that names its line and problem, which the core
reports as an invalid record without storing it.

* **Position History** (paired trades): ``Position ID, ..., Pair ID, Buy Fill ID, Sell Fill ID,
  Paired Qty, Buy Price, Sell Price, P/L, Currency, Bought Timestamp, Sold Timestamp``. Each row is
  one ``fillPair``: its broker trade id is the ``Pair ID``, exactly what the API sync stores, so a
  file and an API sync of the same account converge.
* **Performance**: ``symbol, _priceFormat, _priceFormatType, _tickSize, buyFillId, sellFillId, qty,
  buyPrice, sellPrice, pnl, boughtTimestamp, soldTimestamp, duration``. It has no pair id and no
  account: the account is passed in, and the trade id is ``"{buyFillId}-{sellFillId}"`` (FIFO pairs
  one buy fill with one sell fill at most once, so it is unique and stable, but it is not the API's
  pair id: prefer Position History where both exist).
* **Orders/Fills**: one row per order (``B/S, Contract, Product, Fill Time, avgPrice, filledQty``,
  ``orderId``, ``Status``): filled orders become executions keyed ``"order-{orderId}"`` at their
  average price. The API reports single fills, so these do not dedupe against API fills.

None of the exports carries fees: trades from files have ``fees = 0``. Times are read in the
zone given (``tz``, default UTC) unless the text carries a ``Z`` or an offset.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from brokersync import AssetClass, Execution, Instrument, TradePage
from brokersync.parsing import is_missing, parse_decimal, parse_time

__all__ = ["PAGE_SIZE", "parse_orders", "parse_performance", "parse_position_history"]

#: Rows per yielded page.
PAGE_SIZE = 500


def _rows(stream: Iterable[str], required: Iterable[str], what: str) -> Iterator[tuple[int, dict[str, str]]]:
    reader = csv.reader(stream)
    header: list[str] | None = None
    for row in reader:
        if header is None:
            if not any(cell.strip() for cell in row):
                continue
            header = [cell.strip().lstrip("\ufeff").strip() for cell in row]
            missing = [name for name in required if name not in header]
            if missing:
                raise ValueError(
                    f"not a Tradovate {what} export: the header lacks {', '.join(missing)} (found: {', '.join(header)})"
                )
            continue
        if not any(cell.strip() for cell in row):
            continue
        yield reader.line_num, {name: (row[i].strip() if i < len(row) else "") for i, name in enumerate(header)}
    if header is None:
        raise ValueError(f"not a Tradovate {what} export: the file is empty")


def _page(kind: str, chunk: list[Any]) -> TradePage:
    return TradePage(executions=chunk) if kind == "executions" else TradePage(records=chunk)


def _pages(items: Iterator[Any], kind: str) -> Iterator[TradePage]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= PAGE_SIZE:
            yield _page(kind, chunk)
            chunk = []
    if chunk:
        yield _page(kind, chunk)


def _round_trip(
    *,
    trade_id: str,
    account_id: str,
    symbol: str,
    qty: str,
    buy_price: str,
    sell_price: str,
    pnl: str,
    bought: str,
    sold: str,
    currency: str,
    tz: str,
    row: Mapping[str, str],
    line: int,
) -> dict[str, Any]:
    bought_at = parse_time(bought, tz=tz)
    sold_at = parse_time(sold, tz=tz)
    long = bought_at <= sold_at
    buy, sell = parse_decimal(buy_price, field="buy price"), parse_decimal(sell_price, field="sell price")
    return {
        "broker_trade_id": trade_id,
        "account_id": account_id,
        "symbol": symbol,
        "direction": "long" if long else "short",
        "opened_at": bought_at if long else sold_at,
        "closed_at": sold_at if long else bought_at,
        "entry_price": buy if long else sell,
        "exit_price": sell if long else buy,
        "quantity": parse_decimal(qty, field="quantity"),
        "realized_pnl": parse_decimal(pnl.replace("$", ""), field="P/L"),
        "fees": 0,
        "currency": currency or "USD",
        "raw": {**row, "line": line},
    }


def _invalid(
    trade_id: str, account_id: str | None, row: Mapping[str, str], line: int, exc: Exception
) -> dict[str, Any]:
    # The core validates each record and reports this one as invalid (symbol is missing), with the
    # line and the reason kept in raw for the report; nothing of it is stored.
    return {
        "broker_trade_id": trade_id or f"line-{line}",
        "account_id": account_id,
        "symbol": None,
        "raw": {**row, "line": line, "problem": f"line {line}: {exc}"},
    }


def parse_position_history(
    stream: Iterable[str], *, account_id: str | None = None, tz: str = "UTC"
) -> Iterator[TradePage]:
    """Read a Position History export: one round trip per row, keyed by its ``Pair ID``.

    Args:
        stream: The file's lines (an open text file).
        account_id: The account, when the export has no ``Account`` column (or to override it).
        tz: The zone of times written without an offset.

    Raises:
        ValueError: the header is not this export's (before any page is yielded).
    """
    required = ("Pair ID", "Buy Fill ID", "Sell Fill ID", "Paired Qty", "Buy Price", "Sell Price", "P/L")
    rows = _rows(stream, (*required, "Bought Timestamp", "Sold Timestamp"), "Position History")

    def records() -> Iterator[dict[str, Any]]:
        for line, row in rows:
            account = account_id or row.get("Account", "")
            try:
                if not account:
                    raise ValueError("no Account column: pass the account id")  # noqa: TRY301
                yield _round_trip(
                    trade_id=row["Pair ID"],
                    account_id=account,
                    symbol=row.get("Contract") or row.get("Product") or "",
                    qty=row["Paired Qty"],
                    buy_price=row["Buy Price"],
                    sell_price=row["Sell Price"],
                    pnl=row["P/L"],
                    bought=row["Bought Timestamp"],
                    sold=row["Sold Timestamp"],
                    currency=row.get("Currency", ""),
                    tz=tz,
                    row=row,
                    line=line,
                )
            except (TypeError, ValueError) as exc:
                yield _invalid(row.get("Pair ID", ""), account or None, row, line, exc)

    return _pages(records(), "records")


def parse_performance(stream: Iterable[str], *, account_id: str, tz: str = "UTC") -> Iterator[TradePage]:
    """Read a Performance export (also written by TradingView-connected accounts): one round trip per row.

    Args:
        stream: The file's lines.
        account_id: The account the export belongs to (the file does not say).
        tz: The zone of times written without an offset.
    """
    required = ("symbol", "buyFillId", "sellFillId", "qty", "buyPrice", "sellPrice", "pnl")
    rows = _rows(stream, (*required, "boughtTimestamp", "soldTimestamp"), "Performance")

    def records() -> Iterator[dict[str, Any]]:
        for line, row in rows:
            trade_id = f"{row['buyFillId']}-{row['sellFillId']}"
            try:
                yield _round_trip(
                    trade_id=trade_id,
                    account_id=account_id,
                    symbol=row["symbol"],
                    qty=row["qty"],
                    buy_price=row["buyPrice"],
                    sell_price=row["sellPrice"],
                    pnl=row["pnl"],
                    bought=row["boughtTimestamp"],
                    sold=row["soldTimestamp"],
                    currency="USD",
                    tz=tz,
                    row=row,
                    line=line,
                )
            except (TypeError, ValueError) as exc:
                yield _invalid(trade_id, account_id, row, line, exc)

    return _pages(records(), "records")


def parse_orders(
    stream: Iterable[str],
    *,
    account_id: str | None = None,
    tz: str = "UTC",
    currency: str = "USD",
    multipliers: Mapping[str, str] | None = None,
) -> Iterator[TradePage]:
    """Read an Orders/Fills export: each filled order as one execution at its average price.

    Rows that are not filled (``Status`` other than ``Filled``, or no filled quantity) are skipped;
    a filled row that cannot be read becomes a mapping without instrument whose ``raw`` names its
    line and problem, so the core reports it as invalid and stores none of it.

    Args:
        stream: The file's lines.
        account_id: The account, when the export has no ``Account`` column.
        tz: The zone of times written without an offset.
        currency: The contracts' currency (the export does not say).
        multipliers: Product -> contract multiplier (``{"ES": "50"}``); 1 when not given.
    """
    rows = _rows(stream, ("B/S", "Contract", "Fill Time", "avgPrice", "filledQty"), "Orders")
    factors = dict(multipliers or {})

    def executions() -> Iterator[Execution | dict[str, Any]]:
        for line, row in rows:
            status = row.get("Status", "Filled").strip()
            if status.lower() != "filled" or is_missing(row.get("filledQty")) or row["filledQty"] in ("0", "0.0"):
                continue
            account = account_id or row.get("Account", "")
            order = row.get("orderId") or row.get("Order ID") or ""
            try:
                product = row.get("Product") or row["Contract"]
                yield Execution(
                    broker_execution_id=f"order-{order}",
                    account_id=account,
                    instrument=Instrument(
                        symbol=row["Contract"],
                        asset_class=AssetClass.FUTURE,
                        currency=currency,
                        multiplier=parse_decimal(factors.get(product, "1")),
                        underlying=product,
                    ),
                    side=row["B/S"].strip().lower(),
                    quantity=parse_decimal(row["filledQty"], field="filledQty"),
                    price=parse_decimal(row["avgPrice"], field="avgPrice"),
                    executed_at=parse_time(row["Fill Time"], tz=tz),
                    order_id=order or None,
                    raw={**row, "line": line},
                )
            except (TypeError, ValueError) as exc:
                yield {
                    "broker_execution_id": f"order-{order}" if order else f"line-{line}",
                    "account_id": account or None,
                    "raw": {**row, "line": line, "problem": f"line {line}: {exc}"},
                }

    return _pages(executions(), "executions")
