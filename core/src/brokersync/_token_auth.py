"""How the core attaches a connection's access token to a plugin's requests.

Re-exported from :mod:`brokersync.models` and the package root.
"""

from __future__ import annotations

import attrs

__all__ = ["TokenAuth"]


@attrs.frozen(kw_only=True)
class TokenAuth:
    """How the core attaches the connection's access token to a plugin's requests.

    With ``BrokerMetadata.token_auth`` set, ``ctx.http`` adds the current token to every request
    a hook sends (except from ``authenticate`` and ``refresh_token``), so a plugin builds no auth
    header and never holds a stale token. Either way (set or not), when the broker answers 401 in
    a sync the core refreshes the token once (``refresh_token``, else ``authenticate`` from the
    stored credentials), stores it, and resends the request with the new token.

    Attributes:
        header: The header carrying the token (``None``: not in a header).
        prefix: Written before the token in the header (``"Bearer "``).
        query: The query parameter carrying the token instead (e.g. IBKR Flex's ``t``).
    """

    header: str | None = "Authorization"
    prefix: str = "Bearer "
    query: str | None = None

    def __attrs_post_init__(self) -> None:
        if (self.header is None) == (self.query is None):
            raise ValueError("TokenAuth needs exactly one of header= or query=")

    @classmethod
    def bearer(cls) -> TokenAuth:
        """Send ``Authorization: Bearer <token>`` (the default of most REST APIs)."""
        return cls()

    @classmethod
    def in_header(cls, name: str, prefix: str = "") -> TokenAuth:
        """Send the token in header ``name`` (after ``prefix``)."""
        return cls(header=name, prefix=prefix)

    @classmethod
    def in_query(cls, name: str) -> TokenAuth:
        """Send the token in query parameter ``name``."""
        return cls(header=None, prefix="", query=name)
