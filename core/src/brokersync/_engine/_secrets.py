"""Sealing and opening a connection's secrets in the vault, each bound to its row and column."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from brokersync._engine._tokens import auth_from_json, auth_to_json
from brokersync.errors import NeedsReauthError
from brokersync.models import AuthResult

if TYPE_CHECKING:
    from brokersync._store import ConnectionRow
    from brokersync._vault import Vault

__all__ = ["Secrets"]


class Secrets:
    """Credentials and tokens of connections, encrypted with ``<connection id>:<column>`` as associated data.

    Args:
        vault: Returns the vault (built on first use by the engine).
    """

    def __init__(self, vault: Callable[[], Vault]) -> None:
        self._vault = vault

    def check(self) -> None:
        """Build the vault now: a missing or unusable key fails before anything is sent or recorded."""
        self._vault()

    def active_key_id(self) -> str:
        """The id of the key new secrets are encrypted with."""
        return self._vault().active_key_id

    def seal_credentials(self, connection_id: str, credentials: Mapping[str, str]) -> str:
        """The credentials' ciphertext for the ``connections.credentials`` column."""
        return self._vault().encrypt_json(dict(credentials), aad=f"{connection_id}:credentials")

    def seal_token(self, connection_id: str, auth: AuthResult) -> str:
        """The token's ciphertext for the ``connections.token`` column."""
        return self._vault().encrypt_json(auth_to_json(auth), aad=f"{connection_id}:token")

    def open_credentials(self, row: ConnectionRow) -> dict[str, Any]:
        """The stored credentials (``NeedsReauthError`` when the connection has none)."""
        if not row.credentials:
            raise NeedsReauthError(f"connection {row.id} has no stored credentials; reconnect it")
        return self._vault().decrypt_json(
            row.credentials, aad=f"{row.id}:credentials", what=f"the credentials of connection {row.id}"
        )

    def open_token(self, row: ConnectionRow) -> AuthResult | None:
        """The cached token, if any."""
        if not row.token:
            return None
        data = self._vault().decrypt_json(row.token, aad=f"{row.id}:token", what=f"the token of connection {row.id}")
        return auth_from_json(data)

    def rotation(self) -> Callable[[str, str, str], str | None]:
        """``transform(connection_id, column, ciphertext)`` for ``Store.rotate_secrets``: the value
        re-encrypted under the active key, or ``None`` when it already is."""
        vault = self._vault()

        def transform(connection_id: str, column: str, value: str) -> str | None:
            what = f"the {'credentials' if column == 'credentials' else 'token'} of connection {connection_id}"
            if not vault.needs_rotation(value, what=what):
                return None
            return vault.rotate(value, aad=f"{connection_id}:{column}", what=what)

        return transform
