"""The key file and the database belong together: never make a new key for secrets an old one sealed.

Without ``BROKERSYNC_ENCRYPTION_KEYS`` the vault reads the key file in the data directory. On a
fresh installation the engine creates that file (and warns: back it up). If it is missing while
the database already holds encrypted credentials or tokens, a new key could open none of them and
would encrypt new secrets with a key nobody backed up: the engine refuses, says where the key was
expected and how to restore it.
"""

from __future__ import annotations

import os
from pathlib import Path

from brokersync._keys import ENV_VAR, key_file_path
from brokersync._store import Store, safe_url
from brokersync.errors import ConfigurationError

__all__ = ["missing_key_file", "prepare_key_file"]


def missing_key_file(path: Path, database_url: str, secrets: int | None) -> ConfigurationError:
    """The error for a key file that is not where it should be (``secrets``: how many rows need it)."""
    holds = (
        f"the database {safe_url(database_url)} holds encrypted secrets of {secrets} connection(s) that only "
        "that key can open"
        if secrets
        else f"the database {safe_url(database_url)} may hold secrets that only that key can open"
    )
    return ConfigurationError(
        f"the encryption key file {path} is missing and {holds}; brokersync will not create a new key in its "
        f"place. Restore the file from your back-up to {path} (mode 0600), or set {ENV_VAR} to the backed-up "
        "key entries. If the key is lost for good, disconnect the connections with --delete-trades or move "
        "the database away and connect again."
    )


async def prepare_key_file(store: Store, data_dir: Path) -> int:
    """Create the data directory's key file when it is missing and the database holds no secrets.

    Returns:
        How many connections hold secrets the missing key file was made for (0: nothing missing).
        The file is then left missing: whatever needs the vault fails with :func:`missing_key_file`,
        reads that need no key keep working. Nothing to do when the keys come from
        ``BROKERSYNC_ENCRYPTION_KEYS``.
    """
    if ENV_VAR in os.environ:
        return 0
    path = key_file_path(data_dir)
    if path.exists():
        return 0
    secrets = await store.count_secrets()
    if secrets:
        return secrets
    from brokersync._vault import Vault

    Vault.from_data_dir(data_dir, create=True)  # creates it (mode 0600) and warns: back it up
    return 0
