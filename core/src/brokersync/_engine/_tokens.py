"""Token bookkeeping: a valid token per connection, and its (vault-bound) serialized form.

The token is serialized through a cattrs converter (:data:`token_converter`) before the vault
encrypts it; :class:`TokenKeeper` hands out a token that is not about to expire, refreshing or
re-issuing it and persisting every new one at once; a token the broker rejects with 401 in the
middle of a hook is renewed through it too (:meth:`TokenKeeper.renew_rejected`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import cattrs

from brokersync._broker import Broker
from brokersync._clocks import WallClock
from brokersync._reauth import renew_token
from brokersync.errors import BrokerAuthError
from brokersync.models import AuthResult, Credentials

__all__ = ["TokenKeeper", "TokenLocks", "auth_from_json", "auth_to_json", "token_converter"]


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter()
    converter.register_unstructure_hook(dt.datetime, dt.datetime.isoformat)
    converter.register_structure_hook(dt.datetime, lambda value, _: dt.datetime.fromisoformat(value))
    return converter


#: Token <-> JSON-able mapping (what the vault encrypts). Stable: stored tokens must stay readable.
token_converter = _make_converter()


def auth_to_json(auth: AuthResult) -> dict[str, Any]:
    """The token as a JSON-able mapping (encrypted by the vault before it is stored)."""
    data: dict[str, Any] = token_converter.unstructure(auth, AuthResult)
    return data


def auth_from_json(data: Mapping[str, Any]) -> AuthResult:
    """The inverse of :func:`auth_to_json`."""
    return token_converter.structure(data, AuthResult)


class TokenLocks:
    """One lock per connection while someone uses it: a refresh at a time, memory bounded.

    Weak values: a connection's lock lives as long as a run holds it, so a worker that syncs
    many thousands of connections keeps only the locks of the runs in flight.
    """

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def __len__(self) -> int:
        return len(self._locks)

    def for_connection(self, connection_id: str) -> asyncio.Lock:
        """The lock of ``connection_id`` (the same object for runs that overlap)."""
        lock = self._locks.get(connection_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[connection_id] = lock
        return lock


SaveToken = Callable[[AuthResult], Awaitable[None]]


class TokenKeeper:
    """Hands out a valid token for one connection: cached, refreshed before expiry, or re-issued.

    One refresh at a time per connection: callers share ``lock`` (see :class:`TokenLocks`), and
    across processes the sync lease already serializes runs.
    """

    def __init__(
        self,
        *,
        broker: Broker,
        credentials: Credentials,
        cached: AuthResult | None,
        save: SaveToken,
        lock: asyncio.Lock,
        margin: dt.timedelta,
        clock: WallClock,
    ) -> None:
        self._broker = broker
        self._credentials = credentials
        self._auth = cached
        self._save = save
        self._lock = lock
        self._margin = margin
        self._clock = clock
        # This run's login from the stored credentials was refused: asking again only hammers the broker.
        self._refused: BrokerAuthError | None = None
        # A 401 in the middle of a hook renews through here (see brokersync._reauth).
        broker.token_session.renewer = self.renew_rejected

    async def token(self) -> AuthResult:
        """A token that is not about to expire."""
        async with self._lock:
            auth = self._auth
            if auth is not None and not auth.expires_within(self._margin, now=self._clock()):
                return auth
            new: AuthResult | None = None
            if auth is not None:
                try:
                    new = await self._broker.refresh_token(self._credentials, auth)
                except BrokerAuthError:
                    new = None  # the refresh token was refused: fall back to the credentials
            if new is None:
                new = await self._broker.authenticate(self._credentials)
            await self._save(new)
            self._auth = new
            return new

    async def renew_rejected(self, rejected: AuthResult) -> AuthResult:
        """Renew a token the broker rejected with 401: refresh it, else log in again; store it.

        Raises:
            BrokerAuthError: The login from the stored credentials was refused too.
        """
        async with self._lock:
            if self._auth is not None and self._auth.access_token != rejected.access_token:
                return self._auth  # another task already replaced it
            if self._refused is not None:
                raise self._refused
            try:
                new = await renew_token(self._broker, self._credentials, rejected)
            except BrokerAuthError as exc:
                self._refused = exc  # the refresh failed and the login was refused
                raise
            await self._save(new)
            self._auth = new
            return new

    async def reissue(self, rejected: AuthResult) -> AuthResult:
        """Authenticate again after the broker rejected ``rejected`` (e.g. revoked early).

        Raises:
            BrokerAuthError: The login was refused, now or already in this run (then not asked again).
        """
        async with self._lock:
            if self._auth is not None and self._auth is not rejected:
                return self._auth  # another task already replaced it
            if self._refused is not None:
                raise self._refused  # ctx.http's renewal already tried this login
            new = await self._broker.authenticate(self._credentials)
            await self._save(new)
            self._auth = new
            return new
