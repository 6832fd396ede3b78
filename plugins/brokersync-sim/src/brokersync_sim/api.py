"""The simulated broker's HTTP API: a deterministic fake that behaves like a real broker.

Serve it in-process with :meth:`SimAPI.transport` (an ``httpx.MockTransport``; the engine and
``brokersync.get_broker`` accept it as ``transport=``) or over loopback HTTP with
:class:`brokersync_sim.server.SimServer`. The API (all paths under ``/v1``)::

    POST /auth/token            {"username", "password"} -> {"access_token", "refresh_token", "expires_at"}
    POST /auth/renew            {"refresh_token"} -> a new access token (same shape)
    GET  /accounts              -> {"accounts": [{"id", "name", "currency", "type"}]}
    GET  /accounts/{id}/trades  ?cursor=&since=&limit= -> {"trades": [...], "next_cursor", "has_more"}
    GET  /accounts/{id}/fills   ?cursor=&since=&limit= -> {"fills": [...], "next_cursor", "has_more"}

With ``fills=True`` each user also has one account that reports executions (``"type": "fills"``,
id ending in ``-FILLS``; see :mod:`brokersync_sim._fills`): partial fills, a scale-out, a reversal,
a scale-in and open positions; after its first complete listing a late fill and a bust arrive.

Everything but ``/auth/*`` needs ``Authorization: Bearer <access_token>``. Trades are a change feed:
each page lists trades in the order they last changed, and ``next_cursor`` resumes after the
page. Whenever a listing reaches the end, the broker corrects a few trades (closes the open ones,
re-bills commissions); the next listing returns them again with a higher ``version``. With
``cancel_rate`` set, it also cancels ("busts") a few trades then: the next listing returns them
again, unchanged but with ``"status": "CANCELLED"``, ``cancelledAt`` and ``cancelReason`` (a bust is
final: the trade stays cancelled in every later listing).

Failure modes, as a real broker has them:

* limits: ``user_limit`` requests per window per user and ``app_limit`` for the whole API; going
  over gets ``429`` with ``Retry-After`` (and counts in :attr:`SimStats.limit_exceeded`);
* injected faults, one per request with probability ``fault_rate``: ``429`` with ``Retry-After``,
  ``503``, a timeout, or the session's token expiring mid-sync (``401 token_expired``);
* ``malformed_rate`` of the records are broken at the source (bad price, naive time, zero
  quantity): they stay broken on every read, like real bad data.

The same ``seed`` gives the same accounts, trades, corrections and (for the same request order)
faults.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import json
import random
import secrets
from array import array
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

import attrs
import httpx

from brokersync_sim._fills import FillFeed, fills_account_id
from brokersync_sim._market import ACCOUNT_KINDS, SimAccount, stable_int, wire_trade
from brokersync_sim.plugin import APP_LIMIT, SIM_BASE_URL, USER_LIMIT

__all__ = ["FAULT_KINDS", "SimAPI", "SimStats"]

#: Fault kinds :class:`SimAPI` can inject per request.
FAULT_KINDS = ("rate_limit", "server_error", "timeout", "token_expiry")
_MAX_PAGE = 1000
_DEFAULT_END = dt.datetime(2025, 10, 31, 21, 0, tzinfo=dt.UTC)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@attrs.define
class SimStats:
    """What the fake saw: a test or benchmark asserts on these numbers.

    Attributes:
        requests: Requests received, including rejected ones.
        by_path: Requests per route (``"POST /auth/token"``, ``"GET /accounts/{id}/trades"``, ...).
        faults: Injected faults per kind.
        limit_exceeded: Requests refused because a client went over a documented limit.
        peak_user_window: The most requests any one user had in one limit window.
        peak_app_window: The most requests the whole API had in one limit window.
        logins: Successful ``/auth/token`` calls.
        renewals: Successful ``/auth/renew`` calls.
        trades_served: Trade records sent.
    """

    requests: int = 0
    by_path: collections.Counter[str] = attrs.field(factory=collections.Counter)
    faults: collections.Counter[str] = attrs.field(factory=collections.Counter)
    limit_exceeded: int = 0
    peak_user_window: int = 0
    peak_app_window: int = 0
    logins: int = 0
    renewals: int = 0
    trades_served: int = 0


@attrs.define
class _Feed:
    """One account's change feed: position ``p`` holds the trade whose change has sequence p + 1."""

    account: SimAccount
    order: array[int]
    versions: dict[int, int] = attrs.field(factory=dict)
    updated: dict[int, dt.datetime] = attrs.field(factory=dict)
    cancelled: dict[int, dt.datetime] = attrs.field(factory=dict)  # index -> when the broker busted it
    rounds: int = 0


@attrs.define
class _Token:
    username: str
    expires_at: dt.datetime
    revoked: bool = False


class _Reject(Exception):
    def __init__(self, status: int, error: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.error, self.message, self.headers = status, error, message, headers or {}


class SimAPI:
    """A deterministic fake broker API. Every user's data is derived from ``seed`` and the username.

    Args:
        seed: Determines accounts, trades, corrections and fault order.
        accounts: Accounts per user (futures, equities and a EUR account, in turn).
        trades_per_account: Trades each account has at the start.
        open_trades: The newest trades of each account that are still open until the first correction.
        correction_rate: Share of an account's trades corrected after each complete listing.
        cancel_rate: Share of an account's trades cancelled (busted) after each complete listing
            (at least one per round when above 0; default 0: no busts).
        fault_rate: Probability that a request fails with one of ``fault_kinds``.
        fault_kinds: Which faults to inject (see :data:`FAULT_KINDS`).
        malformed_rate: Share of records that are broken at the source.
        retry_after: Seconds sent in ``Retry-After`` with an injected 429.
        latency: Seconds each request takes (awaited with ``sleep``).
        password: The password every user logs in with (any username works).
        token_ttl: How long an access token lives.
        page_size: Default page size (a client may ask for up to 1000).
        user_limit: ``(max_requests, window_seconds)`` per user.
        app_limit: ``(max_requests, window_seconds)`` for the whole API.
        history_days: Days of history the trades spread over, ending at ``history_end``.
        history_end: When the history ends (a fixed default keeps data identical across days).
        base_url: The URL the API answers on.
        clock: The current tz-aware UTC time (injected in tests).
        sleep: Awaitable sleep used for ``latency`` (injected in tests).
        fills: Give each user one more account that reports executions (fills) instead of trades.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        accounts: int = 3,
        trades_per_account: int = 1000,
        open_trades: int = 2,
        correction_rate: float = 0.01,
        cancel_rate: float = 0.0,
        fault_rate: float = 0.0,
        fault_kinds: Iterable[str] = FAULT_KINDS,
        malformed_rate: float = 0.0,
        retry_after: float = 1.0,
        latency: float = 0.0,
        password: str = "sim-password",  # noqa: S107 - the fake's documented demo password
        token_ttl: dt.timedelta = dt.timedelta(minutes=90),
        page_size: int = 500,
        user_limit: tuple[int, float] = USER_LIMIT,
        app_limit: tuple[int, float] = APP_LIMIT,
        history_days: int = 365,
        history_end: dt.datetime = _DEFAULT_END,
        base_url: str = SIM_BASE_URL,
        clock: Callable[[], dt.datetime] = _utcnow,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        fills: bool = False,
    ) -> None:
        kinds = tuple(fault_kinds)
        unknown = sorted(set(kinds) - set(FAULT_KINDS))
        if unknown:
            raise ValueError(f"unknown fault kind(s) {unknown}; choose from {list(FAULT_KINDS)}")
        for name, rate in (
            ("fault_rate", fault_rate),
            ("malformed_rate", malformed_rate),
            ("correction_rate", correction_rate),
            ("cancel_rate", cancel_rate),
        ):
            if not 0 <= rate <= 1:
                raise ValueError(f"{name} must be between 0 and 1, got {rate!r}")
        if accounts < 1 or trades_per_account < 0 or not 1 <= page_size <= _MAX_PAGE:
            raise ValueError("accounts must be >= 1, trades_per_account >= 0 and page_size in 1..1000")
        if history_end.tzinfo is None:
            raise ValueError("history_end must be timezone-aware")
        self.seed = seed
        self.accounts = accounts
        self.trades_per_account = trades_per_account
        self.open_trades = min(open_trades, trades_per_account)
        self.correction_rate = correction_rate
        self.cancel_rate = cancel_rate
        self.fault_rate = fault_rate
        self.fault_kinds = kinds
        self.malformed_rate = malformed_rate
        self.retry_after = retry_after
        self.latency = latency
        self.password = password
        self.token_ttl = token_ttl
        self.page_size = page_size
        self.user_limit = user_limit
        self.app_limit = app_limit
        self.history_days = history_days
        self.history_end = history_end.astimezone(dt.UTC)
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        self.sleep = sleep
        self.fills = fills
        self.stats = SimStats()
        self._prefix = httpx.URL(self.base_url).path.rstrip("/")
        self._fault_rng = random.Random(seed)  # noqa: S311 - simulated faults, not cryptography
        self._tokens: dict[str, _Token] = {}
        self._refresh: dict[str, str] = {}
        self._feeds: dict[tuple[str, str], _Feed] = {}
        self._fill_feeds: dict[tuple[str, str], FillFeed] = {}
        self._windows: dict[str, collections.deque[float]] = {}

    # -- the data ------------------------------------------------------------------------------

    def user_accounts(self, username: str) -> list[SimAccount]:
        """Return the accounts ``username`` has (deterministic from the seed and the username)."""
        tag = f"{stable_int(self.seed, username):016X}"[:6]
        result = []
        for n in range(self.accounts):
            name, currency, kind, instruments = ACCOUNT_KINDS[n % len(ACCOUNT_KINDS)]
            result.append(
                SimAccount(
                    id=f"SIM{n + 1}-{tag}",
                    name=f"{name} {n + 1}",
                    currency=currency,
                    type=kind,
                    instruments=instruments,
                    base=stable_int(self.seed, username, n) & 0xFFFFFFFFFFFF,
                    n_trades=self.trades_per_account,
                    history_end=self.history_end,
                    history_days=self.history_days,
                    open_trades=self.open_trades,
                )
            )
        return result

    def fills_account(self, username: str) -> dict[str, Any] | None:
        """Return the wire record of ``username``'s fills account (``None`` unless ``fills=True``)."""
        if not self.fills:
            return None
        account_id = fills_account_id(f"{stable_int(self.seed, username):016X}"[:6])
        return {"id": account_id, "name": "Fills", "currency": "USD", "type": "fills"}

    def fill_feed(self, username: str, account_id: str) -> FillFeed:
        """Return the fills account's feed (its script and what the broker published so far)."""
        account = self.fills_account(username)
        if account is None or account["id"] != account_id:
            raise _Reject(404, "not_found", f"account {account_id!r} has no fills")
        key = (username, account_id)
        if key not in self._fill_feeds:
            self._fill_feeds[key] = FillFeed.new(account_id, self.seed, self.history_end)
        return self._fill_feeds[key]

    def end_sessions(self, username: str) -> int:
        """Expire every access token of ``username`` now, as a broker ending sessions does.

        Refresh tokens stay valid, so a client can renew. Returns how many tokens were ended.
        """
        ended = 0
        for token in self._tokens.values():
            if token.username == username and not token.revoked:
                token.revoked = True
                ended += 1
        return ended

    def is_malformed(self, account_id: str, index: int) -> bool:
        """Whether trade ``index`` of ``account_id`` is broken at the source."""
        if self.malformed_rate <= 0:
            return False
        return stable_int(self.seed, "malformed", account_id, index) % 1_000_000 < self.malformed_rate * 1_000_000

    def _feed(self, username: str, account_id: str) -> _Feed:
        key = (username, account_id)
        feed = self._feeds.get(key)
        if feed is None:
            account = next((a for a in self.user_accounts(username) if a.id == account_id), None)
            if account is None:
                raise _Reject(404, "not_found", f"account {account_id!r} not found")
            feed = _Feed(account=account, order=array("l", range(account.n_trades)))
            self._feeds[key] = feed
        return feed

    def expected_trades(self, username: str) -> dict[str, dict[str, Any]]:
        """Every well-formed trade of ``username`` in its current version, keyed by trade id.

        What a complete, correct sync must hold at this moment (tests compare against it).
        """
        result: dict[str, dict[str, Any]] = {}
        for account in self.user_accounts(username):
            feed = self._feeds.get((username, account.id))
            for index in range(account.n_trades):
                if self.is_malformed(account.id, index):
                    continue
                version = feed.versions.get(index, 1) if feed else 1
                updated = feed.updated.get(index) if feed else None
                record = wire_trade(account, index, version=version, updated_at=updated)
                if feed is not None and index in feed.cancelled:
                    _mark_cancelled(record, feed.cancelled[index])
                result[record["id"]] = record
        return result

    def expected_cancellations(self, username: str) -> dict[str, dict[str, Any]]:
        """Every trade of ``username`` the broker has cancelled so far, keyed by trade id.

        Each value has ``account`` and ``cancelledAt``. Broken records count too: their cancellation
        is well-formed even when the trade record is not.
        """
        result: dict[str, dict[str, Any]] = {}
        for account in self.user_accounts(username):
            feed = self._feeds.get((username, account.id))
            for index, when in sorted(feed.cancelled.items()) if feed else ():
                record = _mark_cancelled(wire_trade(account, index), when)
                result[record["id"]] = {"account": account.id, "cancelledAt": record["cancelledAt"]}
        return result

    def _correct(self, username: str, feed: _Feed) -> None:
        """Publish one round of broker corrections (and busts), visible to the next listing."""
        if (self.correction_rate <= 0 and self.cancel_rate <= 0) or feed.account.n_trades == 0:
            return
        feed.rounds += 1
        n = feed.account.n_trades
        now = self.clock()
        if self.cancel_rate > 0:
            rng = random.Random(stable_int(self.seed, "busts", username, feed.account.id, feed.rounds))  # noqa: S311
            candidates = [i for i in range(n) if i not in feed.cancelled]
            for index in sorted(rng.sample(candidates, k=min(len(candidates), max(1, round(n * self.cancel_rate))))):
                feed.cancelled[index] = now
                feed.updated[index] = now
                feed.order[_find(feed.order, index)] = -1
                feed.order.append(index)
        if self.correction_rate <= 0:
            return
        rng = random.Random(stable_int(self.seed, "corrections", username, feed.account.id, feed.rounds))  # noqa: S311
        chosen = {i for i in range(n - feed.account.open_trades, n) if feed.versions.get(i, 1) == 1}
        chosen.update(rng.sample(range(n), k=min(n, max(1, round(n * self.correction_rate)))))
        for index in sorted(chosen):
            feed.versions[index] = feed.versions.get(index, 1) + 1
            feed.updated[index] = now
            position = _find(feed.order, index)
            feed.order[position] = -1
            feed.order.append(index)

    # -- serving -------------------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        """Return an httpx transport that serves this API in-process (pass it as ``transport=``)."""
        return httpx.MockTransport(self.handle)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request (after ``latency``), as the broker would."""
        if self.latency:
            await self.sleep(self.latency)
        return self.handle_now(request)

    def handle_now(self, request: httpx.Request) -> httpx.Response:
        """Answer one request immediately (no latency). Raises ``httpx.ReadTimeout`` for a timeout fault."""
        self.stats.requests += 1
        try:
            route, params = self._route(request)
            self.stats.by_path[route] += 1
            self._check_limits(request, route)
            self._inject_fault(request, route)
            body = self._dispatch(request, route, params)
        except _Reject as reject:
            payload = {"error": reject.error, "message": reject.message}
            return httpx.Response(reject.status, json=payload, headers=reject.headers, request=request)
        return httpx.Response(200, json=body, request=request)

    def _route(self, request: httpx.Request) -> tuple[str, dict[str, str]]:
        path = request.url.path
        if not path.startswith(self._prefix + "/"):
            raise _Reject(404, "not_found", f"no route {path}")
        parts = path[len(self._prefix) :].strip("/").split("/")
        method = request.method
        if parts == ["auth", "token"] and method == "POST":
            return "POST /auth/token", {}
        if parts == ["auth", "renew"] and method == "POST":
            return "POST /auth/renew", {}
        if parts == ["accounts"] and method == "GET":
            return "GET /accounts", {}
        if len(parts) == 3 and parts[0] == "accounts" and parts[2] == "trades" and method == "GET":
            return "GET /accounts/{id}/trades", {"account_id": parts[1]}
        if len(parts) == 3 and parts[0] == "accounts" and parts[2] == "fills" and method == "GET":
            return "GET /accounts/{id}/fills", {"account_id": parts[1]}
        raise _Reject(404, "not_found", f"no route {method} {path}")

    def _count(self, key: str, limit: tuple[int, float], now: float) -> bool:
        window = self._windows.setdefault(key, collections.deque())
        while window and window[0] <= now - limit[1]:
            window.popleft()
        if len(window) >= limit[0]:
            return False
        window.append(now)
        return True

    def _check_limits(self, request: httpx.Request, route: str) -> None:
        now = self.clock().timestamp()
        token = self._tokens.get(_bearer(request) or "")
        user_key = f"user:{token.username}" if token else None
        if not self._count("app", self.app_limit, now):
            self._over_limit("the API's", self.app_limit)
        if user_key is not None and not self._count(user_key, self.user_limit, now):
            self._windows["app"].pop()  # the refused request does not use the shared window
            self._over_limit("this user's", self.user_limit)
        self.stats.peak_app_window = max(self.stats.peak_app_window, len(self._windows["app"]))
        if user_key is not None:
            self.stats.peak_user_window = max(self.stats.peak_user_window, len(self._windows[user_key]))

    def _over_limit(self, whose: str, limit: tuple[int, float]) -> None:
        self.stats.limit_exceeded += 1
        raise _Reject(
            429,
            "rate_limited",
            f"over {whose} limit of {limit[0]} requests per {limit[1]:g} s",
            {"Retry-After": f"{limit[1]:g}"},
        )

    def _inject_fault(self, request: httpx.Request, route: str) -> None:
        if self.fault_rate <= 0 or self._fault_rng.random() >= self.fault_rate:
            return
        kinds = [k for k in self.fault_kinds if k != "token_expiry" or not route.startswith("POST /auth")]
        if not kinds:
            return
        kind = kinds[self._fault_rng.randrange(len(kinds))]
        if kind == "token_expiry":
            token = self._tokens.get(_bearer(request) or "")
            if token is None:
                return
            token.revoked = True  # the broker ended the session early
        self.stats.faults[kind] += 1
        if kind == "rate_limit":
            raise _Reject(429, "rate_limited", "too many requests", {"Retry-After": f"{self.retry_after:g}"})
        if kind == "server_error":
            raise _Reject(503, "unavailable", "the service is temporarily unavailable")
        if kind == "timeout":
            raise httpx.ReadTimeout("simulated broker timeout", request=request)

    def _dispatch(self, request: httpx.Request, route: str, params: dict[str, str]) -> dict[str, Any]:
        if route == "POST /auth/token":
            return self._login(_json(request))
        if route == "POST /auth/renew":
            return self._renew(_json(request))
        username = self._authorize(request)
        if route == "GET /accounts":
            fills = self.fills_account(username)
            return {"accounts": [a.wire() for a in self.user_accounts(username)] + ([fills] if fills else [])}
        if route == "GET /accounts/{id}/fills":
            return self._fills(username, params["account_id"], request)
        return self._trades(username, params["account_id"], request)

    def _issue(self, username: str, refresh_token: str) -> dict[str, Any]:
        access = "sim-at-" + secrets.token_urlsafe(24)
        expires_at = self.clock() + self.token_ttl
        self._tokens[access] = _Token(username=username, expires_at=expires_at)
        return {
            "access_token": access,
            "refresh_token": refresh_token,
            "token_type": "Bearer",
            "expires_at": expires_at.isoformat().replace("+00:00", "Z"),
        }

    def _login(self, body: dict[str, Any]) -> dict[str, Any]:
        username, password = body.get("username"), body.get("password")
        if not isinstance(username, str) or not username or not isinstance(password, str):
            raise _Reject(400, "bad_request", "username and password are required")
        if not secrets.compare_digest(password.encode(), self.password.encode()):
            raise _Reject(401, "invalid_credentials", "incorrect username or password")
        self.stats.logins += 1
        refresh = "sim-rt-" + secrets.token_urlsafe(24)
        self._refresh[refresh] = username
        return self._issue(username, refresh)

    def _renew(self, body: dict[str, Any]) -> dict[str, Any]:
        refresh = body.get("refresh_token")
        username = self._refresh.get(refresh) if isinstance(refresh, str) else None
        if username is None:
            raise _Reject(401, "invalid_refresh_token", "the refresh token is unknown or revoked; log in again")
        self.stats.renewals += 1
        return self._issue(username, refresh)  # type: ignore[arg-type]  # a known refresh token is a str

    def _authorize(self, request: httpx.Request) -> str:
        token = self._tokens.get(_bearer(request) or "")
        if token is None:
            raise _Reject(401, "invalid_token", "missing or unknown access token")
        if token.revoked or token.expires_at <= self.clock():
            raise _Reject(401, "token_expired", "the access token has expired; renew it")
        return token.username

    def _trades(self, username: str, account_id: str, request: httpx.Request) -> dict[str, Any]:
        query = {k: v[-1] for k, v in parse_qs(request.url.query.decode()).items()}
        feed = self._feed(username, account_id)
        try:
            limit = int(query.get("limit", self.page_size))
            position = _decode_cursor(query["cursor"]) if query.get("cursor") else 0
            since = dt.datetime.fromisoformat(query["since"].replace("Z", "+00:00")) if query.get("since") else None
        except ValueError as exc:
            raise _Reject(400, "bad_request", f"invalid query: {exc}") from None
        if not 1 <= limit <= _MAX_PAGE or position > len(feed.order) or (since is not None and since.tzinfo is None):
            raise _Reject(400, "bad_request", "limit must be 1..1000, cursor from this API, since tz-aware")
        records: list[dict[str, Any]] = []
        while position < len(feed.order) and len(records) < limit:
            index = feed.order[position]
            position += 1
            if index < 0:
                continue
            record = wire_trade(
                feed.account,
                index,
                version=feed.versions.get(index, 1),
                updated_at=feed.updated.get(index),
                malformed=self.is_malformed(account_id, index),
            )
            if index in feed.cancelled:
                _mark_cancelled(record, feed.cancelled[index])
            if since is not None and dt.datetime.fromisoformat(record["updatedAt"].replace("Z", "+00:00")) < since:
                continue
            records.append(record)
        has_more = position < len(feed.order)
        self.stats.trades_served += len(records)
        if not has_more:
            self._correct(username, feed)
        return {"trades": records, "next_cursor": _encode_cursor(position), "has_more": has_more}

    def _fills(self, username: str, account_id: str, request: httpx.Request) -> dict[str, Any]:
        query = {k: v[-1] for k, v in parse_qs(request.url.query.decode()).items()}
        feed = self.fill_feed(username, account_id)
        try:
            limit = int(query.get("limit", self.page_size))
            position = _decode_cursor(query["cursor"]) if query.get("cursor") else 0
            since = dt.datetime.fromisoformat(query["since"].replace("Z", "+00:00")) if query.get("since") else None
        except ValueError as exc:
            raise _Reject(400, "bad_request", f"invalid query: {exc}") from None
        if not 1 <= limit <= _MAX_PAGE or position > len(feed.order) or (since is not None and since.tzinfo is None):
            raise _Reject(400, "bad_request", "limit must be 1..1000, cursor from this API, since tz-aware")
        records: list[dict[str, Any]] = []
        while position < len(feed.order) and len(records) < limit:
            fill = feed.order[position]
            position += 1
            if fill is None:
                continue
            if since is not None and dt.datetime.fromisoformat(fill["updatedAt"].replace("Z", "+00:00")) < since:
                continue
            records.append(dict(fill))
        has_more = position < len(feed.order)
        if not has_more:
            feed.publish_round(self.clock())
        return {"fills": records, "next_cursor": _encode_cursor(position), "has_more": has_more}


def _mark_cancelled(record: dict[str, Any], when: dt.datetime) -> dict[str, Any]:
    # Like IBKR's TradeCancel rows: the trade's id, when the broker busted it, and its code.
    record["status"] = "CANCELLED"
    record["cancelledAt"] = when.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    record["cancelReason"] = "busted by the exchange"
    return record


def _find(order: array[int], index: int) -> int:
    # A trade never corrected is still at its original position; a corrected one sits in the tail
    # that corrections appended, so scan that from the end.
    if index < len(order) and order[index] == index:
        return index
    for position in range(len(order) - 1, -1, -1):
        if order[position] == index:
            return position
    raise ValueError(index)


def _bearer(request: httpx.Request) -> str | None:
    value = request.headers.get("Authorization", "")
    return value[7:] if value.startswith("Bearer ") else None


def _json(request: httpx.Request) -> dict[str, Any]:
    try:
        body = json.loads(request.content or b"{}")
    except ValueError:
        raise _Reject(400, "bad_request", "the body must be JSON") from None
    if not isinstance(body, dict):
        raise _Reject(400, "bad_request", "the body must be a JSON object")
    return body


def _encode_cursor(position: int) -> str:
    return f"c1.{position:x}"


def _decode_cursor(cursor: str) -> int:
    if not cursor.startswith("c1."):
        raise ValueError(f"unknown cursor {cursor!r}")
    return int(cursor[3:], 16)
