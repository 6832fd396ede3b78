"""Paging helpers on ``ctx.http``: the four shapes broker APIs page their lists in.

* :meth:`PagingMixin.pages_by_cursor`: the answer names the next page (a cursor or page token);
* :meth:`PagingMixin.pages_by_link`: the answer carries the next page's URL (in the body or a
  ``Link: <...>; rel="next"`` header);
* :meth:`PagingMixin.pages_by_offset`: ``offset`` + ``limit`` query parameters;
* :meth:`PagingMixin.pages_by_time`: time windows no longer than the broker allows, from a start
  no older than its history depth, each window read to the end.

Every helper sends through the client's own :meth:`request` (limiter, retry, circuit breaker,
re-authentication apply to each page), yields one :class:`Page` per answer, and:

* stops on an empty page or when the broker says there is no next page;
* raises :class:`~brokersync.errors.PaginationError` when a page repeats (the same cursor, link,
  or the same records again): a loop, whether the broker's or the plugin's, is never followed
  forever and never ends silently;
* never caps silently: ``max_pages`` reached while the broker still has pages is an error;
* keeps records that share a timestamp at a page boundary: a time page that is full is read again
  *from* its last timestamp (not ``last + 1``, which skips the records sharing it, ccxt #16505),
  and the records already yielded are dropped by id.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

from brokersync._page import Extractor, Page, Parse, extract, fingerprint, json_decimal
from brokersync._paging_time import TimePaging

if TYPE_CHECKING:
    import httpx

__all__ = ["PagingMixin"]


_LINK_NEXT = re.compile(r"<([^>]+)>\s*;[^,]*\brel=\"?next\"?", re.IGNORECASE)


def link_header_next(response: httpx.Response) -> str | None:
    """The ``rel="next"`` URL of a ``Link`` header, if any."""
    match = _LINK_NEXT.search(response.headers.get("Link", ""))
    return match.group(1) if match else None


class PagingMixin(TimePaging):
    """The paging helpers, for any client with an ``async request(method, url, **kwargs)``.

    Mixed into the core client (``ctx.http``); every page is one ``self.request`` call, so the
    rate limiter, retry, circuit breaker and re-authentication apply to each page.
    """

    # -- cursor / next-page token --------------------------------------------------------------

    async def pages_by_cursor(
        self,
        url: str,
        *,
        records: Extractor,
        next_cursor: Extractor,
        cursor_param: str = "cursor",
        cursor_in: Literal["params", "json"] = "params",
        cursor: str | None = None,
        method: str = "GET",
        params: Mapping[str, Any] | None = None,
        json_body: Mapping[str, Any] | None = None,
        has_more: Extractor = None,
        parse: Parse | None = None,
        max_pages: int | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[Page]:
        """Follow a cursor (next-page token) until the broker names no next page.

        Args:
            url: The list endpoint (relative to the base URL, or absolute).
            records: Where the page's records are: a dotted key path, a callable on the body, or
                ``None`` (the body is the list).
            next_cursor: Where the next cursor is (key path or callable); empty or missing ends.
            cursor_param: The query parameter (or JSON field) the cursor is sent in.
            cursor_in: ``"params"`` (query string) or ``"json"`` (request body field).
            cursor: Start from this cursor (e.g. the one stored by the last sync).
            method: The HTTP method.
            params: Query parameters sent with every page.
            json_body: JSON body sent with every page (``cursor_in="json"`` adds the cursor).
            has_more: Where a "more pages" flag is, for brokers that always send a cursor; a
                false flag ends the listing.
            parse: Parse the response (default: JSON with ``Decimal`` numbers).
            max_pages: Raise :class:`~brokersync.errors.PaginationError` after this many pages
                when there are still more (default: no limit).
            **kwargs: Other :meth:`request` arguments (``headers``, ``rate_limit``, ...).

        Yields:
            One :class:`Page` per answer; ``page.cursor`` resumes after it (``None`` at the end).

        Raises:
            PaginationError: The broker answered a cursor already followed, or the same records
                twice in a row (a loop), or ``max_pages`` was reached with pages left.
        """
        parse = parse or json_decimal
        seen: set[str] = set()
        previous: str | None = None
        number = 0
        while True:
            sent_params = dict(params or {})
            sent_json = dict(json_body) if json_body is not None else None
            if cursor is not None:
                if cursor_in == "json":
                    sent_json = {**(sent_json or {}), cursor_param: cursor}
                else:
                    sent_params[cursor_param] = cursor
                seen.add(cursor)
            extra: dict[str, Any] = {"params": sent_params} if sent_params else {}
            if sent_json is not None:
                extra["json"] = sent_json
            response = await self.request(method, url, **extra, **kwargs)
            number += 1
            body = parse(response)
            page_records = self._records(body, records, url, number)
            raw_next = extract(body, next_cursor)
            following = str(raw_next) if raw_next not in (None, "") else None
            more = extract(body, has_more) if has_more is not None else True
            if not more:
                following = None
            if page_records:
                digest = fingerprint(page_records)
                if digest == previous:
                    raise self._paging_error(
                        "by cursor", url, f"got the same records on page {number} as on page {number - 1}: a loop"
                    )
                previous = digest
            if following is not None and following in seen:
                raise self._paging_error(
                    "by cursor",
                    url,
                    f"page {number} names cursor {following[:40]!r} as the next page, which was already "
                    "requested: the cursor does not advance (check that the plugin reads the right field)",
                )
            ends = following is None or not page_records
            yield Page(records=page_records, body=body, response=response, number=number, cursor=following)
            if ends:
                return
            self._capped("by cursor", url, max_pages, number)
            cursor = following

    # -- next link -----------------------------------------------------------------------------

    async def pages_by_link(
        self,
        url: str,
        *,
        records: Extractor,
        next_link: Extractor = None,
        method: str = "GET",
        params: Mapping[str, Any] | None = None,
        parse: Parse | None = None,
        max_pages: int | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[Page]:
        """Follow next links until the broker gives none.

        Args:
            url: The first page's URL.
            records: Where the page's records are (see :meth:`pages_by_cursor`).
            next_link: Where the next page's URL is in the body (key path or callable);
                ``None`` reads the ``Link: <url>; rel="next"`` header. Relative links resolve
                against the current page's URL.
            method: The HTTP method.
            params: Query parameters of the first page (next links carry their own).
            parse: Parse the response (default: JSON with ``Decimal`` numbers).
            max_pages: See :meth:`pages_by_cursor`.
            **kwargs: Other :meth:`request` arguments.

        Yields:
            One :class:`Page` per answer; ``page.cursor`` is the next link (``None`` at the end).

        Raises:
            PaginationError: A link already followed, the same records twice, or ``max_pages``.
        """
        parse = parse or json_decimal
        seen: set[str] = set()
        previous: str | None = None
        number = 0
        current = url
        extra: dict[str, Any] = {"params": dict(params)} if params else {}
        while True:
            response = await self.request(method, current, **extra, **kwargs)
            seen.add(str(response.request.url))
            number += 1
            body = parse(response)
            page_records = self._records(body, records, current, number)
            raw = link_header_next(response) if next_link is None else extract(body, next_link)
            following = str(response.request.url.join(str(raw))) if raw not in (None, "") else None
            if page_records:
                digest = fingerprint(page_records)
                if digest == previous:
                    raise self._paging_error(
                        "by link", url, f"got the same records on page {number} as on page {number - 1}: a loop"
                    )
                previous = digest
            if following is not None and following in seen:
                raise self._paging_error(
                    "by link", url, f"page {number} links to {following} as the next page, already followed: a loop"
                )
            ends = following is None or not page_records
            yield Page(records=page_records, body=body, response=response, number=number, cursor=following)
            if ends:
                return
            self._capped("by link", url, max_pages, number)
            assert following is not None
            current, extra = following, {}

    # -- offset + limit ------------------------------------------------------------------------

    async def pages_by_offset(
        self,
        url: str,
        *,
        records: Extractor,
        limit: int,
        offset_param: str = "offset",
        limit_param: str = "limit",
        start: int = 0,
        total: Extractor = None,
        method: str = "GET",
        params: Mapping[str, Any] | None = None,
        parse: Parse | None = None,
        max_pages: int | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[Page]:
        """Page with offset and limit until a short page, an empty page, or ``total`` records.

        Args:
            url: The list endpoint.
            records: Where the page's records are (see :meth:`pages_by_cursor`).
            limit: Records per page (sent as ``limit_param``); a page with fewer is the last.
            offset_param: The offset query parameter.
            limit_param: The limit query parameter.
            start: The first offset.
            total: Where the broker says how many records there are (key path or callable), if
                it does; the listing ends at that count.
            method: The HTTP method.
            params: Query parameters sent with every page.
            parse: Parse the response (default: JSON with ``Decimal`` numbers).
            max_pages: See :meth:`pages_by_cursor`.
            **kwargs: Other :meth:`request` arguments.

        Yields:
            One :class:`Page` per answer; ``page.cursor`` is the next offset (``None`` at the end).

        Raises:
            PaginationError: The same records twice in a row (the broker ignores the offset), a
                page longer than ``limit`` (the broker ignores the limit: the offsets would skip
                records), or ``max_pages`` with pages left.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        parse = parse or json_decimal
        previous: str | None = None
        offset = start
        number = 0
        while True:
            sent = {**(params or {}), offset_param: offset, limit_param: limit}
            response = await self.request(method, url, params=sent, **kwargs)
            number += 1
            body = parse(response)
            page_records = self._records(body, records, url, number)
            if len(page_records) > limit:
                raise self._paging_error(
                    "by offset",
                    url,
                    f"page {number} has {len(page_records)} records although {limit_param}={limit} was asked: the "
                    "broker caps or ignores the limit differently; pass the broker's own page size as limit",
                )
            if page_records:
                digest = fingerprint(page_records)
                if digest == previous:
                    raise self._paging_error(
                        "by offset",
                        url,
                        f"got the same records at offset {offset} as at offset {offset - limit}: the broker "
                        f"ignores {offset_param!r}",
                    )
                previous = digest
            offset += len(page_records)
            count = extract(body, total) if total is not None else None
            if count is not None and page_records and len(page_records) < limit and offset < int(count):
                raise self._paging_error(
                    "by offset",
                    url,
                    f"page {number} has {len(page_records)} records although {limit_param}={limit} was asked and "
                    f"the broker counts {count}: it caps the page size at {len(page_records)}; pass that as limit",
                )
            ends = len(page_records) < limit or (count is not None and offset >= int(count))
            yield Page(
                records=page_records,
                body=body,
                response=response,
                number=number,
                cursor=None if ends else str(offset),
            )
            if ends:
                return
            self._capped("by offset", url, max_pages, number)
