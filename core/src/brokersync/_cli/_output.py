"""Shared output helpers for CLI commands: rich tables for people, JSON for programs."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import click

__all__ = ["echo_json", "fail", "print_table"]

#: Set by ``--wide``: tables are printed at their natural width, nothing cut off.
WIDE = False


def _default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def echo_json(data: Any) -> None:
    """Print ``data`` as indented JSON (Decimals and datetimes as strings)."""
    click.echo(json.dumps(data, indent=2, default=_default, sort_keys=False))


def print_table(
    title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, styles: dict[str, str] | None = None
) -> None:
    """Print a rich table (with ``--wide``: no column is wrapped or cut off)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        if WIDE:
            table.add_column(column, style=(styles or {}).get(column), no_wrap=True, overflow="fold")
        else:
            table.add_column(column, style=(styles or {}).get(column))
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    if WIDE:
        Console(width=100_000).print(table, crop=False)
    else:
        Console().print(table)


def fail(message: str, *, code: int = 1) -> None:
    """Print ``message`` to stderr and exit with ``code`` (1 failures, 2 usage/configuration)."""
    click.echo(f"Error: {message}", err=True)
    raise SystemExit(code)
