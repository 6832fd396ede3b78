"""MetaTrader 4 and 5 account statements, saved from the terminal as HTML.

MT5 ("ReportHistory"): one table whose sections are announced by a one-cell row (``Positions``,
``Orders``, ``Deals``), each followed by its header row. The Positions section holds the round
trips the terminal paired: ``Time, Position, Symbol, Type, Volume, Price, S / L, T / P, Time,
Price, Commission, Swap, Profit``. MT4 ("Statement"): the ``Closed Transactions`` section:
``Ticket, Open Time, Type, Size, Item, Price, S / L, T / P, Close Time, Price, Commission, Taxes,
Swap, Profit``. Times are the broker server's, with no zone (``--timezone`` or the connection's
``server_timezone`` option); headers may be localized (Italian ``Simbolo, Tipo, Volume, Prezzo,
Profitto`` and others below). The HTML is read as a stream: memory does not grow with the report.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from html.parser import HTMLParser

from brokersync import Direction, Trade, TradePage
from brokersync.files import FileFormat, FileFormatError, FileSource
from brokersync.parsing import is_missing, parse_decimal, parse_time

__all__ = ["STATEMENT_HTML", "html_rows"]

_PAGE = 1000

# Localized names of the sections and columns brokersync reads (lower case).
_SECTIONS = {
    "positions": "positions",
    "posizioni": "positions",
    "positionen": "positions",
    "posiciones": "positions",
    "closed transactions:": "closed",
    "closed transactions": "closed",
    "orders": "other",
    "ordini": "other",
    "deals": "other",
    "operazioni": "other",
    "open trades:": "other",
    "working orders:": "other",
    "summary:": "other",
    "results": "other",
    "risultati": "other",
}
_COLUMNS = {
    "time": "time",
    "ora": "time",
    "zeit": "time",
    "hora": "time",
    "open time": "time",
    "close time": "time",
    "position": "ticket",
    "posizione": "ticket",
    "posición": "ticket",
    "ticket": "ticket",
    "deal": "ticket",
    "symbol": "symbol",
    "simbolo": "symbol",
    "símbolo": "symbol",
    "item": "symbol",
    "type": "type",
    "tipo": "type",
    "typ": "type",
    "volume": "volume",
    "volumen": "volume",
    "size": "volume",
    "price": "price",
    "prezzo": "price",
    "preis": "price",
    "precio": "price",
    "commission": "commission",
    "commissione": "commission",
    "kommission": "commission",
    "comisión": "commission",
    "swap": "swap",
    "profit": "profit",
    "profitto": "profit",
    "gewinn": "profit",
    "beneficio": "profit",
}
_TYPES = {
    "buy": Direction.LONG,
    "sell": Direction.SHORT,
    "acquista": Direction.LONG,
    "vendi": Direction.SHORT,
    "kaufen": Direction.LONG,
    "verkaufen": Direction.SHORT,
    "compra": Direction.LONG,
    "venta": Direction.SHORT,
}


class _Rows(HTMLParser):
    """Collects table rows (lists of cell texts) as the HTML streams in."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._span = 1

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
            span = dict(attrs).get("colspan") or "1"
            self._span = int(span) if span.isdigit() else 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._row.extend([""] * (min(self._span, 50) - 1))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def html_rows(source: FileSource) -> Iterator[tuple[int, list[str]]]:
    """Yield the table rows of an HTML report as ``(line, cells)``, read line by line (bounded memory)."""
    parser = _Rows()
    for line in source.lines():
        parser.feed(line)
        for row in parser.rows:
            yield source.line, row
        parser.rows.clear()
    parser.close()
    for row in parser.rows:
        yield source.line, row


def _sniff(head: str) -> bool:
    lower = head.lower()
    markers = ("metatrader", "reporthistory", "trade history report", "statement:", "closed transactions")
    return "<html" in lower[:4096] and any(marker in lower for marker in markers)


def _header_map(cells: list[str]) -> dict[str, list[int]]:
    names: dict[str, list[int]] = {}
    for index, cell in enumerate(cells):
        name = _COLUMNS.get(cell.strip().lower())
        if name:
            names.setdefault(name, []).append(index)
    return names


def _parse(source: FileSource) -> Iterator[TradePage]:
    tz = str(source.options.get("server_timezone") or "") or source.require_timezone("MetaTrader statement")
    currency = str(source.options.get("currency") or "")
    account = source.account_id or str(source.options.get("account") or "")
    section: str | None = None
    columns: dict[str, list[int]] | None = None
    seen_section = False
    batch: list[Trade] = []
    for line, cells in html_rows(source):
        filled = [c for c in cells if c]
        if not filled:
            continue
        if len(filled) == 1 and filled[0].lower() in _SECTIONS:
            section, columns = _SECTIONS[filled[0].lower()], None
            seen_section = True
            continue
        if section is None:
            account, currency = _header_facts(filled, account, currency)
        if section not in ("positions", "closed"):
            continue
        if columns is None:
            columns = _header_map(cells)
            needed = ("time", "ticket", "symbol", "type", "volume", "price", "profit")
            missing = [n for n in needed if n not in columns]
            if missing or len(columns["time"]) < 2 or len(columns["price"]) < 2:
                raise FileFormatError(
                    f"{source.name}: line {line}: the {section} section's header lacks {', '.join(missing) or 'times'}"
                    f"; found {', '.join(filled)}"
                )
            continue
        if len(filled) < 8:
            continue  # a balance/credit row or a section total
        try:
            trade = _trade(cells, columns, tz=tz, currency=currency or "USD", account=account, line=line)
        except (ValueError, TypeError, IndexError) as exc:
            source.problem(line, str(exc))
            continue
        if trade is not None:
            batch.append(trade)
        if len(batch) >= _PAGE:
            yield TradePage(records=batch)
            batch = []
    if not seen_section:
        raise FileFormatError(f"{source.name}: no Positions (MT5) or Closed Transactions (MT4) section found")
    if batch:
        yield TradePage(records=batch)


def _header_facts(cells: list[str], account: str, currency: str) -> tuple[str, str]:
    """Read the account number and deposit currency from the report's header rows (MT4 and MT5 layouts)."""
    for index, cell in enumerate(cells):
        label, _, rest = cell.partition(":")
        label = label.strip().lower()
        value = rest.strip() or (cells[index + 1] if index + 1 < len(cells) else "")
        if label in ("account", "conto", "konto", "cuenta") and value and not account:
            account = value.split()[0]
            if "(" in value and not currency:  # MT5: "12345678 (USD, Broker-Server, real, Hedge)"
                currency = value.split("(", 1)[1].split(",")[0].strip()
        elif label in ("currency", "valuta", "währung", "divisa") and value and not currency:
            currency = value.split()[0]
    return account, currency


def _trade(
    cells: list[str], columns: dict[str, list[int]], *, tz: str, currency: str, account: str, line: int
) -> Trade | None:
    def cell(name: str, which: int = 0) -> str:
        return cells[columns[name][which]]

    kind = cell("type").strip().lower()
    if kind not in _TYPES:
        return None  # balance, credit, cancelled pending orders: not trades

    def number(text: str, field: str) -> Decimal:
        return parse_decimal(text.replace(" ", ""), field=field)

    commission = (
        number(cell("commission"), "Commission")
        if "commission" in columns and not is_missing(cell("commission"))
        else Decimal(0)
    )
    swap = cell("swap") if "swap" in columns else ""
    if not account:
        raise ValueError("the statement does not name the account: give it with --account")
    return Trade(
        broker_trade_id=cell("ticket"),
        account_id=account,
        symbol=cell("symbol").upper(),
        direction=_TYPES[kind],
        opened_at=parse_time(cell("time", 0), tz=tz),
        closed_at=parse_time(cell("time", 1), tz=tz),
        entry_price=number(cell("price", 0), "Price"),
        exit_price=number(cell("price", 1), "Price"),
        quantity=number(cell("volume"), "Volume"),
        realized_pnl=number(cell("profit"), "Profit"),
        fees=-commission,
        currency=currency,
        raw={"cells": cells, "swap": swap, "server_timezone": tz, "_line": line},
    )


STATEMENT_HTML = FileFormat(
    name="metatrader-html",
    description="MetaTrader 4/5 account statement (HTML): closed positions as the terminal paired them",
    extensions=(".htm", ".html"),
    sniff=_sniff,
    parse=_parse,
    needs_timezone=True,
)
