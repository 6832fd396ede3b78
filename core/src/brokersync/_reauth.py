"""Re-authentication belongs to the core: the token a facade's requests carry, and its renewal on 401.

A :class:`TokenSession` lives on each broker facade (one per connection in a sync). The facade
adopts the token it hands to ``get_accounts`` / ``get_trades``; ``ctx.http``:

* attaches the current token to each request when the plugin declared how
  (``BrokerMetadata.token_auth``), and in any case swaps a token the session knows was replaced
  for the current one wherever the plugin put it (header or query value), so an async generator
  still holding the ``auth`` it started with keeps working after a renewal;
* on HTTP 401 asks the session to renew, once: single-flight (concurrent 401s share one renewal;
  a request rejected with a token already replaced just resends with the newer one), through the
  engine's token bookkeeping (``refresh_token`` if the plugin has it, else ``authenticate`` from
  the stored credentials, then stored encrypted), and resends the same request. A second 401, or
  a refused login, is a :class:`~brokersync.errors.BrokerAuthError` (the connection needs re-auth).

Requests sent from ``authenticate`` and ``refresh_token`` themselves are left alone: no token is
attached and a 401 there is the answer, not a reason to renew (see :func:`token_call`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from brokersync.models import AuthResult, TokenAuth

__all__ = ["Renewer", "TokenSession", "TokenSource", "in_token_call", "renew_token", "token_call"]

Renewer = Callable[["AuthResult"], Awaitable["AuthResult"]]

_IN_TOKEN_CALL: contextvars.ContextVar[bool] = contextvars.ContextVar("brokersync_in_token_call", default=False)


@contextlib.contextmanager
def token_call() -> Iterator[None]:
    """Mark requests sent inside the block as part of obtaining a token (no attach, no renewal)."""
    marker = _IN_TOKEN_CALL.set(True)
    try:
        yield
    finally:
        _IN_TOKEN_CALL.reset(marker)


def in_token_call() -> bool:
    """Whether the current task is inside :func:`token_call`."""
    return _IN_TOKEN_CALL.get()


def _swap(value: Any, replaced: Mapping[str, str], current: str) -> Any:
    if not isinstance(value, str):
        return value
    for old in replaced:
        if old and old in value:
            return value.replace(old, current)
    return value


class TokenSession:
    """The token one facade's requests carry, and how to get a new one.

    Args:
        placement: How to attach the token (``None``: the plugin does; stale tokens are still swapped).
    """

    def __init__(self, placement: TokenAuth | None = None) -> None:
        self.placement = placement
        self.current: AuthResult | None = None
        #: Set by the engine: renews a rejected token (refresh, else log in again) and stores it.
        self.renewer: Renewer | None = None
        #: How many times a 401 made the session renew the token.
        self.renewals = 0
        self._replaced: dict[str, str] = {}
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"TokenSession(has_token={self.current is not None}, renewals={self.renewals})"

    def adopt(self, auth: AuthResult | None) -> None:
        """Use ``auth`` from now on, unless it is a token this session already replaced."""
        if auth is None or auth.access_token in self._replaced:
            return
        if self.current is not None and self.current.access_token != auth.access_token:
            self._remember(self.current.access_token, auth.access_token)
        self.current = auth

    def _remember(self, old: str, new: str) -> None:
        for key, value in self._replaced.items():
            if value == old:
                self._replaced[key] = new
        self._replaced[old] = new

    def prepare(self, kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
        """The request arguments with the current token, and the token they carry (None: none)."""
        out = dict(kwargs)
        current = self.current
        if current is None or in_token_call():
            return out, None
        token = current.access_token
        carried = False
        if self._replaced:
            headers = out.get("headers")
            if isinstance(headers, Mapping):
                out["headers"] = {k: _swap(v, self._replaced, token) for k, v in headers.items()}
            params = out.get("params")
            if isinstance(params, Mapping):
                out["params"] = {k: _swap(v, self._replaced, token) for k, v in params.items()}
        placement = self.placement
        if placement is not None:
            if placement.header is not None:
                out["headers"] = {**dict(out.get("headers") or {}), placement.header: placement.prefix + token}
            else:
                assert placement.query is not None
                out["params"] = {**dict(out.get("params") or {}), placement.query: token}
            carried = True
        else:
            values = [*dict(out.get("headers") or {}).values(), *_param_values(out.get("params"))]
            carried = any(isinstance(v, str) and token in v for v in values)
        return out, token if carried else None

    @property
    def can_renew(self) -> bool:
        """Whether a rejected token can be renewed here (an engine is behind, outside token calls)."""
        return self.renewer is not None and not in_token_call()

    async def renew(self, rejected: str) -> AuthResult:
        """A token to resend with after the broker rejected ``rejected``: renewed once per rejection.

        Concurrent callers rejected with the same token share one renewal; a caller rejected with a
        token already replaced gets the newer one without renewing again.

        Raises:
            BrokerAuthError: The renewal and the fresh login were both refused.
        """
        assert self.renewer is not None
        async with self._lock:
            current = self.current
            if current is not None and current.access_token != rejected:
                return current
            assert current is not None
            new = await self.renewer(current)
            self.renewals += 1
            self._remember(current.access_token, new.access_token)
            self.current = new
            return new


class TokenSource(Protocol):
    """What renews a token: the broker facade's ``refresh_token`` and ``authenticate``."""

    async def refresh_token(self, credentials: Mapping[str, Any], auth: AuthResult) -> AuthResult | None:
        """Renew ``auth``; ``None`` if the plugin cannot."""
        ...

    async def authenticate(self, credentials: Mapping[str, Any]) -> AuthResult:
        """Log in with ``credentials``."""
        ...


def _param_values(params: Any) -> list[Any]:
    if isinstance(params, Mapping):
        return list(params.values())
    return []


async def renew_token(broker: TokenSource, credentials: Mapping[str, Any], rejected: AuthResult) -> AuthResult:
    """A new token for ``rejected``: the plugin's ``refresh_token`` if it has one and it works, else a login.

    Raises:
        BrokerAuthError: The login from the credentials was refused.
    """
    from brokersync.errors import BrokerAuthError

    new: AuthResult | None = None
    try:
        new = await broker.refresh_token(credentials, rejected)
    except BrokerAuthError:
        new = None  # the refresh was refused too: log in again
    if new is None:
        new = await broker.authenticate(credentials)
    return new
