"""The file-format suite's base: what the author configures, and the plumbing every check uses.

A check parses a sample (or a file derived from one: a row repeated, garbled, a 50 MB line added)
exactly as ``brokersync import`` does: through :class:`~brokersync.files.FileSource` on a stream,
here a :class:`CountingStream` that records how much of the file was read when each page came
out, and validates each record with the core's own normalizers.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

import attrs

from brokersync.errors import PluginError, RecordValidationError
from brokersync.files import FileFormat, FileProblem, FileSource
from brokersync.models import Execution, ExecutionCancellation, Trade, TradeCancellation, TradePage
from brokersync.testing._rules import ConformanceFailure

__all__ = ["CountingStream", "FileSample", "FileSuiteBase", "Parsed", "Record"]

_DIGITS = re.compile(r"[0-9]")
# More decimal places than any export has: the value went through a float.
_FLOAT_NOISE_PLACES = 12
_MONEY_FIELDS = ("price", "quantity", "fees", "entry_price", "exit_price", "realized_pnl")


@attrs.frozen(kw_only=True)
class FileSample:
    """One export file the format must read, with what the import would be told.

    Attributes:
        data: The file's bytes, as the broker writes them (BOM, UTF-16, CRLF and all).
        name: The file name shown in messages.
        timezone: The ``--timezone`` to import it with (formats whose times carry no zone).
        options: Import options (``--option``), e.g. a MetaTrader server's zone or multipliers.
        account_id: The ``--account`` to import it with, when the file does not name its account.
        trades: How many round trips it holds (``None``: not checked).
        executions: How many executions it holds (``None``: not checked).
        cancellations: How many cancellations it holds (``None``: not checked).
    """

    data: bytes
    name: str = "sample"
    timezone: str | None = None
    options: Mapping[str, Any] = attrs.field(factory=dict)
    account_id: str | None = None
    trades: int | None = None
    executions: int | None = None
    cancellations: int | None = None


class CountingStream(io.RawIOBase):
    """A read-only byte stream over generated chunks that counts what was read, and how.

    Args:
        chunks: The file's content, in pieces (generated lazily for very large files).
    """

    def __init__(self, chunks: Iterator[bytes] | bytes) -> None:
        self._chunks = iter([chunks]) if isinstance(chunks, bytes) else chunks
        self._buffer = b""
        self.bytes_read = 0
        #: ``read()`` calls without a size: each reads the whole rest of the file into memory.
        self.whole_reads = 0

    def readable(self) -> bool:
        return True

    def _fill(self, size: int) -> None:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                return
            self._buffer += chunk

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            self.whole_reads += 1
            size = -1
        self._fill(size)
        if size < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        self.bytes_read += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


@attrs.frozen
class Record:
    """One record a page held: its kind, the record, its id and the line it came from."""

    kind: str  # "trade", "execution" or "cancellation"
    item: Any
    ident: str | None
    line: int | None


def _get(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, Mapping) else getattr(item, name, None)


def _record(kind: str, item: Any) -> Record:
    ident = _get(item, "broker_trade_id") if kind == "trade" else _get(item, "broker_execution_id")
    if kind == "cancellation" and ident is None:
        ident = _get(item, "broker_trade_id")
    raw = _get(item, "raw")
    line = None
    if isinstance(raw, Mapping):  # the documented raw["_line"], else an integer raw["line"]
        line = raw.get("_line", raw.get("line"))
    found = line if isinstance(line, int) and not isinstance(line, bool) else None
    return Record(kind, item, None if ident is None else str(ident), found)


@attrs.define
class Parsed:
    """What parsing one file gave: its pages, its problems, and how the file was read."""

    pages: list[TradePage] = attrs.Factory(list)
    problems: list[FileProblem] = attrs.Factory(list)
    error: Exception | None = None
    read_at_first_page: int | None = None
    bytes_read: int = 0
    whole_reads: int = 0

    @property
    def records(self) -> list[Record]:
        """Every record of every page, in order."""
        found = []
        for page in self.pages:
            found += [_record("trade", r) for r in page.records]
            found += [_record("execution", e) for e in page.executions]
            found += [_record("cancellation", c) for c in page.cancellations]
        return found


class FileSuiteBase:
    """Configuration and plumbing shared by the file-format checks (see :class:`FileFormatConformance`)."""

    broker_key: str | None = None
    plugin: Any = None
    format_name: str | None = None
    file_format: FileFormat | None = None
    #: Size of the generated file that ``file-parse-streams`` reads.
    streaming_bytes: int = 4 * 1024 * 1024
    #: Why the format must read the whole file before its first page (``None``: it streams). Then
    #: ``file-parse-streams`` checks only that it reads in pieces; document the limit for users.
    reads_whole_file: str | None = None

    # -- what the author provides ----------------------------------------------------------------

    def samples(self) -> Sequence[FileSample]:
        """Good files of this format (every row valid), written from the broker's documented layout."""
        raise NotImplementedError(f"{type(self).__name__} must implement samples()")

    def foreign_samples(self) -> Sequence[bytes]:
        """Files of other formats (e.g. the plugin's other exports) this format must not claim or read."""
        return ()

    def corrupt_row(self, line: str) -> str:
        """A malformed copy of a record's line (default: every digit replaced by ``x``)."""
        return _DIGITS.sub("x", line)

    # -- plumbing --------------------------------------------------------------------------------

    @property
    def _broker(self) -> str:
        return self.broker_key or "brokersync"

    def _fail(self, rule: str, detail: str, record: Any = None) -> ConformanceFailure:
        return ConformanceFailure(rule, self._broker, f"format {self._name}: {detail}", record=record)

    @property
    def _name(self) -> str:
        name = self.file_format.name if self.file_format is not None else self.format_name
        return repr(name)

    def _formats(self, rule: str) -> tuple[FileFormat, ...]:
        """The formats a connection of this broker can import: the plugin's, then brokersync's generic CSV."""
        from brokersync._generic_csv import GENERIC_CSV

        own: tuple[FileFormat, ...]
        if self.broker_key is None:
            own = (self.file_format,) if self.file_format is not None else ()
        else:
            from brokersync.testing._harness import load_registry

            try:
                own = load_registry(self.broker_key, self.plugin).get(self.broker_key).file_formats()
            except (PluginError, ValueError) as exc:
                raise self._fail(rule, f"the plugin's formats do not load: {exc}") from exc
        return (*own, *(f for f in (GENERIC_CSV,) if f.name not in {o.name for o in own}))

    def _format(self, rule: str) -> FileFormat:
        if self.broker_key is None:
            if self.file_format is None:
                raise self._fail(rule, "set broker_key and format_name, or file_format")
            return self.file_format
        wanted = self.format_name or (self.file_format.name if self.file_format is not None else None)
        for fmt in self._formats(rule):
            if fmt.name == wanted:
                return fmt
        raise self._fail(rule, f"the plugin's file_formats() returns no format named {wanted!r}")

    def _samples(self, rule: str) -> Sequence[FileSample]:
        samples = self.samples()
        if not samples:
            raise self._fail(rule, "samples() returned no file: give at least one good export")
        return samples

    def _parse(
        self,
        fmt: FileFormat,
        sample: FileSample,
        content: Iterator[bytes] | bytes | None = None,
        *,
        first_page_only: bool = False,
    ) -> Parsed:
        """Parse ``content`` (default: the sample's bytes) as ``brokersync import --format`` would."""
        stream = CountingStream(sample.data if content is None else content)
        parsed = Parsed()
        try:
            source = FileSource(
                stream,  # type: ignore[arg-type]
                name=sample.name,
                timezone=sample.timezone,
                options=sample.options,
                account_id=sample.account_id,
            )
            for page in fmt.parse(source):
                if parsed.read_at_first_page is None:
                    parsed.read_at_first_page = stream.bytes_read
                if not isinstance(page, TradePage):
                    raise TypeError(f"parse() yielded a {type(page).__name__}, expected TradePage")  # noqa: TRY301
                parsed.pages.append(page)
                if first_page_only:
                    break
            parsed.problems = list(source.problems)
        except Exception as exc:  # FileFormatError is the refusal the rules expect; anything else they report
            parsed.error = exc
        parsed.bytes_read = stream.bytes_read
        parsed.whole_reads = stream.whole_reads
        return parsed

    def _parsed_ok(self, rule: str, fmt: FileFormat, sample: FileSample, content: bytes | None = None) -> Parsed:
        parsed = self._parse(fmt, sample, content)
        if parsed.error is not None:
            what = "the sample" if content is None else "a copy of the sample"
            raise self._fail(
                rule, f"parsing {what} {sample.name!r} failed: {type(parsed.error).__name__}: {parsed.error}"
            )
        return parsed

    def _invalid(self, sample: FileSample, record: Record) -> str | None:
        """Why the core would refuse ``record`` (``None``: it is valid)."""
        from brokersync._converters import normalize_trade
        from brokersync._normalize_executions import normalize_any_cancellation, normalize_execution

        account = _get(record.item, "account_id") or sample.account_id
        if not account:
            return "the record names no account and the sample gives no account_id (--account)"
        normalize: Callable[..., Any] = {
            "trade": normalize_trade,
            "execution": normalize_execution,
            "cancellation": normalize_any_cancellation,
        }[record.kind]
        try:
            valid = normalize(record.item, account_id=str(account))
        except RecordValidationError as exc:
            return exc.message
        for name in _MONEY_FIELDS:
            value = getattr(valid, name, None)
            if isinstance(value, Decimal) and -int(value.as_tuple().exponent) > _FLOAT_NOISE_PLACES:
                return f"{name}={value} has float noise: parse the text with brokersync.parsing.parse_decimal"
        if not isinstance(valid, Trade | Execution | TradeCancellation | ExecutionCancellation):
            return f"normalized into a {type(valid).__name__}"
        return None
