"""Paging by time windows on ``ctx.http`` (:meth:`TimePaging.pages_by_time`), see :mod:`brokersync._paging`."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from brokersync._page import Extractor, Page, Pager, Parse, json_decimal

__all__ = ["TimePaging"]


class TimePaging(Pager):
    """The time-window helper; :class:`~brokersync._paging.PagingMixin` adds the other shapes."""

    # -- time windows --------------------------------------------------------------------------

    async def pages_by_time(
        self,
        url: str,
        *,
        records: Extractor,
        timestamp: Callable[[Any], dt.datetime],
        record_id: Callable[[Any], str],
        window_params: Callable[[dt.datetime, dt.datetime], Mapping[str, Any]],
        start: dt.datetime | None,
        end: dt.datetime | None = None,
        max_window: dt.timedelta | None = None,
        history_depth: dt.timedelta | None = None,
        limit: int | None = None,
        method: str = "GET",
        params: Mapping[str, Any] | None = None,
        parse: Parse | None = None,
        max_pages: int | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[Page]:
        """Read ``[start, end)`` in windows no longer than ``max_window``, each to its end.

        A page holding ``limit`` records may not be all of its window: the window is read again
        from the page's last timestamp (inclusive, so records sharing that timestamp are not
        skipped) and the records already yielded are dropped by ``record_id``.

        Args:
            url: The list endpoint.
            records: Where the page's records are (see :meth:`pages_by_cursor`).
            timestamp: A record's time (tz-aware), the one the broker filters on.
            record_id: A record's unique id (to drop records already yielded).
            window_params: The query parameters for a window ``(from, to)``, e.g.
                ``lambda a, b: {"from": int(a.timestamp() * 1000), "to": int(b.timestamp() * 1000)}``.
            start: The first time wanted; ``None``: as far back as ``history_depth`` reaches
                (required without ``history_depth``).
            end: The end (exclusive); default now.
            max_window: The longest window the broker accepts (``None``: one window).
            history_depth: How far back the broker keeps data; an earlier ``start`` is moved up to
                it with a warning in the log (the broker has nothing older).
            limit: The most records the broker returns per answer (its page size); ``None`` when
                a window always comes whole.
            method: The HTTP method.
            params: Query parameters sent with every page.
            parse: Parse the response (default: JSON with ``Decimal`` numbers).
            max_pages: See :meth:`pages_by_cursor`.
            **kwargs: Other :meth:`request` arguments.

        Yields:
            One :class:`Page` per answer; ``page.until``: everything before it was yielded, and
            ``page.cursor`` its ISO text (store it to resume from there).

        Raises:
            PaginationError: More than ``limit`` records share one timestamp (re-reading cannot
                get past them), a time moved backwards, or ``max_pages`` with pages left.
        """
        parse = parse or json_decimal
        end = (end or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
        floor = end - history_depth if history_depth is not None else None
        if start is None:
            if floor is None:
                raise ValueError("pages_by_time needs start, or history_depth to know how far back to go")
            start = floor
        start = start.astimezone(dt.UTC)
        if floor is not None and start < floor:
            self._warn_depth(url, start, floor)
            start = floor
        if max_window is not None and max_window <= dt.timedelta(0):
            raise ValueError(f"max_window must be positive, got {max_window}")
        number = 0
        window_start = start
        while window_start < end:
            window_end = min(end, window_start + max_window) if max_window is not None else end
            at = window_start
            boundary_ids: set[str] = set()
            while True:
                self._capped("by time", url, max_pages, number)
                sent = {**(params or {}), **window_params(at, window_end)}
                response = await self.request(method, url, params=sent, **kwargs)
                number += 1
                body = parse(response)
                page_records = self._records(body, records, url, number)
                full = limit is not None and len(page_records) >= limit
                fresh = [r for r in page_records if record_id(r) not in boundary_ids]
                times = [timestamp(r) for r in page_records]
                last = max(times) if times else None
                if last is not None and last < at:
                    raise self._paging_error(
                        "by time", url, f"page {number} asked from {at.isoformat()} returned records before it"
                    )
                if full and last is not None and (last == at or not fresh):
                    # Re-reading from the same time would return the same full page again.
                    raise self._paging_error(
                        "by time",
                        url,
                        f"more than {limit} records share the time {last.isoformat()}: re-reading from it "
                        "cannot get past them; lower max_window or ask the broker for a larger page",
                    )
                if full and last is not None:
                    # Read again from the last timestamp itself (not last + 1): records sharing it may follow.
                    boundary_ids = {record_id(r) for r in page_records if timestamp(r) == last}
                    at = last
                    yield Page(
                        records=fresh, body=body, response=response, number=number, cursor=at.isoformat(), until=at
                    )
                    continue
                yield Page(
                    records=fresh,
                    body=body,
                    response=response,
                    number=number,
                    cursor=window_end.isoformat(),
                    until=window_end,
                )
                break
            window_start = window_end
