"""One page of a paged listing, and the plumbing the paging helpers share (see :mod:`brokersync._paging`)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

from brokersync.errors import BrokerApiError, PaginationError

if TYPE_CHECKING:
    import httpx

__all__ = ["Extractor", "Page", "Pager", "Parse", "extract", "fingerprint", "json_decimal"]

Extractor = str | Callable[[Any], Any] | None
Parse = Callable[["httpx.Response"], Any]


@attrs.frozen(kw_only=True)
class Page:
    """One page of a paged listing.

    Attributes:
        records: The page's records (for time windows: without those already yielded).
        body: The parsed answer (JSON with numbers as ``Decimal``, unless ``parse=`` says otherwise).
        response: The HTTP response.
        number: 1 for the first page of the listing.
        cursor: Where the listing resumes after this page: the next cursor/token, the next link,
            the next offset as text, or (time windows) the ISO time the next request starts at.
            ``None`` on the last page of cursor, link and offset listings.
        until: Time windows: everything before this time has been yielded.
    """

    records: list[Any]
    body: Any
    response: httpx.Response
    number: int
    cursor: str | None = None
    until: dt.datetime | None = None


def json_decimal(response: httpx.Response) -> Any:
    """The JSON body with fractional numbers as ``Decimal`` (money never goes through float)."""
    return json.loads(response.text, parse_float=Decimal) if response.content else None


def extract(body: Any, where: Extractor) -> Any:
    """Read ``where`` from ``body``: a dotted key path (``"data.items"``), a callable, or ``None`` (the body)."""
    if where is None:
        return body
    if callable(where):
        return where(body)
    value = body
    for part in where.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def fingerprint(records: Sequence[Any]) -> str:
    """A digest of a page's records: the same records twice in a row mean the listing loops."""
    text = json.dumps(records, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class Pager:
    """The plumbing the paging helpers share, for any client with an ``async request(method, url, **kwargs)``."""

    broker: str
    connection_id: str | None = None

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:  # pragma: no cover - the host's
        raise NotImplementedError

    # -- shared plumbing -----------------------------------------------------------------------

    def _paging_error(self, what: str, url: str, detail: str) -> PaginationError:
        return PaginationError(
            f"broker {self.broker!r}: paging {what} of {url} {detail}",
            broker=self.broker,
            connection_id=self.connection_id,
        )

    def _records(self, body: Any, where: Extractor, url: str, number: int) -> list[Any]:
        value = extract(body, where)
        if value is None and where is not None and not callable(where) and isinstance(body, Mapping):
            return []  # a missing list on a page means an empty page (several brokers omit it)
        if not isinstance(value, list):
            raise BrokerApiError(
                f"broker {self.broker!r}: page {number} of {url} has no list of records at "
                f"{where if isinstance(where, str) else 'the body'} (got {type(value).__name__})",
                broker=self.broker,
                connection_id=self.connection_id,
            )
        return value

    def _capped(self, what: str, url: str, max_pages: int | None, number: int) -> None:
        if max_pages is not None and number >= max_pages:
            raise self._paging_error(
                what,
                url,
                f"reached max_pages={max_pages} while the broker still has pages; raise max_pages or "
                "narrow the request (the helper never stops silently with data left)",
            )

    def _warn_depth(self, url: str, start: dt.datetime, floor: dt.datetime) -> None:
        log = getattr(self, "_log", None)
        if log is not None:
            log.warning(
                "paging {url}: the broker keeps history back to {floor} only; nothing before it can be "
                "fetched (asked from {start})",
                url=url,
                floor=floor.isoformat(),
                start=start.isoformat(),
            )
