"""The core HTTP client handed to plugins as ``ctx.http``.

Every attempt of every request goes: rate limiter -> circuit breaker -> send (with a total
timeout, following redirects) -> error mapping -> plugin ``validate_response`` -> one log line;
:func:`~brokersync._retry.with_retry` repeats the attempt for retryable failures. Each attempt,
retries included, takes a limiter slot, because the broker counts every request it receives.

Nothing from httpx escapes: transport errors, error statuses and httpx errors raised by a
plugin's ``validate_response`` all become :mod:`brokersync.errors` exceptions.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import httpx

from brokersync._log import get_logger
from brokersync._metrics import RequestMetrics
from brokersync._retry import RetryContext, with_retry
from brokersync.errors import (
    BrokerApiError,
    BrokerAuthError,
    BrokerError,
    BrokerNetworkError,
    BrokerRateLimitError,
    BrokerServerError,
    BrokerTimeoutError,
    BrokerUnavailableError,
)

if TYPE_CHECKING:
    from brokersync._circuit import CircuitBreaker
    from brokersync._ratelimit import RateLimiter
    from brokersync.models import RetryPolicy

__all__ = ["BrokerHttpClient", "map_response", "map_transport_error", "parse_retry_after", "response_error"]

ResponseValidator = Callable[[httpx.Response], None]

# Errors httpx raises that are not HTTPError subclasses; none may escape either.
_HTTPX_ERRORS = (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, httpx.CookieConflict)
# Answers that mean "this request can never work as sent": not worth a retry.
_NOT_TRANSIENT = (
    httpx.UnsupportedProtocol,
    httpx.InvalidURL,
    httpx.TooManyRedirects,
    httpx.DecodingError,
    httpx.LocalProtocolError,
    httpx.StreamError,
    httpx.CookieConflict,
)
# Without a Retry-After, a 429 pauses the key for every process at least this long.
_DEFAULT_PAUSE = 1.0


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date); never negative."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, parsed.timestamp() - (time.time() if now is None else now))


def _describe(response: httpx.Response) -> str:
    request = response.request
    text = response.text[:200] if response.content else ""
    return f"{request.method} {request.url.host}{request.url.path} answered {response.status_code} {text}".strip()


def response_error(
    response: httpx.Response, *, broker: str, connection_id: str | None = None, now: float | None = None
) -> BrokerError | None:
    """The brokersync error matching an HTTP error status, or None for 1xx-3xx."""
    status = response.status_code
    if status < 400:
        return None
    common: dict[str, Any] = {"broker": broker, "connection_id": connection_id, "status_code": status}
    what = f"broker {broker!r}: {_describe(response)}"
    retry_after = parse_retry_after(response.headers.get("Retry-After"), now=now)
    if status in (401, 403):
        return BrokerAuthError(what, **common)
    if status == 429:
        return BrokerRateLimitError(what, retry_after=retry_after, **common)
    if status >= 500:
        return BrokerServerError(what, retry_after=retry_after, **common)
    return BrokerApiError(what, **common)


def map_response(
    response: httpx.Response, *, broker: str, connection_id: str | None = None, now: float | None = None
) -> None:
    """Raise the brokersync error matching an HTTP error status; return for 1xx-3xx."""
    error = response_error(response, broker=broker, connection_id=connection_id, now=now)
    if error is not None:
        raise error


def map_transport_error(exc: Exception, *, broker: str, connection_id: str | None = None) -> BrokerError:
    """Translate any httpx exception into the matching brokersync error."""
    if isinstance(exc, httpx.HTTPStatusError):
        mapped = response_error(exc.response, broker=broker, connection_id=connection_id)
        if mapped is not None:
            return mapped
    request = getattr(exc, "_request", None)
    where = f" ({request.method} {request.url.host}{request.url.path})" if request is not None else ""
    common: dict[str, Any] = {"broker": broker, "connection_id": connection_id}
    if isinstance(exc, httpx.TimeoutException):
        return BrokerTimeoutError(f"broker {broker!r} did not answer in time{where}: {type(exc).__name__}", **common)
    if isinstance(exc, (*_NOT_TRANSIENT, httpx.HTTPStatusError)):
        return BrokerApiError(f"broker {broker!r}: request failed{where}: {type(exc).__name__}: {exc}", **common)
    return BrokerNetworkError(
        f"broker {broker!r} could not be reached{where}: {type(exc).__name__}: {exc}",
        **common,
    )


class BrokerHttpClient:
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
    ) -> None:
        self.broker = broker
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

    async def _send(self, method: str, url: str, kwargs: dict[str, Any]) -> httpx.Response:
        auth = kwargs.pop("auth", httpx.USE_CLIENT_DEFAULT)
        kwargs.pop("follow_redirects", None)
        try:
            async with asyncio.timeout(self._timeout) as deadline:
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
        except _HTTPX_ERRORS as exc:
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
        if limiter is not None:
            max_wait = self.retry.max_retry_after if self.retry is not None else None
            self.metrics.record_wait(await limiter.acquire(cost, name=rate_limit, max_wait=max_wait))
        if self.circuit is not None:
            self.circuit.before_call()
        started = time.perf_counter()
        response: httpx.Response | None = None
        error: BaseException | None = None
        try:
            response = await self._send(method, url, kwargs)
            if limiter is not None:
                await limiter.observe(response.headers, now=self._wall_clock())
            if self._validate is not None and response.status_code >= 400:
                # The plugin may know the broker's error body better than the status (Binance's 418
                # ban is a rate limit, a 400 with code -2015 is a rejected key); if it raises
                # nothing, the status decides below.
                try:
                    self._validate(response)
                except _HTTPX_ERRORS as exc:
                    raise map_transport_error(exc, broker=self.broker, connection_id=self.connection_id) from exc
            map_response(response, broker=self.broker, connection_id=self.connection_id, now=self._wall_clock())
            if self._validate is not None:
                try:
                    self._validate(response)
                except _HTTPX_ERRORS as exc:
                    raise map_transport_error(exc, broker=self.broker, connection_id=self.connection_id) from exc
        except BaseException as exc:
            error = exc
            if isinstance(exc, BrokerRateLimitError) and limiter is not None:
                # The broker said slow down: hold the key for every process sharing the store.
                pause = exc.retry_after if exc.retry_after else max(_DEFAULT_PAUSE, self._initial_delay())
                await limiter.pause(pause)
            raise
        finally:
            if self.circuit is not None and self.circuit.record(error):
                self.metrics.circuit_openings += 1
            self._log_attempt(method, url, response, error, attempt, time.perf_counter() - started)
        return response

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
        """Send a request through the limiter, circuit breaker and retry policy.

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

        async def attempt() -> httpx.Response:
            nonlocal attempts
            attempts += 1
            return await self.send_once(method, url, attempt=attempts, **dict(kwargs))

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
