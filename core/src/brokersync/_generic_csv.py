"""brokersync's own generic CSV layout: any broker's fills, read without code.

Columns (header names are matched case-insensitively; a column mapping renames a file's own
headers to these): ``Date``, ``Time``, ``Symbol``, ``Quantity``, ``Price``, ``Side``; optional
``Commission``, ``Fees``, ``Fee Currency`` (when the fees are not paid in ``Currency``),
``Execution ID``, ``Account``, ``Currency``, ``Asset Class``, ``Multiplier``. Dates are
``yyyy-mm-dd`` or ``mm/dd/yyyy`` (never day-first), times 24-hour, in the time zone given at import.
Without a ``Side`` column, a negative quantity is a sell.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

from brokersync.files import FileFormat, FileFormatError, FileSource
from brokersync.models import Execution, Instrument, Side, TradePage
from brokersync.parsing import is_missing, parse_decimal, parse_side, parse_time, zone

__all__ = ["COLUMNS", "EXPORT_COLUMNS", "GENERIC_CSV", "export_rows", "parse_mapping"]

COLUMNS = (
    "Date",
    "Time",
    "Symbol",
    "Quantity",
    "Price",
    "Side",
    "Commission",
    "Fees",
    "Fee Currency",
    "Execution ID",
    "Account",
    "Currency",
    "Asset Class",
    "Multiplier",
)
_REQUIRED = ("Date", "Symbol", "Quantity", "Price")
_PAGE = 1000


def parse_mapping(spec: str | Mapping[str, str] | None) -> dict[str, str]:
    """A column mapping from ``--map "Date=Trade Date,Price=Fill Price"`` or a TOML table: ours -> the file's.

    Raises:
        FileFormatError: for a malformed pair or a column brokersync does not know.
    """
    if spec is None:
        return {}
    pairs: dict[str, str] = {}
    items = spec.items() if isinstance(spec, Mapping) else (p.partition("=")[::2] for p in spec.split(",") if p.strip())
    known = {c.lower(): c for c in COLUMNS}
    for ours, theirs in items:
        canonical = known.get(str(ours).strip().lower())
        if canonical is None or not str(theirs).strip():
            raise FileFormatError(
                f"column mapping {ours!r}={theirs!r}: expected OURS=THEIRS with OURS one of {', '.join(COLUMNS)}"
            )
        pairs[canonical] = str(theirs).strip()
    return pairs


def _sniff(head: str) -> bool:
    first = next((line for line in head.splitlines() if line.strip()), "").lower()
    return all(name.lower() in first for name in ("date", "symbol", "quantity", "price"))


def _parse(source: FileSource) -> Iterator[TradePage]:
    tz = source.require_timezone("generic CSV")
    mapping = parse_mapping(source.options.get("map"))
    renamed = {theirs.lower(): ours for ours, theirs in mapping.items()}
    known = {c.lower(): c for c in COLUMNS}
    names: dict[str, str] = {}  # the file's column -> ours, worked out once per header
    reader = _Reader(source, tz)
    batch: list[Execution] = []
    for line, raw_row in source.csv_rows(header=lambda cells: any(c.strip() for c in cells)):
        if not names:
            for column in raw_row:
                name = renamed.get(column.lower()) or known.get(column.lower())
                if name:
                    names[column] = name
        row = {names[column]: value for column, value in raw_row.items() if column in names}
        if line == 2 or (not batch and not source.problems and len(row) < len(_REQUIRED)):
            missing = [c for c in _REQUIRED if c not in row]
            if missing:
                raise FileFormatError(
                    f"{source.name}: expected the column(s) {', '.join(missing)} of the generic CSV layout, "
                    f"found {', '.join(raw_row) or 'no columns'} (map yours with --map OURS=THEIRS)"
                )
        if not any(v.strip() for v in row.values()):
            continue
        try:
            batch.append(reader.execution(row, line))
        except (ValueError, TypeError) as exc:
            source.problem(line, str(exc))
            continue
        if len(batch) >= _PAGE:
            yield TradePage(executions=batch)
            batch = []
    if batch:
        yield TradePage(executions=batch)


class _Reader:
    """Turns generic CSV rows into executions; remembers the instruments seen (one object per instrument)."""

    def __init__(self, source: FileSource, tz: str) -> None:
        self._source = source
        try:
            self._tz = zone(tz)
        except ValueError as exc:
            raise FileFormatError(f"{source.name}: {exc}") from None
        self._comma: bool | None = None  # the delimiter is known once the header is read
        self._instruments: dict[tuple[str, ...], Instrument] = {}

    def _decimal(self, text: str, field: str) -> Decimal:
        assert self._comma is not None
        return parse_decimal(text, field=field, decimal_comma=self._comma)

    def _instrument(self, row: dict[str, str], symbol: str) -> Instrument:
        asset_class = row.get("Asset Class", "").strip()
        multiplier = row.get("Multiplier", "").strip()
        key = (symbol, row.get("Currency", "").strip() or "USD", asset_class, multiplier)
        found = self._instruments.get(key)
        if found is None:
            fields: dict[str, Any] = {"symbol": symbol, "currency": key[1]}
            if asset_class:
                fields["asset_class"] = asset_class.lower().replace(" ", "_")
            if multiplier:
                fields["multiplier"] = self._decimal(multiplier, "Multiplier")
            if len(self._instruments) >= 10_000:  # a file of ever new symbols keeps memory flat
                self._instruments.clear()
            found = self._instruments[key] = Instrument(**fields)
        return found

    def execution(self, row: dict[str, str], line: int) -> Execution:
        source = self._source
        if self._comma is None:
            self._comma = source.decimal_comma
        quantity = self._decimal(row.get("Quantity", ""), "Quantity")
        if row.get("Side", "").strip():
            side = parse_side(row["Side"])
            quantity = abs(quantity)
        elif quantity < 0:
            side, quantity = Side.SELL, -quantity
        else:
            side = Side.BUY
        if quantity == 0:
            raise ValueError("Quantity is 0")
        date = row.get("Date", "").strip()
        time = row.get("Time", "").strip()
        executed_at = parse_time(f"{date} {time}".strip(), tz=self._tz)
        fees = Decimal(0)
        for column in ("Commission", "Fees"):
            text = row.get(column)
            if not is_missing(text):
                assert text is not None
                fees += self._decimal(text, column)
        symbol = row.get("Symbol", "").strip()
        if not symbol:
            raise ValueError("Symbol is empty")
        price = self._decimal(row.get("Price", ""), "Price")
        account = row.get("Account", "").strip() or source.account_id
        if not account:
            raise ValueError("no Account column and no --account given")
        instrument = self._instrument(row, symbol)
        execution_id = row.get("Execution ID", "").strip() or source.content_id(
            "csv", account, symbol, side, quantity, price, executed_at
        )
        return Execution(
            broker_execution_id=execution_id,
            account_id=account,
            instrument=instrument,
            side=side,
            quantity=quantity,
            price=price,
            executed_at=executed_at,
            fees=abs(fees),
            fee_currency=row.get("Fee Currency", "").strip() or None,
            raw={**row, "_line": line},
        )


GENERIC_CSV = FileFormat(
    name="generic-csv",
    description="brokersync's generic CSV: Date, Time, Symbol, Quantity, Price, Side, Commission, Fees (any broker)",
    extensions=(".csv", ".txt"),
    sniff=_sniff,
    parse=_parse,
    needs_timezone=True,
)


#: What ``brokersync trades --format generic-csv`` writes (``Time`` in UTC: import it with ``--timezone UTC``).
EXPORT_COLUMNS = [
    "Date", "Time", "Symbol", "Quantity", "Price", "Side", "Commission", "Execution ID", "Account", "Currency",
    "Multiplier", "Fee Currency",
]  # fmt: skip


def _multiplier(trade: Any) -> Decimal:
    """The round trip's contract multiplier: recorded by the pairing, else implied by the broker's P&L."""
    recorded = trade.raw.get("multiplier") if isinstance(trade.raw, dict) else None
    if recorded:
        return Decimal(str(recorded))
    if trade.realized_pnl is None or trade.exit_price is None or trade.exit_price == trade.entry_price:
        return Decimal(1)
    move = (trade.exit_price - trade.entry_price) * trade.quantity
    implied = abs(trade.realized_pnl / move)
    return implied if implied > 0 else Decimal(1)


def export_rows(trade: Any) -> list[list[str]]:
    """A stored round trip as generic CSV fills: its opening fill, and its closing fill when closed.

    Fees are split as the pairing recorded them (opening and closing shares, each with its own
    currency: a share paid in another currency than the trade's is written with it in
    ``Fee Currency``), else all on the closing row. Importing the file into another installation
    pairs the fills again (FIFO), so round trips that overlapped in time may be paired differently
    there; P&L and fees per instrument are the same.
    """
    long = str(getattr(trade.direction, "value", trade.direction)) == "long"
    raw = trade.raw if isinstance(trade.raw, dict) else {}
    closed = trade.closed_at is not None and trade.exit_price is not None
    open_fee = raw.get("opening_fee", "0" if closed else str(trade.fees))
    close_fee = raw.get("closing_fee", str(trade.fees - Decimal(str(open_fee))))
    common = [trade.account_id, trade.currency, str(_multiplier(trade))]

    def row(when: Any, price: Any, side: str, fee: Any, suffix: str, fee_currency: Any) -> list[str]:
        day, clock = when.strftime("%Y-%m-%d"), when.strftime("%H:%M:%S.%f")
        fill_id = f"{trade.broker_trade_id}:{suffix}"
        cells = [day, clock, trade.symbol, str(trade.quantity), str(price), side, str(fee), fill_id, *common]
        return [*cells, str(fee_currency or trade.currency)]

    opening_side, closing_side = ("Buy", "Sell") if long else ("Sell", "Buy")
    rows = [row(trade.opened_at, trade.entry_price, opening_side, open_fee, "open", raw.get("opening_fee_currency"))]
    if closed:
        closing_currency = raw.get("closing_fee_currency")
        rows.append(row(trade.closed_at, trade.exit_price, closing_side, close_fee, "close", closing_currency))
    return rows
