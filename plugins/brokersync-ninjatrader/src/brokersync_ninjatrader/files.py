"""NinjaTrader 8 exports: the Executions grid and the Trade Performance grid, saved as CSV.

Executions grid columns: ``Instrument, Action, Quantity, Price, Time, ID, E/X, Position,
Order ID, Name, Commission, Rate, Account, Connection``. Trade Performance ("Trades" tab) columns:
``Trade number, Instrument, Account, Strategy, Market pos., Qty, Entry price, Exit price,
Entry time, Exit time, Entry name, Exit name, Profit, Cum. net profit, Commission, MAE, MFE,
ETD, Bars``. Times are the PC's local time without a zone (``--timezone`` is required); European
locales write semicolons and decimal commas, and money with a currency sign (``$2.04``,
``(12,50 €)``).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from brokersync import AssetClass, Direction, Execution, Instrument, Trade, TradePage
from brokersync.files import FileFormat, FileSource
from brokersync.parsing import parse_decimal, parse_side, parse_time

__all__ = ["EXECUTIONS_GRID", "TRADE_PERFORMANCE", "futures_multiplier"]

_PAGE = 1000

#: Point values of the futures NinjaTrader users trade most; others need the ``multipliers`` option.
FUTURES_MULTIPLIERS = {
    "ES": Decimal(50),
    "MES": Decimal(5),
    "NQ": Decimal(20),
    "MNQ": Decimal(2),
    "YM": Decimal(5),
    "MYM": Decimal("0.5"),
    "RTY": Decimal(50),
    "M2K": Decimal(5),
    "CL": Decimal(1000),
    "MCL": Decimal(100),
    "GC": Decimal(100),
    "MGC": Decimal(10),
    "SI": Decimal(5000),
    "NG": Decimal(10000),
    "ZB": Decimal(1000),
    "ZN": Decimal(1000),
    "6E": Decimal(125000),
    "6J": Decimal(12500000),
}


def futures_multiplier(instrument: str, overrides: dict[str, Any] | None = None) -> tuple[str, AssetClass, Decimal]:
    """Return root, asset class and point value of an instrument name (``"ES 12-24"``: ES, future, 50).

    A name without a contract month is a stock (multiplier 1). ``overrides`` maps roots to point
    values (the ``multipliers`` import option) for contracts this table does not know.
    """
    parts = instrument.split()
    if len(parts) == 2 and "-" in parts[1]:
        root = parts[0].upper()
        table = {**FUTURES_MULTIPLIERS, **{k.upper(): parse_decimal(str(v)) for k, v in (overrides or {}).items()}}
        if root not in table:
            raise ValueError(f"unknown futures root {root!r}: give its point value with --option multipliers.{root}=N")
        return root, AssetClass.FUTURE, table[root]
    return instrument.upper(), AssetClass.STOCK, Decimal(1)


def _instrument(source: FileSource, name: str) -> Instrument:
    _, asset_class, multiplier = futures_multiplier(name, source.options.get("multipliers"))
    currency = str(source.options.get("currency", "USD"))
    return Instrument(symbol=name.upper(), asset_class=asset_class, multiplier=multiplier, currency=currency)


def _first_line(head: str) -> str:
    return next((line for line in head.splitlines() if line.strip()), "").replace(";", ",").lower()


def _sniff_grid(head: str) -> bool:
    first = _first_line(head)
    return all(col in first for col in ("instrument", "action", "quantity", "price", "time", "e/x"))


def _sniff_performance(head: str) -> bool:
    first = _first_line(head)
    return all(col in first for col in ("trade number", "market pos.", "entry price", "exit price", "entry time"))


def _account(source: FileSource, row: dict[str, str]) -> str:
    account = row.get("Account", "").strip() or source.account_id
    if not account:
        raise ValueError("no Account column and no --account given")
    return account


def _parse_grid(source: FileSource) -> Iterator[TradePage]:
    tz = source.require_timezone("NinjaTrader")
    batch: list[Execution] = []
    required = ("Instrument", "Action", "Quantity", "Price", "Time")
    for line, row in source.csv_rows(required=required):
        try:
            comma = source.decimal_comma
            account = _account(source, row)
            executed_at = parse_time(row["Time"], tz=tz)
            side = parse_side(row["Action"])
            quantity = parse_decimal(row["Quantity"], field="Quantity", decimal_comma=comma)
            price = parse_decimal(row["Price"], field="Price", decimal_comma=comma)
            fees = parse_decimal(row.get("Commission") or "0", field="Commission", decimal_comma=comma)
            execution_id = row.get("ID", "").strip() or source.content_id(
                "nt", account, row["Instrument"], side, quantity, price, executed_at
            )
            batch.append(
                Execution(
                    broker_execution_id=execution_id,
                    account_id=account,
                    instrument=_instrument(source, row["Instrument"]),
                    side=side,
                    quantity=quantity,
                    price=price,
                    executed_at=executed_at,
                    fees=abs(fees),
                    order_id=row.get("Order ID") or None,
                    raw={**row, "_line": line},
                )
            )
        except (ValueError, TypeError) as exc:
            source.problem(line, str(exc))
            continue
        if len(batch) >= _PAGE:
            yield TradePage(executions=batch)
            batch = []
    if batch:
        yield TradePage(executions=batch)


def _parse_performance(source: FileSource) -> Iterator[TradePage]:
    tz = source.require_timezone("NinjaTrader")
    batch: list[Trade] = []
    required = ("Instrument", "Market pos.", "Qty", "Entry price", "Exit price", "Entry time", "Exit time", "Profit")
    for line, row in source.csv_rows(required=required):
        try:
            comma = source.decimal_comma
            account = _account(source, row)
            position = row["Market pos."].strip().lower()
            if position not in ("long", "short"):
                raise ValueError(f"Market pos. {row['Market pos.']!r} is neither Long nor Short")  # noqa: TRY301
            opened_at = parse_time(row["Entry time"], tz=tz)
            closed_at = parse_time(row["Exit time"], tz=tz)
            quantity = parse_decimal(row["Qty"], field="Qty", decimal_comma=comma)
            entry = parse_decimal(row["Entry price"], field="Entry price", decimal_comma=comma)
            exit_ = parse_decimal(row["Exit price"], field="Exit price", decimal_comma=comma)
            instrument = _instrument(source, row["Instrument"])
            # NinjaTrader's Profit is net of commission; brokersync stores P&L gross with fees apart.
            fees = abs(parse_decimal(row.get("Commission") or "0", field="Commission", decimal_comma=comma))
            gross = (exit_ - entry) * quantity * instrument.multiplier
            if position == "short":
                gross = -gross
            trade_id = source.content_id(
                "nt-trade", account, row["Instrument"], position, quantity, entry, exit_, opened_at, closed_at
            )
            batch.append(
                Trade(
                    broker_trade_id=trade_id,
                    account_id=account,
                    symbol=instrument.symbol,
                    direction=Direction(position),
                    opened_at=opened_at,
                    closed_at=closed_at,
                    entry_price=entry,
                    exit_price=exit_,
                    quantity=quantity,
                    realized_pnl=gross,
                    fees=fees,
                    currency=instrument.currency,
                    raw={**row, "ninjatrader_profit": row["Profit"], "_line": line},
                )
            )
        except (ValueError, TypeError) as exc:
            source.problem(line, str(exc))
            continue
        if len(batch) >= _PAGE:
            yield TradePage(records=batch)
            batch = []
    if batch:
        yield TradePage(records=batch)


EXECUTIONS_GRID = FileFormat(
    name="ninjatrader-executions",
    description="NinjaTrader 8 Executions grid (CSV): fills, paired by brokersync",
    extensions=(".csv",),
    sniff=_sniff_grid,
    parse=_parse_grid,
    needs_timezone=True,
)

TRADE_PERFORMANCE = FileFormat(
    name="ninjatrader-trades",
    description="NinjaTrader 8 Trade Performance grid (CSV): round trips as NinjaTrader paired them",
    extensions=(".csv",),
    sniff=_sniff_performance,
    parse=_parse_performance,
    needs_timezone=True,
)
