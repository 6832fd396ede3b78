"""The Flex Web Service v3: ``SendRequest``, then ``GetStatement`` polled until the statement is ready.

Every request goes through ``ctx.http`` (the core's limiter, retry, circuit breaker and error
mapping). IB answers errors with HTTP 200 and a ``FlexStatementResponse`` envelope;
:func:`check_envelope` (wired as the plugin's ``validate_response`` hook) turns each documented
error code into the brokersync error that says what happens next, so the core retries what is
transient (1018 after its wait, 1001/1009/1021 with backoff) wherever it arrives.

Statement generation in progress (1019, and the "data not ready" codes 1004-1008) is not an
error: :class:`FlexClient` polls with ``ctx.sleep`` up to a bounded total wait, then raises
:class:`StatementNotReadyError` (nothing is stored, the cursor stays where it was).

The legacy ``/Universal/servlet/`` endpoints answer 1001 for every token since 2026: they are never
called, even when IB's own answer points at them.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from xml.etree.ElementTree import ParseError

import defusedxml
import defusedxml.ElementTree as SafeET
from brokersync import (
    BrokerApiError,
    BrokerAuthError,
    BrokerContext,
    BrokerRateLimitError,
    BrokerServerError,
    ConfigurationError,
)

from brokersync_ibkr import plugin as _plugin
from brokersync_ibkr._version import __version__

if TYPE_CHECKING:
    import httpx

__all__ = [
    "FALLBACK_STATEMENT_URL",
    "IN_PROGRESS_CODES",
    "LIVE_BASE_URL",
    "RATE_LIMIT_WAIT",
    "USER_AGENT",
    "FlexClient",
    "FlexStatus",
    "StatementNotReadyError",
    "check_envelope",
    "read_envelope",
]

#: Where ``SendRequest`` lives (the AccountManagement host).
LIVE_BASE_URL = _plugin.LIVE_BASE_URL
#: Where ``GetStatement`` lives when IB's answer names no ``<Url>`` (or names the legacy host).
FALLBACK_STATEMENT_URL = "https://gdcdyn.interactivebrokers.com/AccountManagement/FlexWebService/GetStatement"
#: IB asks for "Technology/Version" in the User-Agent.
USER_AGENT = f"brokersync-ibkr/{__version__} Python/{sys.version_info.major}.{sys.version_info.minor}"
#: Seconds to wait after 1018 ("too many requests"): IB's window is a minute.
RATE_LIMIT_WAIT = 60.0

#: "Try again shortly" while IB prepares the statement: polled, not retried as errors.
IN_PROGRESS_CODES = frozenset({"1004", "1005", "1006", "1007", "1008", "1019"})
# Transient failures on IB's side: retried by the core with backoff.
_UNAVAILABLE = {"1001": 5.0, "1009": 5.0, "1021": 5.0}
_AUTH = {
    "1011": "the Flex Web Service account is inactive; enable the Flex Web Service in IB's Client Portal "
    "and reconnect with a new token",
    "1012": "the Flex token has expired; generate a new token in IB's Client Portal (Performance & Reports > "
    "Flex Queries > Flex Web Service Configuration) and reconnect",
    "1013": "IB refused the request because of the token's IP restriction; allow this machine's IP address "
    "for the token or generate a token without one, then reconnect",
    "1015": "the Flex token is invalid; generate a new token in IB's Client Portal and reconnect",
    "1025": "IB locked the token after too many failed attempts; review the token and query ids, generate a "
    "new token and reconnect",
}
_QUERY = {
    "1010": "is a legacy Flex query, which IB no longer supports; create an Activity or Trade Confirmation "
    "Flex query instead",
    "1014": "is invalid at IB; check the query id in Client Portal (Performance & Reports > Flex Queries)",
    "1016": "refers to an account IB calls invalid; check the accounts selected in the query",
}
_POLL_DELAYS = (5.0, 5.0, 10.0, 10.0, 15.0, 20.0, 30.0)
_ROOT = re.compile(rb"^\s*(?:<\?xml[^>]*\?>\s*)?(?:<!--.*?-->\s*)*<(?P<tag>[A-Za-z_][\w.-]*)", re.DOTALL)


class StatementNotReadyError(BrokerServerError):
    """IB is still preparing the statement after the bounded wait: try the sync again later."""


class FlexStatus:
    """A ``FlexStatementResponse``: the answer to ``SendRequest``, or a status from ``GetStatement``."""

    __slots__ = ("code", "message", "reference_code", "status", "url")

    def __init__(
        self,
        *,
        status: str,
        code: str | None,
        message: str | None,
        reference_code: str | None,
        url: str | None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.reference_code = reference_code
        self.url = url

    def __repr__(self) -> str:
        return f"FlexStatus(status={self.status!r}, code={self.code!r}, message={self.message!r})"


def _root_tag(content: bytes) -> str | None:
    match = _ROOT.match(content[:2048])
    return match["tag"].decode("ascii", "replace") if match else None


def read_envelope(content: bytes) -> FlexStatus | None:
    """Read a ``FlexStatementResponse``; ``None`` when the body is something else (a statement).

    Raises:
        BrokerApiError: The envelope is not well-formed XML or declares a DOCTYPE.
    """
    if _root_tag(content) != "FlexStatementResponse":
        return None
    try:
        root = SafeET.fromstring(content, forbid_dtd=True)
    except (ParseError, defusedxml.DefusedXmlException) as exc:
        raise BrokerApiError(f"broker 'ibkr': IB answered an unreadable status envelope ({exc})") from None

    def text(name: str) -> str | None:
        value = root.findtext(name)
        return value.strip() if value is not None and value.strip() else None

    return FlexStatus(
        status=text("Status") or "",
        code=text("ErrorCode"),
        message=text("ErrorMessage"),
        reference_code=text("ReferenceCode"),
        url=text("Url"),
    )


def _query_id(response: httpx.Response) -> str:
    value = str(response.request.url.params.get("q", "?"))
    if response.request.url.path.endswith("GetStatement"):
        return f"(statement reference {value})"
    return value


def check_envelope(response: httpx.Response) -> None:
    """Raise the brokersync error for a Flex error code in ``response`` (the ``validate_response`` hook).

    "In progress" codes pass (the client polls); everything else that is not ``Success`` raises.

    Raises:
        BrokerRateLimitError: 1018, with ``retry_after`` (the core waits, then retries).
        BrokerServerError: 1001/1009/1021, IB cannot serve now (retried with backoff), or an HTML
            page instead of XML.
        BrokerAuthError: 1011/1012/1013/1015/1025: the token must be replaced.
        ConfigurationError: 1010/1014/1016, naming the query id.
        BrokerApiError: 1003, 1017, 1020 and unknown codes (not retried as such).
    """
    content = response.content
    tag = _root_tag(content)
    if tag not in ("FlexStatementResponse", "FlexQueryResponse") and b"<html" in content[:2048].lower():
        raise BrokerServerError(
            f"broker 'ibkr': IB answered an HTML page instead of XML (HTTP {response.status_code}); "
            "the service is probably down for maintenance",
            broker="ibkr",
            status_code=response.status_code,
        )
    if tag != "FlexStatementResponse":
        return
    status = read_envelope(content)
    if status is None or status.status == "Success" or status.code in IN_PROGRESS_CODES or status.code == "1017":
        return  # ready, still preparing, or an expired reference code: FlexClient handles these
    code = status.code or "?"
    said = f"IB error {code}: {status.message or 'no message'}"
    query = _query_id(response)
    common: dict[str, Any] = {"broker": "ibkr", "status_code": response.status_code}
    if code == "1018":
        raise BrokerRateLimitError(
            f"broker 'ibkr': {said} (IB allows one request per second and ten per minute per token); "
            f"waiting {RATE_LIMIT_WAIT:.0f} s",
            retry_after=RATE_LIMIT_WAIT,
            **common,
        )
    if code in _UNAVAILABLE:
        raise BrokerServerError(f"broker 'ibkr': {said}", retry_after=_UNAVAILABLE[code], **common)
    if code in _AUTH:
        raise BrokerAuthError(f"broker 'ibkr': {_AUTH[code]} ({said})", **common)
    if code in _QUERY:
        raise ConfigurationError(f"broker 'ibkr': Flex query {query} {_QUERY[code]} ({said})")
    if code == "1003":
        raise BrokerApiError(
            f"broker 'ibkr': IB has no statement for Flex query {query} ({said}); check the query's period "
            "(at most 365 days) and that its accounts had activity",
            **common,
        )
    raise BrokerApiError(f"broker 'ibkr': Flex query {query}: {said}", **common)


class FlexClient:
    """The two-step Flex flow for one token, through the core's client.

    Args:
        ctx: The hook context (``ctx.http``, ``ctx.sleep``, ``ctx.base_url``, ``ctx.logger``).
        token: The Flex Web Service token (a secret: only ever sent as IB's ``t`` parameter).
        max_wait: The longest total time to wait for a statement IB is still preparing.
    """

    def __init__(self, ctx: BrokerContext, token: str, *, max_wait: float = 300.0) -> None:
        self._ctx = ctx
        self._token = token
        self._max_wait = max_wait

    def __repr__(self) -> str:
        return f"FlexClient(base_url={self._ctx.base_url!r})"

    def _fallback_url(self) -> str:
        base = self._ctx.base_url.rstrip("/")
        if base == LIVE_BASE_URL:
            return FALLBACK_STATEMENT_URL
        return f"{base}/GetStatement"  # a configured base URL (a proxy or a local fake) serves both steps

    async def _get(self, url: str, params: Mapping[str, str]) -> httpx.Response:
        return await self._ctx.http.get(url, params={**params, "v": "3"}, headers={"User-Agent": USER_AGENT})

    async def send_request(self, query_id: str) -> FlexStatus:
        """Step 1: ask IB to prepare the statement of ``query_id``; returns its reference code and URL."""
        response = await self._get("SendRequest", {"t": self._token, "q": query_id})
        status = read_envelope(response.content)
        if status is None or not status.reference_code:
            raise BrokerApiError(
                f"broker 'ibkr': SendRequest for Flex query {query_id} answered without a reference code",
                broker="ibkr",
            )
        return status

    def statement_url(self, status: FlexStatus) -> str:
        """Where to fetch the statement: IB's ``<Url>``, else the fallback; never the legacy servlet."""
        url = (status.url or "").strip()
        if not url or "/Universal/servlet/" in url or not url.startswith(("http://", "https://")):
            if url:
                self._ctx.logger.warning("IB named the legacy statement URL; using the AccountManagement one")
            return self._fallback_url()
        return url

    async def download(self, query_id: str, prepared: FlexStatus | None = None) -> bytes:
        """Run both steps for ``query_id`` and return the statement's XML.

        Args:
            query_id: The Flex query id.
            prepared: The answer of a ``SendRequest`` already sent (e.g. by ``authenticate``).

        Raises:
            StatementNotReadyError: IB still prepares it after ``max_wait`` seconds.
            BrokerError: see :func:`check_envelope`.
        """
        status = prepared if prepared is not None else await self.send_request(query_id)
        waited = 0.0
        polls = 0
        restarted = False
        while True:
            assert status.reference_code is not None
            response = await self._get(self.statement_url(status), {"t": self._token, "q": status.reference_code})
            answer = read_envelope(response.content)
            if answer is None:
                return response.content
            if answer.code == "1017" and not restarted:  # the reference expired: start again at step 1
                restarted = True
                status = await self.send_request(query_id)
                continue
            if answer.code not in IN_PROGRESS_CODES:
                raise BrokerApiError(
                    f"broker 'ibkr': GetStatement for Flex query {query_id} answered {answer.status} "
                    f"{answer.code or ''} {answer.message or ''}".rstrip(),
                    broker="ibkr",
                )
            delay = _POLL_DELAYS[min(polls, len(_POLL_DELAYS) - 1)]
            if waited + delay > self._max_wait:
                raise StatementNotReadyError(
                    f"broker 'ibkr': IB is still preparing the statement of Flex query {query_id} after "
                    f"{waited:.0f} s ({answer.code}: {answer.message or 'in progress'}); try the sync later",
                    broker="ibkr",
                    retry_after=300.0,
                )
            polls += 1
            waited += delay
            await self._ctx.sleep(delay)
