"""The core HTTP client handed to plugins as ``ctx.http``.

Every attempt of every request goes: rate limiter -> circuit breaker -> send (with a total
timeout, following redirects) -> error mapping -> plugin ``validate_response`` -> one log line;
:func:`~brokersync._retry.with_retry` repeats the attempt for retryable failures. Each attempt,
retries included, takes a limiter slot, because the broker counts every request it receives.

Nothing from httpx escapes: transport errors, error statuses and httpx errors raised by a
plugin's ``validate_response`` all become :mod:`brokersync.errors` exceptions
(:mod:`brokersync._http_errors` maps them). The paging helpers come from
:mod:`brokersync._paging`; the token a request carries, and its renewal on 401, from
:mod:`brokersync._reauth`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import httpx

from brokersync._http_errors import HTTPX_ERRORS, map_response, map_transport_error
from brokersync._log import get_logger
from brokersync._metrics import RequestMetrics
from brokersync._paging import PagingMixin
from brokersync._redact import redact
from brokersync._resend import apply_change
from brokersync._retry import RetryContext, with_retry
from brokersync.errors import (
    BrokerAuthError,
    BrokerError,
    BrokerRateLimitError,
    BrokerTimeoutError,
    BrokerUnavailableError,
)

if TYPE_CHECKING:
    from brokersync._circuit import CircuitBreaker
    from brokersync._ratelimit import RateLimiter
    from brokersync._reauth import TokenSession
    from brokersync.models import RetryPolicy

__all__ = ["BrokerHttpClient"]

ResponseValidator = Callable[[httpx.Response], Awaitable[None] | None]

# Without a Retry-After, a 429 pauses the key for every process at least this long.
_DEFAULT_PAUSE = 1.0


class _RedactedRecords(logging.Filter):
    """httpx logs every request's full URL at INFO on the stdlib ``httpx`` logger, and some brokers
    take a secret in the query (IBKR Flex: ``?t=<token>``): mask secrets before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), ()
        return True


for _name in ("httpx", "httpcore"):
    _logger = logging.getLogger(_name)
    if not any(isinstance(f, _RedactedRecords) for f in _logger.filters):
        _logger.addFilter(_RedactedRecords())


class _SendSlot:
    """Takes a request's rate-limit slot when its first byte goes out, not before its connection opens.

    A broker counts requests when they arrive. A slot taken before connecting lets connection
    set-up (TCP, TLS, a proxy) delay one request into the next one's window: two requests declared
    a second apart could arrive 0.2 s apart. httpcore's ``trace`` extension calls this when the
    request headers are about to be written, on an open connection; the wait (if any) extends the
    attempt's timeout by as much.
    """

    def __init__(self, acquire: Callable[[], Awaitable[float]], record: Callable[[float], None]) -> None:
        self._acquire = acquire
        self._record = record
        self.taken = False
        self.deadline: asyncio.Timeout | None = None
        self.chained: Any = None
        self.failed: BaseException | None = None

    async def trace(self, event: str, info: dict[str, Any]) -> None:
        if self.chained is not None:
            await self.chained(event, info)
        if self.taken or not event.endswith("send_request_headers.started"):
            return
        self.taken = True
        try:
            waited = await self._acquire()
        except BaseException as exc:
            self.failed = exc  # our own limiter is full: not the broker's answer
            raise
        self._record(waited)
        deadline = self.deadline
        if waited and deadline is not None and deadline.when() is not None:
            deadline.reschedule(deadline.when() + waited)  # type: ignore[operator]


class BrokerHttpClient(PagingMixin):
    """An async HTTP client bound to one broker environment, with the resilience layer applied.

    Args:
        broker: The broker key (for error messages and logs).
        base_url: The environment's base URL; relative request URLs are resolved against it.
        transport: An httpx transport (tests pass ``httpx.MockTransport``); default: the network.
        timeout: Seconds per attempt, in total (connect, send, wait, read, redirects).
        headers: Default headers sent with every request.
        validate_response: The plugin's ``validate_response`` hook, called for every response.
        connection_id: The connection this client works for (for errors and logs).
        limiter: The broker's rate limiter (None: not limited).
        circuit: The broker's (or connection's) circuit breaker (None: none).
        retry: The retry policy (None: one attempt, no retry).
        metrics: Counters to update (default: a new :class:`RequestMetrics`, see :attr:`metrics`).
        sleep: Awaitable sleep for retry and limiter waits (injected in tests).
        clock: Monotonic seconds for the retry budget (injected in tests).
        wall_clock: Epoch seconds for ``Retry-After`` dates and rate-limit resets.
        max_redirects: Redirects followed per attempt.
        tokens: The facade's token session: attaches the current token and renews it on 401.
    """

    def __init__(
        self,
        *,
        broker: str,
        base_url: str,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        headers: dict[str, str] | None = None,
        validate_response: ResponseValidator | None = None,
        connection_id: str | None = None,
        limiter: RateLimiter | None = None,
        circuit: CircuitBreaker | None = None,
        retry: RetryPolicy | None = None,
        metrics: RequestMetrics | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        max_redirects: int = 5,
        tokens: TokenSession | None = None,
    ) -> None:
        self.broker = broker
        self.tokens = tokens
        # Network transports (httpcore) report when a request is written: take the limiter slot then.
        self._slot_at_send = (
            transport is None
            or isinstance(transport, httpx.AsyncHTTPTransport)
            or bool(getattr(transport, "reports_send_time", False))
        )
        self.connection_id = connection_id
        self.limiter = limiter
        self.circuit = circuit
        self.retry = retry
        self.metrics = metrics if metrics is not None else RequestMetrics()
        self._validate = validate_response
        self._timeout = timeout
        self._sleep = sleep
        self._clock = clock
        self._wall_clock = wall_clock
        self._max_redirects = max_redirects
        self._log = get_logger(broker=broker, connection_id=connection_id)
        # Redirects are followed here, not by httpx: httpx drops Authorization on a cross-host
        # redirect, and Tradovate answers 307 to an org-specific host that needs it.
        self._client = httpx.AsyncClient(
            base_url=base_url,
            transport=transport,
            timeout=timeout,
            headers=headers,
            follow_redirects=False,
            # A given transport carries every request (no proxy mounts from the environment around
            # it); without one, httpx's own transport honours proxy and certificate settings.
            trust_env=transport is None,
        )

    def __repr__(self) -> str:
        return f"BrokerHttpClient(broker={self.broker!r}, connection_id={self.connection_id!r})"

    # -- one attempt ---------------------------------------------------------------------------

    def _redirect(self, request: httpx.Request, response: httpx.Response) -> httpx.Request | None:
        try:
            url = request.url.join(response.headers["Location"])
        except (httpx.InvalidURL, KeyError):
            return None
        method = request.method
        status = response.status_code
        if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
            method = "GET"
        headers = httpx.Headers(request.headers)
        headers.pop("Host", None)
        headers.pop("Cookie", None)  # build_request adds the jar's cookies for the new URL, and only those
        content: bytes | None = None
        if status in (307, 308):
            try:
                content = request.read()
            except httpx.StreamError:
                return None  # a streamed body cannot be sent twice: hand the redirect to the plugin
        else:
            for name in ("Content-Length", "Content-Type", "Transfer-Encoding"):
                headers.pop(name, None)
        if request.url.scheme == "https" and url.scheme != "https":
            headers.pop("Authorization", None)  # never send a token over clear text
        return self._client.build_request(method, url, headers=headers, content=content, extensions=request.extensions)

    async def _send(
        self, method: str, url: str, kwargs: dict[str, Any], slot: _SendSlot | None = None
    ) -> httpx.Response:
        auth = kwargs.pop("auth", httpx.USE_CLIENT_DEFAULT)
        kwargs.pop("follow_redirects", None)
        if slot is not None:
            extensions = dict(kwargs.get("extensions") or {})
            slot.chained = extensions.get("trace")
            kwargs["extensions"] = {**extensions, "trace": slot.trace}
        try:
            async with asyncio.timeout(self._timeout) as deadline:
                if slot is not None:
                    slot.deadline = deadline
                request = self._client.build_request(method, url, **kwargs)
                for _ in range(self._max_redirects + 1):
                    self.metrics.requests += 1
                    response = await self._client.send(request, auth=auth)
                    following = self._redirect(request, response) if response.has_redirect_location else None
                    if following is None:
                        return response
                    await response.aclose()
                    request = following
                raise httpx.TooManyRedirects(f"more than {self._max_redirects} redirects", request=request)
        except HTTPX_ERRORS as exc:
            raise map_transport_error(exc, broker=self.broker, connection_id=self.connection_id) from exc
        except TimeoutError as exc:
            if not deadline.expired():
                raise
            raise BrokerTimeoutError(
                f"broker {self.broker!r} did not answer {method} {url} within {self._timeout:g} s",
                broker=self.broker,
                connection_id=self.connection_id,
            ) from exc

    async def send_once(self, method: str, url: str, *, attempt: int = 1, **kwargs: Any) -> httpx.Response:
        """One attempt, no retry: limiter, circuit breaker, send, error mapping, plugin checks, log."""
        rate_limit: str | None = kwargs.pop("rate_limit", None)
        cost: int = kwargs.pop("cost", 1)
        account_id: str | None = kwargs.pop("account_id", None)
        limiter = self.limiter
        if limiter is not None and account_id is not None:
            limiter = limiter.for_account(account_id)
        if self.circuit is not None and self.circuit.retry_after > 0:
            self.circuit.before_call()  # fail fast before taking a rate-limit slot
        slot: _SendSlot | None = None
        if limiter is not None:
            max_wait = self.retry.max_retry_after if self.retry is not None else None
            take = limiter

            async def acquire() -> float:
                return await take.acquire(cost, name=rate_limit, max_wait=max_wait)

            if self._slot_at_send:
                slot = _SendSlot(acquire, self.metrics.record_wait)
            else:
                self.metrics.record_wait(await acquire())
        if self.circuit is not None:
            self.circuit.before_call()
        started = time.perf_counter()
        response: httpx.Response | None = None
        error: BaseException | None = None
        try:
            response = await self._send(method, url, kwargs, slot)
            if limiter is not None:
                await limiter.observe(response.headers, now=self._wall_clock())
            if self._validate is not None and response.status_code >= 400:
                await self._plugin_error(response)
            map_response(response, broker=self.broker, connection_id=self.connection_id, now=self._wall_clock())
            if self._validate is not None:
                try:
                    outcome = self._validate(response)
                    if inspect.isawaitable(outcome):
                        await outcome  # an ``async def validate_response``: its signals count too
                except HTTPX_ERRORS as exc:
                    raise map_transport_error(exc, broker=self.broker, connection_id=self.connection_id) from exc
        except BaseException as exc:
            error = exc
            ours = slot is not None and slot.failed is exc  # our own limiter was full: not the broker's answer
            if isinstance(exc, BrokerRateLimitError) and limiter is not None and not ours:
                # The broker said slow down: hold the key for every process sharing the store.
                pause = exc.retry_after if exc.retry_after else max(_DEFAULT_PAUSE, self._initial_delay())
                await limiter.pause(pause)
            raise
        finally:
            if self.circuit is not None and self.circuit.record(error):
                self.metrics.circuit_openings += 1
            self._log_attempt(method, url, response, error, attempt, time.perf_counter() - started)
        return response

    async def _plugin_error(self, response: httpx.Response) -> None:
        """Let the plugin's ``validate_response`` name an error status first: a BrokerError it raises wins.

        Some statuses mean more at one broker than the generic mapping knows (Tradovate: a 429
        without ``Retry-After`` is an hour-long lockout of the user). A validator written only for
        successful bodies may fail on an error body; that failure is ignored and the core maps the
        status as usual.
        """
        assert self._validate is not None
        try:
            outcome = self._validate(response)
            if inspect.isawaitable(outcome):
                await outcome
        except BrokerError:
            raise
        except Exception:  # noqa: S110 - see the docstring: the core's own mapping follows
            pass

    def _initial_delay(self) -> float:
        return self.retry.initial_delay if self.retry is not None else 0.0

    def _log_attempt(
        self,
        method: str,
        url: str,
        response: httpx.Response | None,
        error: BaseException | None,
        attempt: int,
        seconds: float,
    ) -> None:
        if response is not None:
            target = response.request.url
        else:
            try:
                target = self._client.base_url.join(url)
            except httpx.InvalidURL:  # the request never had a valid URL: log what the plugin asked for
                target = httpx.URL(self._client.base_url)
        status: int | str = response.status_code if response is not None else type(error).__name__
        self._log.log(
            "INFO" if error is None else "WARNING",
            "{method} {host}{path} -> {status} in {duration_ms:.0f} ms (attempt {attempt})",
            method=method,
            host=target.host,
            path=target.path,
            query=dict(target.params),
            status=status,
            duration_ms=seconds * 1000,
            attempt=attempt,
            error=None if error is None else type(error).__name__,
        )

    # -- the public interface ------------------------------------------------------------------

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send a request through the limiter, circuit breaker and retry policy, with the current token.

        When the facade has a token session (see :mod:`brokersync._reauth`), the current token is
        attached (or swapped in for a stale one), and a 401 renews it once and resends the request.

        Args:
            method: The HTTP method.
            url: Absolute, or relative to the environment's base URL.
            **kwargs: See :meth:`send_with_retry`.

        Returns:
            The response (status below 400, accepted by the plugin's ``validate_response``).

        Raises:
            BrokerError: The matching subclass; never an httpx exception. A 401 again after a
                renewal, or a refused login, is a ``BrokerAuthError``.
        """
        session = self.tokens
        if session is None:
            return await self.send_with_retry(method, url, **kwargs)
        prepared, token = session.prepare(kwargs)
        try:
            return await self.send_with_retry(method, url, **prepared)
        except BrokerAuthError as exc:
            if exc.status_code != 401 or token is None or not session.can_renew:
                raise
            rejected = exc
        await session.renew(token)
        prepared, _ = session.prepare(kwargs)
        try:
            return await self.send_with_retry(method, url, **prepared)
        except BrokerAuthError as exc:
            if exc.status_code != 401:
                raise
            raise BrokerAuthError(
                f"broker {self.broker!r} rejected the renewed token too ({method} {url.split('?', 1)[0]}): "
                f"{exc.message}; reconnect the account",
                broker=self.broker,
                connection_id=self.connection_id,
                status_code=401,
            ) from rejected

    async def send_with_retry(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send a request through the limiter, circuit breaker and retry policy (no token handling).

        Args:
            method: The HTTP method.
            url: Absolute, or relative to the environment's base URL.
            **kwargs: httpx request arguments (``params``, ``json``, ``headers``, ...), plus
                ``rate_limit`` (the limit class, e.g. ``"auth"``), ``cost`` (slots taken) and
                ``account_id`` (count ``scope="account"`` limits for this broker account).

        Returns:
            The response (status below 400, accepted by the plugin's ``validate_response``).

        Raises:
            BrokerError: The matching subclass; never an httpx exception.
        """
        if self.retry is None:
            return await self.send_once(method, url, **kwargs)
        attempts = 0

        sent = dict(kwargs)

        async def attempt() -> httpx.Response:
            nonlocal attempts, sent
            attempts += 1
            try:
                return await self.send_once(method, url, attempt=attempts, **dict(sent))
            except BrokerRateLimitError as exc:
                if exc.resend_with is not None:
                    # The broker named what the resent request must carry (a penalty ticket).
                    sent = apply_change(sent, exc.resend_with, broker=self.broker)
                raise

        context = RetryContext(
            operation=f"{method} {url.split('?', 1)[0]}",
            broker=self.broker,
            connection_id=self.connection_id,
            sleep=self._sleep,
            clock=self._clock,
            metrics=self.metrics,
            giveup=self._circuit_is_open,
        )
        return await with_retry(attempt, self.retry, context)

    def _circuit_is_open(self, exc: BaseException) -> bool:
        # An open circuit fails fast. When this request's own failure opened it, stop retrying
        # and raise that failure (the cause), not the breaker's "unavailable".
        if isinstance(exc, BrokerUnavailableError):
            return True
        return self.circuit is not None and self.circuit.retry_after > 0

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        """Send a GET request."""
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        """Send a POST request."""
        return await self.request("POST", url, **kwargs)

    async def aclose(self) -> None:
        """Close the underlying connection pool."""
        await self._client.aclose()

    async def __aenter__(self) -> BrokerHttpClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
