"""``brokersync import``: read broker export files into a connection, with a progress bar by bytes."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from brokersync._cli._engine import engine_options, json_option, parse_pairs, resolve_connection, run, to_jsonable
from brokersync._cli._output import echo_json

if TYPE_CHECKING:
    from brokersync._engine import BrokerSync
    from brokersync.results import ImportProgress, ImportResult, RecordSource, StoredTrade


def _source_json(source: RecordSource) -> dict[str, Any]:
    return {k: v for k, v in (("kind", source.kind), ("file", source.file), ("sha256", source.sha256),
                              ("format", source.format), ("line", source.line)) if v is not None}  # fmt: skip


def source_fields(trade: StoredTrade) -> dict[str, Any]:
    """A listed trade's source for ``trades --json``: ``source``, and ``opening_source`` for a paired round trip."""
    fields = {"source": _source_json(trade.source)}
    if trade.opening_source is not None:
        fields["opening_source"] = _source_json(trade.opening_source)
    return fields


def source_text(trade: StoredTrade) -> str:
    """A listed trade's source for the table: ``api``, ``fills.csv:12``, or a paired round trip's two fills."""
    opening, closing = trade.opening_source, trade.source
    if opening is None or opening == closing or (opening.kind == closing.kind == "api"):
        return str(closing)
    if opening.kind == closing.kind == "file" and opening.file == closing.file:
        return f"{closing.file}:{opening.line},{closing.line}"
    return f"{opening} + {closing}"


def _options(specs: tuple[str, ...], map_spec: str | None, map_file: str | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for key, value in parse_pairs(specs, "--option", "NAME=VALUE"):
        target = options
        *parents, leaf = key.split(".")
        for parent in parents:  # multipliers.ZZ=7 -> {"multipliers": {"ZZ": "7"}}
            target = target.setdefault(parent, {})
        target[leaf] = value
    if map_file is not None:
        try:
            options["map"] = tomllib.loads(Path(map_file).read_text(encoding="utf-8")).get("columns", {})
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise click.BadParameter(f"cannot read the column mapping: {exc}", param_hint="--map-file") from None
    elif map_spec is not None:
        options["map"] = map_spec
    return options


@click.command(name="import")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--connection", "connection_id", help="Import into this connection (an id or a unique prefix).")
@click.option("--broker", help="Import into your file-only connection to this broker (created on first use).")
@click.option("--account", help="The broker account, for files that do not name it.")
@click.option("--format", "format_name", help="The file format (default: detected); `--list-formats` shows them.")
@click.option("--timezone", help="The IANA zone of the file's times when the file does not say, e.g. America/Chicago.")
@click.option("--option", "option_specs", multiple=True, metavar="NAME=VALUE", help="A format option (repeatable).")
@click.option("--map", "map_spec", help="Generic CSV column mapping, e.g. 'Date=Trade Date,Price=Fill Price'.")
@click.option("--map-file", help='Generic CSV column mapping as TOML: a [columns] table of OURS = "THEIRS".')
@click.option("--dry-run", is_flag=True, help="Read and validate the files; store nothing.")
@engine_options
@json_option
def import_(
    files: tuple[str, ...],
    connection_id: str | None,
    broker: str | None,
    account: str | None,
    format_name: str | None,
    timezone: str | None,
    option_specs: tuple[str, ...],
    map_spec: str | None,
    map_file: str | None,
    dry_run: bool,
    database_url: str | None,
    user_id: str,
    as_json: bool,
) -> None:
    """Import broker export files (statements, CSV exports) into a connection.

    Give --connection (an API or file-only connection) or --broker (your file-only connection to that
    broker). Re-importing a file imports nothing; files and API syncs of one account converge.
    """
    if (connection_id is None) == (broker is None):
        raise click.UsageError("give --connection ID or --broker KEY")
    options = _options(option_specs, map_spec, map_file)
    show_progress = not as_json and sys.stderr.isatty()

    async def go(engine: BrokerSync) -> list[ImportResult]:
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

        target = await resolve_connection(engine, connection_id, user_id) if connection_id else None
        results = []
        with Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(), disable=not show_progress
        ) as progress:
            for name in files:
                task = progress.add_task(f"{Path(name).name}", total=None)

                def on_progress(p: ImportProgress, task: Any = task) -> None:
                    progress.update(
                        task, total=p.bytes_total, completed=p.bytes_done, description=f"{p.file} ({p.phase})"
                    )

                results.append(
                    await engine.import_file(
                        name,
                        user_id=user_id,
                        connection_id=target,
                        broker=broker,
                        account=account,
                        format=format_name,
                        timezone=timezone,
                        options=options,
                        dry_run=dry_run,
                        on_progress=on_progress,
                    )
                )
        return results

    results = run(go, database_url)
    if as_json:
        echo_json(to_jsonable(results))
        return
    _summary(results)


def _summary(results: list[ImportResult]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Import" + (" (dry run: nothing stored)" if results and results[0].dry_run else ""))
    for column in ("file", "format", "rows", "new", "same", "updated", "cancelled", "invalid"):
        table.add_column(column, justify="left" if column in ("file", "format") else "right")
    for r in results:
        table.add_row(
            r.file, r.format, str(r.rows), str(r.imported), str(r.skipped), str(r.updated), str(r.cancelled),
            str(r.invalid if not r.dry_run else r.problem_count),
        )  # fmt: skip
    console = Console()
    console.print(table)
    for r in results:
        for problem in r.problems[:20]:
            console.print(f"{r.file}: {problem}", style="yellow", highlight=False)
        if r.problem_count > 20:
            console.print(f"{r.file}: ... and {r.problem_count - 20} more problems", style="yellow")
