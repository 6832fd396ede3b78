"""Import one export file into a connection: the same store path as a sync, one audit row per file.

The file is read twice, streaming both times: a first pass parses and validates every row (so a
file that turns out to be of another format, binary, or broken half-way stores nothing, and
``--dry-run`` is this pass alone); the second pass stores the pages exactly like ``get_trades``
pages (dedupe, corrections, busts, pairing of executions), never touching the API sync's cursors
or watermarks. Rows without broker ids get ids from their content and occurrence, so
re-importing a file imports nothing and overlapping exports converge.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import attrs

from brokersync._broker import Broker, TradeBatch
from brokersync._engine._context import RunContext
from brokersync._engine._finish import record_failure, record_success
from brokersync._engine._job import JobOutcome
from brokersync._engine._parts import EngineParts
from brokersync._engine._start import FILE_ONLY, start_run
from brokersync._generic_csv import GENERIC_CSV
from brokersync._store import ConnectionRow, UpsertCounts
from brokersync.errors import ConfigurationError
from brokersync.files import FileFormat, FileFormatError, FileSource, detect_format
from brokersync.models import Account, TradePage
from brokersync.results import ImportProgress, ImportResult, SyncRecordError, SyncTrigger

__all__ = ["FILE_ENVIRONMENT", "choose_format", "formats_for", "import_file"]

#: The environment of a file-only connection: it has no credentials and is never synced by API.
FILE_ENVIRONMENT = FILE_ONLY
_MAX_PROBLEMS = 100


def formats_for(facade: Broker) -> tuple[FileFormat, ...]:
    """The formats a connection's files may be in: its plugin's, then brokersync's generic CSV."""
    return (*facade.file_formats(), GENERIC_CSV)


def choose_format(source: FileSource, formats: Iterable[FileFormat], wanted: str | None) -> FileFormat:
    """The format named by ``wanted``, else the one format whose sniff accepts the file.

    The broker's own formats come first: brokersync's generic CSV (whose sniff accepts any header
    with a date, symbol, quantity and price) is chosen only when none of them recognises the file.

    Raises:
        FileFormatError: unknown name, no match (listing the installed formats), or several
            matches (listing them and asking for ``--format``).
    """
    known = list(formats)
    names = ", ".join(f.name for f in known)
    if wanted is not None:
        for fmt in known:
            if fmt.name == wanted:
                return fmt
        raise FileFormatError(f"no file format {wanted!r} for this connection; the formats are {names}")
    matches = detect_format(source.head, known)
    matches = [f for f in matches if f is not GENERIC_CSV] or matches
    if not matches:
        raise FileFormatError(f"{source.name} is not in a format brokersync knows here; the formats are {names}")
    if len(matches) > 1:
        raise FileFormatError(f"{source.name} could be {', '.join(f.name for f in matches)}: say which with --format")
    return matches[0]


@attrs.define
class _Tally:
    counts: UpsertCounts = UpsertCounts()
    cancelled: int = 0
    rows: int = 0
    batches: int = 0
    errors: list[SyncRecordError] = attrs.Factory(list)
    error_count: int = 0
    accounts: set[str] = attrs.Factory(set)
    round_trips: int = 0


def _split(page: TradePage, default_account: str | None) -> dict[str, TradePage]:
    """A file's page may hold several accounts: one page per account (get_trades pages have one)."""
    groups: dict[str, dict[str, list[Any]]] = defaultdict(lambda: {"r": [], "e": [], "c": []})

    def account_of(record: Any) -> str:
        value = record.get("account_id") if isinstance(record, dict) else getattr(record, "account_id", None)
        value = value or default_account
        if not value:
            raise FileFormatError("a row names no account: give the file's account with --account")
        return str(value)

    for record in page.records:
        groups[account_of(record)]["r"].append(record)
    for execution in page.executions:
        groups[account_of(execution)]["e"].append(execution)
    for cancellation in page.cancellations:
        groups[account_of(cancellation)]["c"].append(cancellation)
    return {
        account: TradePage(records=parts["r"], executions=parts["e"], cancellations=parts["c"])
        for account, parts in groups.items()
    }


async def _api_trade_ids(parts: EngineParts, connection_id: str, accounts: Iterable[str]) -> dict[str, set[str]]:
    """Per account, the ids of the stored round trips that arrived by API (no file source in their raw)."""
    ids: dict[str, set[str]] = {}
    for account in accounts:
        found = ids.setdefault(account, set())
        async for trade in parts.store.iter_trades(connection_ids=[connection_id], account_id=account):
            if "brokersync_source" not in trade.raw and trade.raw.get("source") != "paired":
                found.add(trade.broker_trade_id)
    return ids


def _open(path: Path) -> IO[bytes]:
    try:
        return path.open("rb")
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror or exc}") from None


def _line_of(raw: Any) -> int | None:
    """The file line a format recorded in a record's raw: ``_line`` (documented), else an integer ``line``."""
    line = raw.get("_line")
    if line is None:
        line = raw.get("line")
    return line if isinstance(line, int) and not isinstance(line, bool) else None


def _tag(record: Any, source: dict[str, Any]) -> Any:
    """``record`` with ``raw["brokersync_source"]`` set: the file's name, SHA-256, format and line.

    A model object (``Execution``, ``Trade``) owns its ``raw`` (its converter copies it into a new
    dict), so the stamp goes into that dict in place: no second object per row.
    """
    if isinstance(record, dict):
        raw = dict(record.get("raw") or {k: v for k, v in record.items() if k != "raw"})
        return {**record, "raw": {**raw, "brokersync_source": {**source, "line": _line_of(raw)}}}
    owned = getattr(record, "raw", None)
    if type(owned) is dict:
        owned["brokersync_source"] = {**source, "line": _line_of(owned)}
        return record
    copied = dict(owned or {})
    return attrs.evolve(record, raw={**copied, "brokersync_source": {**source, "line": _line_of(copied)}})


def _with_source(page: TradePage, source: dict[str, Any]) -> TradePage:
    """Each record keeps where it came from: the file's name, SHA-256, format and line (in ``raw``)."""
    executions = [_tag(e, source) for e in page.executions]
    if not page.records and all(new is old for new, old in zip(executions, page.executions, strict=True)):
        return page  # the executions were stamped in place
    return attrs.evolve(page, records=[_tag(r, source) for r in page.records], executions=executions)


async def _pages(
    facade: Broker,
    path: Path,
    sha256: str,
    fmt: FileFormat,
    make_source: Callable[[IO[bytes]], FileSource],
    tally: _Tally,
    on_page: Callable[[str, TradeBatch, FileSource], Any] | None,
    progress: Callable[[int], Any] | None,
) -> FileSource:
    """Parse and validate the whole file; hand each account's normalized page to ``on_page``."""
    with _open(path) as stream:
        source = make_source(stream)
        stamp = {"kind": "file", "file": path.name, "sha256": sha256, "format": fmt.name}
        for page in fmt.parse(source):
            if on_page is not None:  # the checking pass stores nothing: no stamp
                page = _with_source(page, stamp)
            for account, part in _split(page, source.account_id).items():
                batch = facade.normalize_page(part, account_id=account)
                tally.accounts.add(account)
                tally.rows += len(batch.trades) + len(batch.executions)
                tally.round_trips += len(batch.trades)
                if on_page is not None:
                    await on_page(account, batch, source)
            if progress is not None:
                await progress(source.bytes_read)
        while source.binary.read(1 << 20):  # the rest (a trailer the parser skipped): the hash covers it all
            pass
    return source


async def import_file(
    parts: EngineParts,
    facade: Broker,
    row: ConnectionRow,
    *,
    path: Path,
    user_id: str,
    account: str | None,
    format_name: str | None,
    timezone: str | None,
    options: dict[str, Any],
    dry_run: bool,
    on_progress: Callable[[ImportProgress], Any] | None,
) -> ImportResult:
    """Import ``path`` into the connection ``row`` (see the module docstring)."""
    size = path.stat().st_size

    def make_source(stream: IO[bytes]) -> FileSource:
        return FileSource(stream, name=path.name, timezone=timezone, options=options, account_id=account)

    with _open(path) as stream:
        fmt = choose_format(make_source(stream), formats_for(facade), format_name)

    async def progress(phase: str, done: int) -> None:
        if on_progress is not None:
            result = on_progress(ImportProgress(file=path.name, phase=phase, bytes_done=done, bytes_total=size))
            if hasattr(result, "__await__"):
                await result

    async def checked(done: int) -> None:
        await progress("check", done)

    check = _Tally()
    source = await _pages(facade, path, "", fmt, make_source, check, None, checked)
    sha256 = source.sha256  # the checking pass read every byte
    problems = tuple(str(p) for p in source.problems)
    if check.rows == 0:
        raise FileFormatError(
            f"{path.name}: no valid row in this {fmt.name} file"
            + (f" (first problem: {problems[0]})" if problems else "")
        )
    if dry_run:
        return ImportResult(
            file=path.name, sha256=sha256, format=fmt.name, connection_id=row.id, broker=row.broker, run_id=None,
            dry_run=True, rows=check.rows, problems=problems[:_MAX_PROBLEMS], problem_count=len(problems),
            accounts=tuple(sorted(check.accounts)),
        )  # fmt: skip

    ctx: RunContext = await start_run(parts, row.id, user_id, SyncTrigger.IMPORT, None, None)
    tally = _Tally()
    try:
        await parts.store.sync_accounts(row.id, [Account(id=a) for a in sorted(check.accounts)], parts.clock())

        api_ids = await _api_trade_ids(parts, row.id, check.accounts) if check.round_trips else {}

        async def store(account_id: str, batch: TradeBatch, src: FileSource) -> None:
            now = parts.clock()
            # A round trip the API already stored is not overwritten by a file (exports often lack
            # the fees or precision the API gives): it counts as skipped.
            known = api_ids.get(account_id, set())
            trades = tuple(t for t in batch.trades if t.broker_trade_id not in known)
            kept_back = len(batch.trades) - len(trades)
            counts = await parts.store.store_batch(
                connection_id=row.id,
                account_id=account_id,
                batch=trades,
                now=now,
                lease=(parts.holder, now + parts.settings.lease_ttl),
                cancellations=batch.cancellations,
                executions=batch.executions,
                execution_cancellations=batch.execution_cancellations,
                pair=fmt.pair_executions,
            )
            if kept_back:
                counts = attrs.evolve(counts, skipped=counts.skipped + kept_back)
            tally.counts = tally.counts + counts
            tally.cancelled += counts.cancelled
            tally.batches += 1
            for error in batch.errors:
                tally.error_count += 1
                if len(tally.errors) < parts.settings.max_record_errors:
                    tally.errors.append(
                        SyncRecordError(
                            account_id=account_id, broker_trade_id=error.broker_trade_id, reason=error.reason
                        )
                    )

        async def stored(done: int) -> None:
            await progress("store", done)

        await _pages(facade, path, sha256, fmt, make_source, tally, store, stored)
        for problem in problems:
            tally.error_count += 1
            if len(tally.errors) < parts.settings.max_record_errors:
                tally.errors.append(SyncRecordError(account_id=account or "", broker_trade_id=None, reason=problem))
        outcome = JobOutcome(
            counts=tally.counts,
            cancelled=tally.cancelled,
            errors=tuple(tally.errors),
            error_count=tally.error_count,
            accounts=len(check.accounts),
        )
    except BaseException as exc:  # failed, cancelled or interrupted: recorded, then raised
        await record_failure(parts, ctx, exc)
        raise
    result = await record_success(parts, ctx, outcome)
    return ImportResult(
        file=path.name, sha256=sha256, format=fmt.name, connection_id=row.id, broker=row.broker,
        run_id=result.run_id, dry_run=False, rows=check.rows, imported=result.imported, skipped=result.skipped,
        updated=result.updated, cancelled=result.cancelled, problems=problems[:_MAX_PROBLEMS],
        problem_count=len(problems), invalid=result.error_count, accounts=tuple(sorted(check.accounts)),
        status=result.status,
    )  # fmt: skip
