"""Where a stored record came from: :class:`RecordSource` (re-exported by :mod:`brokersync.results`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["RecordSource"]


@attrs.frozen(kw_only=True)
class RecordSource:
    """Where a stored record came from: the broker's API, or a row of an imported export file.

    A record keeps the source of the arrival that stored its current values: the first one. The
    same record arriving again unchanged from elsewhere (an API sync after an import of the same
    fills, or the other way round) is counted ``skipped`` and keeps it; an arrival that changes the
    record (a correction, or the API's fees over an export that has none) replaces it.

    Attributes:
        kind: ``"api"`` or ``"file"``.
        file: The file's name (``kind == "file"``).
        sha256: The SHA-256 of the whole file, hex.
        format: The format it was read as (e.g. ``"ibkr-flex-xml"``).
        line: The line of the file the record was read from, where the format knows it.
    """

    kind: str
    file: str | None = None
    sha256: str | None = None
    format: str | None = None
    line: int | None = None

    @classmethod
    def of_raw(cls, raw: Mapping[str, Any] | None) -> RecordSource:
        """Return the source recorded in a stored raw record (``brokersync_source``); ``api`` when there is none."""
        found = raw.get("brokersync_source") if isinstance(raw, Mapping) else None
        if not isinstance(found, Mapping) or found.get("kind") != "file":
            return _API
        line = found.get("line")
        return cls(
            kind="file",
            file=str(found.get("file") or "") or None,
            sha256=str(found.get("sha256") or "") or None,
            format=str(found.get("format") or "") or None,
            line=line if isinstance(line, int) and not isinstance(line, bool) else None,
        )

    def __str__(self) -> str:
        if self.kind != "file":
            return self.kind
        return f"{self.file}:{self.line}" if self.line is not None else str(self.file)


_API = RecordSource(kind="api")
