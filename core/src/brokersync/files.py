"""Export file formats: how a plugin reads a broker's downloaded statements and CSV exports.

A broker plugin declares the files it reads with the optional ``file_formats`` hook::

    from brokersync.files import FileFormat, FileSource

    def _parse_fills(source: FileSource) -> Iterator[TradePage]:
        for row in source.csv_rows(required=("Fill ID", "Time", "Side", "Qty", "Price")):
            ...
            yield TradePage(executions=[...])

    @brokersync.hookimpl
    def file_formats() -> list[FileFormat]:
        return [FileFormat(name="acme-fills", description="Acme fills CSV", extensions=(".csv",),
                           sniff=lambda head: head.startswith("Fill ID,"), parse=_parse_fills)]

The core opens the file, detects its format by calling each format's ``sniff`` on the decoded
first bytes, and stores the pages ``parse`` yields through the same path as ``get_trades`` pages:
dedupe, pairing, cancellations and audit are the same code. :class:`FileSource` does the hard
parts of real-world files: byte-order marks and UTF-16 (MetaTrader), comma/semicolon/tab
delimiters, a cap on line length (a 50 MB line is refused, not read into memory), line numbers
for every row, a problem list for malformed rows, and :meth:`FileSource.content_id` for rows
without broker ids (deterministic from the row's content and its occurrence among identical rows,
so two identical fills stay two fills and a re-import imports nothing).
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import io
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import IO, Any

import attrs

from brokersync.errors import ConfigurationError
from brokersync.models import TradePage

__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "SNIFF_BYTES",
    "FileFormat",
    "FileFormatError",
    "FileProblem",
    "FileSource",
    "decode_head",
    "detect_format",
]

SNIFF_BYTES = 64 * 1024
"""How many bytes of a file ``sniff`` sees (decoded)."""

DEFAULT_MAX_LINE_BYTES = 1024 * 1024
"""A text line longer than this is refused: no broker export has one, and reading it would take memory."""

_BINARY_CONTROL = set(range(0, 9)) | {11, 12} | set(range(14, 32))


class FileFormatError(ConfigurationError):
    """A file is not in the format it was read as, or cannot be read at all (exit code 2 in the CLI)."""


@attrs.frozen(kw_only=True)
class FileProblem:
    """A row the parser could not read: reported with its line number, the rest of the file is imported."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


def _as_extensions(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class FileFormat:
    """One export file format a plugin reads.

    Attributes:
        name: A short unique name, e.g. ``"ibkr-flex-xml"`` (what ``--format`` takes).
        description: One line for listings, e.g. ``"IBKR Flex query XML (Activity or Trade Confirmation)"``.
        extensions: File name endings this format uses (``(".csv",)``); informational.
        sniff: Called with the decoded first :data:`SNIFF_BYTES` of a file; returns whether the
            file is in this format. Cheap and strict: look for the header row or root element.
        parse: Called with a :class:`FileSource`; yields :class:`~brokersync.TradePage` objects
            (executions, round trips, cancellations, as from ``get_trades``). Report malformed rows
            with :meth:`FileSource.problem` and go on; raise :class:`FileFormatError` when the file
            as a whole cannot be read.
        needs_timezone: The file's times carry no zone: the importer must be told one
            (``--timezone``); it is never assumed.
        binary: ``parse`` reads ``source.binary`` (XML) rather than text lines.
        pair_executions: The core pairs this format's executions into round trips (``False`` for a
            broker that pairs by itself and whose round trips arrive in another export or the API).
    """

    name: str
    description: str
    extensions: tuple[str, ...] = attrs.field(default=(), converter=_as_extensions)
    sniff: Callable[[str], bool] = attrs.field(repr=False)
    parse: Callable[[FileSource], Iterable[TradePage]] = attrs.field(repr=False)
    needs_timezone: bool = False
    binary: bool = False
    pair_executions: bool = True


def _encoding_of(head: bytes) -> str:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    # UTF-16 without a BOM: every other byte of ASCII text is zero.
    sample = head[:200]
    if len(sample) >= 4 and sample[1::2].count(0) > len(sample) // 4 and sample[0::2].count(0) == 0:
        return "utf-16-le"
    if len(sample) >= 4 and sample[0::2].count(0) > len(sample) // 4 and sample[1::2].count(0) == 0:
        return "utf-16-be"
    return "utf-8"


def decode_head(head: bytes) -> tuple[str, str]:
    """Decode the first bytes of a file for sniffing; returns ``(text, encoding)``.

    Raises:
        FileFormatError: when the bytes are binary (control characters, not text).
    """
    encoding = _encoding_of(head)
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    text = decoder.decode(head, final=False)
    if encoding == "utf-8" and text.count("\ufffd") > max(8, len(text) // 100):
        text = head.decode("cp1252", errors="replace")
        encoding = "cp1252"
    controls = sum(1 for ch in text[:4096] if ord(ch) in _BINARY_CONTROL)
    if "\x00" in text or controls > 4:
        raise FileFormatError("the file is binary, not a text export (no broker format matches)")
    return text, encoding


def detect_format(head: str, formats: Sequence[FileFormat]) -> list[FileFormat]:
    """Return the formats whose ``sniff`` accepts ``head`` (a sniff that raises counts as no)."""
    matches = []
    for fmt in formats:
        try:
            if fmt.sniff(head):
                matches.append(fmt)
        except Exception:  # noqa: S112 - a faulty sniff must not stop detection of the others
            continue
    return matches


class _LimitedLines:
    """Text lines of a binary stream, decoded incrementally, each at most ``max_bytes`` long."""

    def __init__(self, stream: IO[bytes], encoding: str, max_bytes: int, name: str) -> None:
        self._stream = stream
        self._decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
        self._max = max_bytes
        self._name = name
        self.line = 0
        self.bytes_read = 0

    def __iter__(self) -> Iterator[str]:
        pending = ""
        while True:
            chunk = self._stream.read(256 * 1024)
            self.bytes_read += len(chunk)
            try:
                text = self._decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                raise FileFormatError(
                    f"{self._name}: line {self.line + 1} is not valid text ({exc.reason}); "
                    "save the export as UTF-8 or UTF-16"
                ) from None
            pending += text
            lines = pending.splitlines(keepends=True)
            pending = ""
            if lines and not lines[-1].endswith(("\n", "\r")) and chunk:
                pending = lines.pop()
                if len(pending) > self._max:
                    raise FileFormatError(
                        f"{self._name}: line {self.line + 1} is longer than {self._max:,} characters; "
                        "this is not a broker export"
                    )
            for line in lines:
                self.line += 1
                if len(line) > self._max:
                    raise FileFormatError(
                        f"{self._name}: line {self.line} is longer than {self._max:,} characters; "
                        "this is not a broker export"
                    )
                yield line
            if not chunk:
                if pending:
                    self.line += 1
                    yield pending
                return


class FileSource:
    """An export file being imported, as a format's ``parse`` sees it.

    Attributes:
        name: The file's name (for messages and the records' source).
        sha256: The SHA-256 of the whole file, hex (known once the file has been read; see :meth:`finish`).
        timezone: The zone the user gave for times without an offset (``None``: not given).
        options: Format or connection options (e.g. a MetaTrader server's time zone).
        account_id: The broker account the user attached the file to, when the file does not say.
        problems: The malformed rows reported so far.
    """

    def __init__(
        self,
        stream: IO[bytes],
        *,
        name: str,
        timezone: str | None = None,
        options: Mapping[str, Any] | None = None,
        account_id: str | None = None,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    ) -> None:
        self._stream = _HashingReader(stream)
        self.name = name
        self.timezone = timezone
        self.options = dict(options or {})
        self.account_id = account_id
        self.problems: list[FileProblem] = []
        self._max_line = max_line_bytes
        self._occurrences: Counter[str] = Counter()
        self._lines: _LimitedLines | None = None
        self.delimiter: str | None = None
        head = self._stream.peek(SNIFF_BYTES)
        self.head, self.encoding = decode_head(head)

    @property
    def binary(self) -> IO[bytes]:
        """The file as bytes (for XML formats)."""
        return self._stream  # type: ignore[return-value]

    @property
    def decimal_comma(self) -> bool:
        """Whether numbers use a decimal comma: the ``decimal_comma`` option, else a semicolon-delimited file."""
        option = self.options.get("decimal_comma")
        if option is not None:
            return bool(option)
        return self.delimiter == ";"

    @property
    def bytes_read(self) -> int:
        """How many bytes have been read so far (for progress)."""
        return self._stream.position

    @property
    def line(self) -> int:
        """The number of the text line read last (1-based)."""
        return self._lines.line if self._lines else 0

    @property
    def sha256(self) -> str:
        """The SHA-256 of the bytes read so far; of the whole file once parsing is done."""
        return self._stream.hexdigest()

    def lines(self) -> Iterator[str]:
        """Iterate over the file's text lines, decoded (BOM and UTF-16 handled), each within the length cap."""
        self._lines = _LimitedLines(self._stream, self.encoding, self._max_line, self.name)  # type: ignore[arg-type]
        return iter(self._lines)

    def csv_rows(
        self,
        *,
        delimiter: str | None = None,
        header: Callable[[list[str]], bool] | None = None,
        required: Sequence[str] = (),
    ) -> Iterator[tuple[int, dict[str, str]]]:
        r"""Iterate over CSV rows as ``(line, {column: text})``, after the header row.

        Args:
            delimiter: ``","``, ``";"`` or ``"\t"``; sniffed from the header line when ``None``.
            header: Picks the header row (default: the first non-empty row). Rows before it are skipped.
            required: Columns the header must have; a missing one is a :class:`FileFormatError`
                naming what was expected and what was found.

        Rows with fewer cells than the header are padded; blank rows are skipped; a row holding a
        NUL byte (binary data) is reported as a problem and skipped.
        """
        columns: list[str] | None = None
        lines = self.lines()
        for line in lines:
            if not line.strip():
                continue
            if "\x00" in line:  # binary data past the sniffed start: never imported as text
                if columns is None:
                    raise FileFormatError(f"{self.name}: line {self.line} holds binary data; this is not a CSV export")
                self.problem(self.line, "holds binary data (a NUL byte); the row was not read")
                continue
            if delimiter is None:
                delimiter = _sniff_delimiter(line)
            self.delimiter = delimiter
            if '"' in line:
                cells = [c.strip() for c in next(csv.reader([line], delimiter=delimiter))]
            else:  # no quoting: what csv.reader gives, without building a reader per line
                cells = [c.strip() for c in line.rstrip("\r\n").split(delimiter)]
            if columns is None:
                if header is not None and not header(cells):
                    continue
                columns = cells
                missing = [c for c in required if c not in columns]
                if missing:
                    raise FileFormatError(
                        f"{self.name}: expected the column(s) {', '.join(missing)} in the header, "
                        f"found {', '.join(c for c in columns if c) or 'no columns'}"
                    )
                continue
            if len(cells) < len(columns):
                cells += [""] * (len(columns) - len(cells))
            yield self.line, dict(zip(columns, cells, strict=False))
        if columns is None:
            raise FileFormatError(f"{self.name}: no header row found (expected {', '.join(required) or 'a header'})")

    def problem(self, line: int, reason: str) -> None:
        """Report a malformed row (with its line number); the import goes on with the next row."""
        self.problems.append(FileProblem(line=line, reason=reason))

    def content_id(self, prefix: str, *fields: object) -> str:
        """Return a deterministic id for a row that has no broker id.

        Built from the row's normalised content and its occurrence among identical rows of this
        file, so two identical fills in the same second stay two fills, and importing the same file
        again gives the same ids (and imports nothing).
        """
        content = "\x1f".join(_normalise(f) for f in fields)
        self._occurrences[content] += 1
        digest = hashlib.sha256(f"{content}\x1e{self._occurrences[content]}".encode()).hexdigest()
        return f"{prefix}:{digest[:32]}"

    def require_timezone(self, fmt: str) -> str:
        """Return the zone the user gave, or raise a :class:`FileFormatError` saying the format needs one."""
        if not self.timezone:
            raise FileFormatError(
                f"{self.name}: {fmt} files carry no time zone; say which one with --timezone (e.g. America/New_York)"
            )
        return self.timezone


def _normalise(value: object) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    return " ".join(str(value).split()).upper() if value is not None else ""


def _sniff_delimiter(line: str) -> str:
    counts = {d: line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


class _HashingReader(io.RawIOBase):
    """A read-only stream that hashes what passes through it and can peek at its start."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._hash = hashlib.sha256()
        self._buffer = b""
        self.position = 0

    def readable(self) -> bool:
        return True

    def peek(self, size: int) -> bytes:
        while len(self._buffer) < size:
            chunk = self._stream.read(size - len(self._buffer))
            if not chunk:
                break
            self._buffer += chunk
        return self._buffer[:size]

    def read(self, size: int = -1) -> bytes:
        if self._buffer:
            if size < 0 or size >= len(self._buffer):
                data, self._buffer = self._buffer, b""
                if size < 0:
                    data += self._stream.read()
            else:
                data, self._buffer = self._buffer[:size], self._buffer[size:]
        else:
            data = self._stream.read(size)
        self._hash.update(data)
        self.position += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()
