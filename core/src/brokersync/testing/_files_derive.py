"""Files the file-format suite derives from a sample: rows repeated, copied, garbled; hostile additions.

Rows are found through the records' ``raw["_line"]`` (the line each record came from, which the
core stores as the record's source row). Text is decoded and encoded again in the sample's own
encoding (BOM, UTF-16), so a derived file differs from the sample only where it should.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator

from brokersync.files import SNIFF_BYTES, decode_head

__all__ = ["BILLION_LAUGHS", "Lines", "long_line_file", "with_doctype"]

#: A DOCTYPE declaring nested entities (expanded: 10^9 "lol") and an external entity.
BILLION_LAUGHS = (
    '<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
    + "".join(f' <!ENTITY lol{n} "{f"&lol{n - 1};" * 10 if n > 1 else "&lol;" * 10}">\n' for n in range(1, 10))
    + ' <!ENTITY xxe SYSTEM "file:///etc/hostname">\n]>\n'
)


class Lines:
    """A sample's text as lines (ends kept), in the sample's encoding."""

    def __init__(self, data: bytes) -> None:
        _, self.encoding = decode_head(data[:SNIFF_BYTES])
        self.lines = data.decode(self.encoding).splitlines(keepends=True)
        if self.lines and not self.lines[-1].endswith(("\n", "\r")):
            self.lines[-1] += "\n"

    def row(self, line: int) -> str:
        """Line ``line`` (1-based), with its end."""
        return self.lines[line - 1]

    def encode(self, lines: list[str]) -> bytes:
        """``lines`` as the sample's bytes."""
        return "".join(lines).encode(self.encoding)

    def inserted(self, after: int, *rows: str) -> bytes:
        """The file with ``rows`` inserted after line ``after``."""
        return self.encode([*self.lines[:after], *rows, *self.lines[after:]])

    def replaced(self, line: int, row: str) -> bytes:
        """The file with line ``line`` replaced by ``row``."""
        return self.encode([*self.lines[: line - 1], row, *self.lines[line:]])

    def repeated(self, first: int, last: int, size: int) -> bytes:
        """The file with lines ``first``..``last`` repeated after ``last`` until it holds ``size`` bytes."""
        block = "".join(self.lines[first - 1 : last])
        copies = size // max(1, len(block.encode(self.encoding))) + 1
        return self.encode([*self.lines[:last], block * copies, *self.lines[last:]])


def long_line_file(data: bytes, megabytes: int) -> Iterator[bytes]:
    """The sample's first line, then a line of ``megabytes`` MiB (generated lazily), then the rest."""
    text = Lines(data)
    encoder = codecs.getincrementalencoder(text.encoding)()
    yield encoder.encode(text.lines[0] if text.lines else "")
    piece = encoder.encode("A" * (1024 * 1024))
    for _ in range(megabytes):
        yield piece
    yield encoder.encode("\n" + "".join(text.lines[1:]), final=True)


def with_doctype(data: bytes) -> tuple[bytes, bool]:
    """The sample with :data:`BILLION_LAUGHS` after its XML declaration (or first); and whether it is XML."""
    text = Lines(data)
    whole = "".join(text.lines)
    bom = "\ufeff" if whole.startswith("\ufeff") else ""
    body = whole.removeprefix(bom)
    stripped = body.lstrip()
    is_xml = stripped.startswith("<?xml")
    if is_xml:
        end = body.index("?>") + 2
        body = body[:end] + "\n" + BILLION_LAUGHS + body[end:].lstrip("\r\n")
    else:
        is_xml = stripped.startswith("<") and not stripped[:20].lower().startswith(("<!doctype html", "<html"))
        body = BILLION_LAUGHS + body
    return (bom + body).encode(text.encoding), is_xml
