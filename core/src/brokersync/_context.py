"""The context object the core hands to every plugin hook."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol

import attrs

from brokersync._clocks import WallClock
from brokersync._redact import redact
from brokersync.results import SyncWarning

if TYPE_CHECKING:
    import httpx
    from loguru import Logger

    from brokersync._page import Extractor, Page, Parse

__all__ = ["BrokerContext", "HttpClient"]


class HttpClient(Protocol):
    """The request interface plugins use (``ctx.http``); implemented by the core's client.

    Relative URLs are resolved against the environment's base URL. Every request goes through the
    broker's rate limiter, circuit breaker and retry policy; failures arrive as
    :mod:`brokersync.errors` exceptions, never as httpx exceptions.
    """

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send a request; ``kwargs`` are httpx's (``params``, ``json``, ``headers``, ...)."""
        ...

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        """Send a GET request."""
        ...

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        """Send a POST request."""
        ...

    # The paging helpers; brokersync._paging.PagingMixin implements and documents them.
    def pages_by_cursor(
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
        """Follow a cursor (next-page token) to the end of a listing."""
        ...

    def pages_by_link(
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
        """Follow next links (in the body or the ``Link`` header) to the end of a listing."""
        ...

    def pages_by_offset(
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
        """Page with offset and limit until a short or empty page."""
        ...

    def pages_by_time(
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
        """Read a time range in windows, keeping records that share a timestamp at page boundaries."""
        ...


#: A warning's message is cut to this many characters (a warning is one line, not a dump).
_MAX_MESSAGE = 1000


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@attrs.define(kw_only=True)
class BrokerContext:
    """What a hook gets from the core besides its own arguments.

    Attributes:
        broker: The broker key.
        environment: The environment name (e.g. ``"live"`` or ``"demo"``).
        base_url: The environment's base URL (from the metadata, or overridden by configuration).
        options: Plugin options from configuration (non-secret).
        http: The core's HTTP client: use it for every request.
        logger: A loguru logger bound to this broker (and connection, in a sync).
        cache: Scratch space for one sync run, shared between hooks (e.g. ``get_accounts`` can
            keep a statement that ``get_trades`` reads).
        connection_id: The connection being synced, when there is one.
        clock: Returns the current tz-aware UTC time (injected in tests).
        sleep: Awaitable sleep (injected in tests); use it for polling, never ``asyncio.sleep``.
        on_warning: Where :meth:`warn` delivers a warning; set by the core for a sync (the run
            collects them into ``SyncResult.warnings``). Plugins call :meth:`warn`, not this.
    """

    broker: str
    environment: str
    base_url: str
    options: Mapping[str, Any] = attrs.field(factory=dict)
    http: HttpClient
    logger: Logger
    cache: dict[str, Any] = attrs.field(factory=dict)
    connection_id: str | None = None
    clock: WallClock = _utcnow
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    on_warning: Callable[[SyncWarning], None] | None = attrs.field(default=None, repr=False)

    def now(self) -> dt.datetime:
        """The current tz-aware UTC time, from the injected clock."""
        return self.clock()

    def warn(
        self, message: str, *, account_id: str | None = None, record_id: str | None = None, code: str | None = None
    ) -> None:
        """Report a data-quality warning to the user: something wrong or doubtful that fails no record.

        The warning is logged and, in a sync, kept in the run's ``SyncResult.warnings``, its audit
        row (``brokersync runs``) and the output of ``brokersync sync``; it does not change the
        run's status. Secrets in the text are masked. Use it for what the user should look at
        (a figure the broker reports that disagrees with brokersync's, a record the broker sent
        twice with different values); raise for what makes the data unusable, and report a record
        that cannot be normalized as invalid (the core does that for you).

        Args:
            message: What was noticed, in words the user understands (one line).
            account_id: The broker account it concerns; in ``get_trades`` the core fills in the
                account being synced when this is ``None``.
            record_id: The broker's id of the record it concerns (a trade, an execution).
            code: A stable kind, namespaced by the plugin (e.g. ``"ibkr.unreadable_row"``), for
                code that filters warnings.

        Raises:
            TypeError: ``message`` is not a string.
            ValueError: ``message`` is empty.
        """
        if not isinstance(message, str):
            raise TypeError(f"BrokerContext.warn: message must be a string, got {type(message).__name__}")
        text = " ".join(redact(message).split())
        if not text:
            raise ValueError("BrokerContext.warn: message is empty")
        warning = SyncWarning(
            message=text[:_MAX_MESSAGE],
            account_id=account_id,
            record_id=redact(record_id) if record_id is not None else None,
            code=code,
        )
        self.logger.warning("warning: {warning}", warning=str(warning), code=code)
        if self.on_warning is not None:
            self.on_warning(warning)
