"""Talking to the Tradovate REST API: login with penalty tickets, renewal, entities in batches.

Every request goes through ``ctx.http``, the core's client (rate limits, retries, circuit breaker,
timeouts, error mapping). Tradovate's own habits are handled here:

* a failed login is HTTP 200 with ``errorText``; a throttled one is HTTP 200 with a penalty
  ticket (``p-ticket``, ``p-time``, ``p-captcha``): wait ``p-time`` through ``ctx.sleep`` and send
  the identical body again with the ticket; a captcha cannot be solved by a server, so it ends the
  login with a :class:`~brokersync.BrokerAuthError` saying what the user can do;
* business errors arrive as HTTP 200 with ``errorText`` or ``{"violations": [...]}``;
* JSON numbers are read as exact Decimals from the body's text;
* the bearer token is attached per request by :class:`TradovateBearer`, which also decides who may
  see it after a redirect: the API's own hosts only.

Every request names the user's limit key (``account_id=``), so Tradovate's per-user limits, and
the hour-long pause after a 429 lockout, are counted per Tradovate user in the core's limiter.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Mapping
from decimal import Decimal
from typing import Any

import httpx
from brokersync import (
    AuthResult,
    BrokerApiError,
    BrokerAuthError,
    BrokerContext,
    BrokerRateLimitError,
    Credentials,
)

from brokersync_tradovate.parse import Catalog, derive_device_id, limit_key, loads, time_of
from brokersync_tradovate.plugin import BROKER, LOCKOUT_SECONDS

__all__ = [
    "API_HOST_SUFFIX",
    "MAX_IDS",
    "AccountData",
    "TradovateBearer",
    "TradovateClient",
]

#: Hosts under this domain belong to the API (Tradovate redirects to org-specific ones, e.g. org-1.tradovateapi.com).
API_HOST_SUFFIX = ".tradovateapi.com"
#: Ids per ``items``/``ldeps`` request (Tradovate caps responses at a varying size; this stays well under).
MAX_IDS = 100
#: Penalty tickets honoured in a row before a request gives up.
MAX_TICKETS = 3
#: The longest ``p-time`` a sync waits inside itself; a longer one ends it with a rate-limit error.
MAX_PENALTY_WAIT = 120.0

_STATUS_MESSAGES = {
    "Closed": "the Tradovate user is closed",
    "Initiated": "the Tradovate user's registration is not finished (status Initiated); finish it on tradovate.com",
    "TemporaryLocked": "the Tradovate user is temporarily locked (status TemporaryLocked); log in on tradovate.com",
    "UnconfirmedEmail": "the Tradovate user has not confirmed their e-mail address yet (status UnconfirmedEmail)",
}
_CAPTCHA = (
    "Tradovate asks for a captcha before it accepts another login from this network (too many logins or "
    "failed logins). A server cannot solve it: log in once on the Tradovate website (trader.tradovate.com) "
    "and try again in an hour."
)


class TradovateBearer(httpx.Auth):
    """``Authorization: Bearer <token>`` on the API's hosts, and on no other host after a redirect.

    The core follows redirects itself (Tradovate answers 307 to an organisation's own host, which
    needs the token); this auth flow runs again for each redirected request and removes the
    header when the target is not one of the API's hosts.

    Args:
        token: The access token.
        hosts: The hosts that may see it (the environment's host and ``apiHosts`` from the login);
            any ``*.tradovateapi.com`` host may too.
    """

    def __init__(self, token: str, hosts: Iterable[str]) -> None:
        self._token = token
        self._hosts = frozenset(h.lower() for h in hosts if h)

    def __repr__(self) -> str:
        return f"TradovateBearer(hosts={sorted(self._hosts)!r})"

    def allows(self, host: str) -> bool:
        """Whether ``host`` may see the token."""
        host = host.lower()
        return host in self._hosts or host.endswith(API_HOST_SUFFIX)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Attach the token, or strip it for a foreign host."""
        if self.allows(request.url.host):
            request.headers["Authorization"] = f"Bearer {self._token}"
        else:
            request.headers.pop("Authorization", None)
        yield request


class AccountData:
    """What one account's sync read: positions, pairs, the account's fills and the shared catalog."""

    def __init__(self, account_id: str, catalog: Catalog) -> None:
        self.account_id = account_id
        self.catalog = catalog
        self.positions: list[Mapping[str, Any]] = []
        self.pairs: list[Mapping[str, Any]] = []
        self.fill_ids: set[int] = set()  # the account's own fills (through its orders)
        self.reports: list[Mapping[str, Any]] = []  # the account's executionReports


def _host(url: str) -> str:
    return httpx.URL(url).host


def _check_body(body: Any, what: str) -> None:
    """Raise the clear error a Tradovate error body (HTTP 200) stands for."""
    if not isinstance(body, dict):
        return
    violations = body.get("violations")
    if violations:
        details = "; ".join(
            str(v.get("description") or v.get("constraint") or v) if isinstance(v, dict) else str(v)
            for v in (violations if isinstance(violations, list) else [violations])
        )
        raise BrokerApiError(f"broker 'tradovate': {what} was refused: {details}", broker=BROKER)
    error = body.get("errorText")
    if error:
        raise BrokerApiError(f"broker 'tradovate': {what} failed: {error}", broker=BROKER)


def _decode(response: httpx.Response, what: str) -> Any:
    try:
        return loads(response.text)
    except ValueError as exc:
        raise BrokerApiError(
            f"broker 'tradovate': {what} did not answer JSON (HTTP {response.status_code})",
            broker=BROKER,
            status_code=response.status_code,
        ) from exc


def _penalty(body: Any) -> tuple[str, float, bool] | None:
    if not isinstance(body, dict) or "p-ticket" not in body:
        return None
    raw_time = body.get("p-time", 0)
    seconds = float(raw_time) if isinstance(raw_time, int | Decimal) else 0.0
    return str(body["p-ticket"]), max(0.0, seconds), bool(body.get("p-captcha"))


class TradovateClient:
    """The Tradovate REST API, spoken through the core's HTTP client.

    Args:
        ctx: The hook context the core passed to the plugin.
    """

    def __init__(self, ctx: BrokerContext) -> None:
        self.ctx = ctx

    # -- authentication ------------------------------------------------------------------------

    def login_body(self, credentials: Credentials) -> dict[str, Any]:
        """Build the ``accesstokenrequest`` body for ``credentials`` (the device id derived unless given)."""
        cid = credentials["cid"].strip()
        device = credentials.get("device_id") or derive_device_id(credentials["username"], cid)
        return {
            "name": credentials["username"],
            "password": credentials["password"],
            "appId": credentials.get("app_id") or "brokersync",
            "appVersion": credentials.get("app_version") or "1.0",
            "cid": int(cid) if cid.isdigit() else cid,
            "sec": credentials["sec"],
            "deviceId": device,
        }

    async def login(self, credentials: Credentials) -> AuthResult:
        """``POST /auth/accesstokenrequest``, honouring penalty tickets.

        Raises:
            BrokerAuthError: rejected credentials (``errorText``), a captcha, or a user status
                other than ``Active``.
            BrokerRateLimitError: Tradovate asked for a longer wait than a sync makes, or kept
                issuing tickets.
        """
        body = self.login_body(credentials)
        key = limit_key(credentials["username"])
        payload = dict(body)
        for _ in range(MAX_TICKETS + 1):
            response = await self.ctx.http.post(
                "auth/accesstokenrequest", json=payload, rate_limit="auth", account_id=key
            )
            data = _decode(response, "the login (auth/accesstokenrequest)")
            penalty = _penalty(data)
            if penalty is None:
                return self._token(data, device_id=body["deviceId"], key=key)
            ticket, seconds, captcha = penalty
            if captcha:
                raise BrokerAuthError(f"broker 'tradovate': login refused. {_CAPTCHA}", broker=BROKER)
            if seconds > MAX_PENALTY_WAIT:
                raise BrokerRateLimitError(
                    f"broker 'tradovate': Tradovate asks to wait {seconds:.0f} s before the next login attempt "
                    "(penalty ticket); try again after that.",
                    broker=BROKER,
                    retry_after=seconds,
                )
            self.ctx.logger.info("Tradovate issued a penalty ticket: waiting {seconds:g} s", seconds=seconds)
            await self.ctx.sleep(seconds)
            payload = {**body, "p-ticket": ticket}  # the identical body, plus the ticket
        raise BrokerRateLimitError(
            f"broker 'tradovate': Tradovate kept issuing penalty tickets ({MAX_TICKETS} in a row); try again later.",
            broker=BROKER,
            retry_after=LOCKOUT_SECONDS / 4,
        )

    def _token(self, data: Any, *, device_id: str, key: str, previous: AuthResult | None = None) -> AuthResult:
        if not isinstance(data, dict):
            raise BrokerApiError("broker 'tradovate': the login answer is not a JSON object", broker=BROKER)
        error = data.get("errorText")
        if error:
            raise BrokerAuthError(f"broker 'tradovate': login rejected: {error}", broker=BROKER)
        status = data.get("userStatus")
        if status is not None and status != "Active":
            message = _STATUS_MESSAGES.get(str(status), f"the Tradovate user's status is {status!r}, not Active")
            raise BrokerAuthError(f"broker 'tradovate': login refused: {message}.", broker=BROKER)
        token = data.get("accessToken")
        if not isinstance(token, str) or not token:
            raise BrokerApiError("broker 'tradovate': the login answer has no accessToken", broker=BROKER)
        try:
            expires = time_of(data.get("expirationTime"), "expirationTime")
        except (TypeError, ValueError) as exc:
            raise BrokerApiError(f"broker 'tradovate': the login answer's {exc}", broker=BROKER) from exc
        state: dict[str, Any] = dict(previous.state) if previous is not None else {}
        hosts = data.get("apiHosts")
        state.update(
            {
                "device_id": device_id,
                "limit_key": key,
                "user_id": data.get("userId", state.get("user_id")),
                "api_hosts": sorted({str(h) for h in hosts.values() if isinstance(h, str)})
                if isinstance(hosts, dict)
                else state.get("api_hosts", []),
            }
        )
        return AuthResult(access_token=token, expires_at=expires, state=state)

    async def renew(self, auth: AuthResult) -> AuthResult | None:
        """``GET /auth/renewaccesstoken``: extend the session; ``None`` when Tradovate refuses (log in again)."""
        try:
            response = await self.ctx.http.get(
                "auth/renewaccesstoken", auth=self.bearer(auth), rate_limit="auth", account_id=self.key(auth)
            )
        except BrokerAuthError:
            return None
        data = _decode(response, "the token renewal (auth/renewaccesstoken)")
        if not isinstance(data, dict) or data.get("errorText") or not data.get("accessToken"):
            return None
        return self._token(data, device_id=str(auth.state.get("device_id", "")), key=self.key(auth), previous=auth)

    def bearer(self, auth: AuthResult) -> TradovateBearer:
        """Return the auth flow that attaches ``auth``'s token on the API's hosts."""
        hosts = [_host(self.ctx.base_url), *auth.state.get("api_hosts", [])]
        return TradovateBearer(auth.access_token, hosts)

    @staticmethod
    def key(auth: AuthResult) -> str:
        """Return the limiter key of the token's user."""
        return str(auth.state.get("limit_key") or "user-unknown")

    # -- entities ------------------------------------------------------------------------------

    async def call(self, auth: AuthResult, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """``GET path`` with the token; the decoded JSON body, after Tradovate's error bodies and penalties."""
        query = dict(params or {})
        for _ in range(MAX_TICKETS + 1):
            response = await self.ctx.http.get(path, params=query, auth=self.bearer(auth), account_id=self.key(auth))
            body = _decode(response, f"GET {path}")
            penalty = _penalty(body)
            if penalty is None:
                _check_body(body, f"GET {path}")
                return body
            ticket, seconds, captcha = penalty
            if captcha or seconds > MAX_PENALTY_WAIT:
                raise BrokerRateLimitError(
                    f"broker 'tradovate': GET {path} got a penalty ticket asking to wait "
                    f"{'an hour (captcha)' if captcha else f'{seconds:.0f} s'}",
                    broker=BROKER,
                    retry_after=LOCKOUT_SECONDS if captcha else seconds,
                )
            await self.ctx.sleep(seconds)
            query = {**dict(params or {}), "p-ticket": ticket}
        raise BrokerRateLimitError(
            f"broker 'tradovate': GET {path} kept getting penalty tickets",
            broker=BROKER,
            retry_after=LOCKOUT_SECONDS / 4,
        )

    async def entities(self, auth: AuthResult, path: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        """Read an entity listing (``list``, ``deps``, ``ldeps``, ``items``): a JSON array of objects."""
        body = await self.call(auth, path, params)
        if not isinstance(body, list) or not all(isinstance(e, dict) and "id" in e for e in body):
            raise BrokerApiError(f"broker 'tradovate': GET {path} did not return a list of entities", broker=BROKER)
        return body

    async def batched(self, auth: AuthResult, entity: str, op: str, ids: Iterable[int]) -> list[Any]:
        """``{entity}/items?ids=`` or ``{entity}/ldeps?masterids=`` for any number of ids, ``MAX_IDS`` at a time."""
        wanted = sorted(set(ids))
        name = "ids" if op == "items" else "masterids"
        found: list[Any] = []
        for start in range(0, len(wanted), MAX_IDS):
            chunk = wanted[start : start + MAX_IDS]
            found += await self.entities(auth, f"{entity}/{op}", {name: ",".join(map(str, chunk))})
        return found

    async def accounts(self, auth: AuthResult) -> list[Any]:
        """``GET /account/list``."""
        return await self.entities(auth, "account/list")

    # -- one account's sync --------------------------------------------------------------------

    def _shared(self) -> dict[str, Any]:
        cache: dict[str, Any] = self.ctx.cache.setdefault("tradovate", {})
        cache.setdefault("catalog", Catalog())
        return cache

    async def account_data(self, auth: AuthResult, account_id: str) -> AccountData:
        """Read what one account's page needs, in batches; immutable entities are read once per sync."""
        shared = self._shared()
        catalog: Catalog = shared["catalog"]
        data = AccountData(account_id, catalog)
        data.positions = await self.entities(auth, "position/deps", {"masterid": account_id})
        if data.positions:
            data.pairs = await self.batched(auth, "fillPair", "ldeps", (p["id"] for p in data.positions))
        orders = await self.entities(auth, "order/deps", {"masterid": account_id})
        for order in orders:
            catalog.orders[order["id"]] = order
        fills = await self.batched(auth, "fill", "ldeps", (o["id"] for o in orders)) if orders else []
        for fill in fills:
            catalog.fills[fill["id"]] = fill
        data.fill_ids = {f["id"] for f in fills}
        referenced = {p[k] for p in data.pairs for k in ("buyFillId", "sellFillId")}
        missing = referenced - set(catalog.fills)
        if missing:  # a pair whose fills the order listing no longer shows (older orders)
            for fill in await self.batched(auth, "fill", "items", missing):
                catalog.fills[fill["id"]] = fill
        await self._fees(auth, catalog, referenced | data.fill_ids)
        contract_ids = {p["contractId"] for p in data.positions} | {
            catalog.fills[f]["contractId"] for f in referenced | data.fill_ids if f in catalog.fills
        }
        await self._instruments(auth, catalog, contract_ids)
        if "reports" not in shared:
            shared["reports"] = await self.entities(auth, "executionReport/list")
        data.reports = [r for r in shared["reports"] if str(r.get("accountId")) == account_id]
        return data

    async def _fees(self, auth: AuthResult, catalog: Catalog, fill_ids: set[int]) -> None:
        # fillFee is a dependent of fill. Whether fillFee.id equals the fill's id is unverified:
        # a fee is matched by its fillId when it has one, else by its id.
        wanted = {f for f in fill_ids if f in catalog.fills and f not in catalog.fees}
        if not wanted:
            return
        for fee in await self.batched(auth, "fillFee", "ldeps", wanted):
            owner = fee.get("fillId", fee["id"])
            if owner in wanted:
                catalog.fees[owner] = fee

    async def _instruments(self, auth: AuthResult, catalog: Catalog, contract_ids: set[int]) -> None:
        await self._read(auth, "contract", contract_ids, catalog.contracts)
        maturity_ids = {c["contractMaturityId"] for c in catalog.contracts.values() if "contractMaturityId" in c}
        await self._read(auth, "contractMaturity", maturity_ids, catalog.maturities)
        product_ids = {m["productId"] for m in catalog.maturities.values() if "productId" in m}
        await self._read(auth, "product", product_ids, catalog.products)
        currency_ids = {p["currencyId"] for p in catalog.products.values() if "currencyId" in p}
        await self._read(auth, "currency", currency_ids, catalog.currencies)

    async def _read(self, auth: AuthResult, entity: str, ids: Iterable[int], into: dict[int, Any]) -> None:
        missing = {i for i in ids if i not in into}
        if missing:
            for item in await self.batched(auth, entity, "items", missing):
                into[item["id"]] = item
