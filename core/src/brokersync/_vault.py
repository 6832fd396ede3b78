"""The credential vault: AES-256-GCM with a key id in every value and row-bound associated data.

A vault value is text, safe for any database column::

    v1:<key id>:<urlsafe base64 (no padding) of 12-byte nonce + ciphertext + 16-byte tag>

- A fresh random 96-bit nonce per encryption.
- The associated data (AAD) authenticates, without storing, the format version, the key id and the
  caller's ``aad`` (the engine passes the connection id and a purpose such as ``"credentials"``).
  A value copied to another row, or edited in place, fails to decrypt instead of yielding garbage.
- The key id says which key decrypts; the first configured key encrypts. Rotation = add a new
  active key, :meth:`Vault.rotate` every stored value, then retire the old key.

Keys come from ``BROKERSYNC_ENCRYPTION_KEYS`` or a 0600 key file in the data directory (see
:mod:`brokersync._keys` for the formats). Decryption failures raise :class:`VaultError` naming the
value (``what``) and the key id; never key material, plaintext or a cryptography traceback.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from brokersync import _keys
from brokersync._keys import ENV_VAR, KEY_BYTES, KeyEntry
from brokersync.errors import ConfigurationError, VaultError

__all__ = ["ENV_VAR", "Vault"]

_VERSION = "v1"
_NONCE_BYTES = 12
_TAG_BYTES = 16
_AAD_PREFIX = b"brokersync-vault\x00"
_VERSION_SHAPE = re.compile(r"v[0-9]{1,4}")
_DEFAULT_WHAT = "an encrypted value"


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes | None:
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return None
    # Canonical only: base64 tolerates edits of the unused low bits of the last character, and a
    # stored value that changed in any way must not decrypt.
    return data if _b64encode(data) == text else None


def _full_aad(key_id: str, aad: str) -> bytes:
    if not isinstance(aad, str):
        raise TypeError(f"aad must be a string, got {type(aad).__name__}")
    if not aad:
        raise ValueError("aad must not be empty: it binds the value to its row (e.g. '<connection id>:credentials')")
    # Length-free but unambiguous: the version and key id never contain NUL; the caller's aad comes last.
    return b"%s%s\x00%s\x00%s" % (_AAD_PREFIX, _VERSION.encode(), key_id.encode(), aad.encode("utf-8", "surrogatepass"))


class Vault:
    """Encrypts and decrypts secrets for storage with AES-256-GCM.

    Build one with :meth:`default` (env keys, else the data directory's key file),
    :meth:`from_env`, :meth:`from_data_dir`, :meth:`from_spec`, or directly from keys.
    Its ``repr`` shows key ids only, and it refuses to be pickled, so keys do not travel.

    A vault read from a key file notices when another process changes the file (``brokersync keys
    rotate``): it re-reads it before encrypting, and when it meets a key id it does not know, so
    long-running workers adopt a new active key without a restart.

    Args:
        keys: ``key_id -> 32 key bytes``, or ``(key_id, key)`` pairs. The FIRST key is active
            (encrypts); all of them decrypt.
        source: Where the keys came from, used in error messages (e.g. the env variable's name).
        key_file: The key file the keys were read from, if any (enables :meth:`add_key`).

    Raises:
        ConfigurationError: No key, a malformed key id, a key that is not 32 bytes, or a
            repeated key id. The message never contains key material.
    """

    __slots__ = ("_active", "_ciphers", "_key_file", "_missing_logged", "_source", "_stamp")

    def __init__(
        self,
        keys: Mapping[str, bytes] | Iterable[tuple[str, bytes]],
        *,
        source: str = "the keys given to Vault()",
        key_file: str | os.PathLike[str] | None = None,
    ) -> None:
        entries: list[KeyEntry] = list(keys.items()) if isinstance(keys, Mapping) else list(keys)
        self._source = source
        self._key_file = Path(key_file) if key_file is not None else None
        self._stamp = _keys.file_stamp(self._key_file) if self._key_file is not None else None
        self._missing_logged = False
        self._load(entries)

    def _load(self, entries: list[KeyEntry]) -> None:
        if not entries:
            raise ConfigurationError(f"{self._source}: no encryption key given; the vault needs at least one.")
        ciphers: dict[str, AESGCM] = {}
        for position, (key_id, key) in enumerate(entries, start=1):
            if not _keys.check_key_id(key_id):
                raise ConfigurationError(f"{self._source}: key {position} has an invalid key id.")
            if not isinstance(key, bytes | bytearray) or len(key) != KEY_BYTES:
                raise ConfigurationError(
                    f"{self._source}: key {key_id!r} must be {KEY_BYTES} bytes (AES-256). Generate one with: "
                    f"{_keys.GENERATE_HINT}"
                )
            if key_id in ciphers:
                raise ConfigurationError(f"{self._source}: key id {key_id!r} is used twice; key ids must be unique.")
            ciphers[key_id] = AESGCM(bytes(key))
        self._ciphers = ciphers
        self._active = entries[0][0]

    # --- construction ---------------------------------------------------------------------------

    @classmethod
    def from_spec(cls, spec: str, *, source: str = "the encryption keys") -> Vault:
        """A vault from comma-separated ``key_id:base64`` entries (the first is active).

        Raises:
            ConfigurationError: ``spec`` is empty or an entry is invalid (named by position).
        """
        return cls(_keys.parse_key_entries(spec, source=source), source=source)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Vault:
        """A vault from ``BROKERSYNC_ENCRYPTION_KEYS`` (comma-separated ``key_id:base64``, first active).

        Args:
            environ: The environment to read; default ``os.environ``.

        Raises:
            ConfigurationError: The variable is unset, empty or holds an invalid entry.
        """
        env = os.environ if environ is None else environ
        spec = env.get(ENV_VAR)
        if spec is None:
            raise ConfigurationError(
                f"{ENV_VAR} is not set. Set it to comma-separated 'key_id:base64' entries "
                f"(the first is active). Generate one with: {_keys.GENERATE_HINT}"
            )
        return cls.from_spec(spec, source=ENV_VAR)

    @classmethod
    def from_key_file(cls, path: str | os.PathLike[str]) -> Vault:
        """A vault from an existing key file (one ``key_id:base64`` per line, first active).

        Raises:
            ConfigurationError: The file is missing, unreadable, accessible by other users, or
                holds an invalid entry (named by line).
        """
        path = Path(path)
        stamp = _keys.file_stamp(path)  # before reading: a change racing the read is seen next time
        vault = cls(_keys.read_key_file(path), source=f"the key file {path}", key_file=path)
        vault._stamp = stamp
        return vault

    @classmethod
    def from_data_dir(cls, data_dir: str | os.PathLike[str], *, create: bool = True) -> Vault:
        """A vault from the key file in ``data_dir``, generating it (mode 0600) if it is missing.

        When a key file is created, a warning is logged with its path: back it up, since the
        stored credentials cannot be decrypted without it.

        Args:
            data_dir: brokersync's data directory (created if needed).
            create: Generate the key file when missing (otherwise a missing file is an error).

        Raises:
            ConfigurationError: The key file cannot be created, or exists but is unusable.
        """
        path = _keys.key_file_path(data_dir)
        if create and not path.exists() and _keys.create_key_file(path):
            from brokersync._log import get_logger

            get_logger(component="vault", key_file=str(path)).warning(
                f"Created a new encryption key file at {path} (mode 0600). Back it up: without it the "
                f"stored credentials cannot be decrypted. Set {ENV_VAR} to manage keys yourself."
            )
        return cls.from_key_file(path)

    @classmethod
    def default(cls, data_dir: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None) -> Vault:
        """The vault brokersync uses: ``BROKERSYNC_ENCRYPTION_KEYS`` if set, else the data dir's key file.

        A set but empty variable is an error rather than a silent fallback to the key file (a
        typo in a deployment must not encrypt new credentials with a key nobody knows about).

        Args:
            data_dir: Where the key file lives (generated with mode 0600 when missing).
            environ: The environment to read; default ``os.environ``.

        Raises:
            ConfigurationError: The keys are invalid or the key file is unusable.
        """
        env = os.environ if environ is None else environ
        if ENV_VAR in env:
            return cls.from_env(env)
        return cls.from_data_dir(data_dir)

    @staticmethod
    def generate_key(key_id: str | None = None) -> str:
        """A new random ``key_id:base64`` entry for ``BROKERSYNC_ENCRYPTION_KEYS`` or the key file.

        Args:
            key_id: The id to use; default: today's UTC date plus a random suffix.

        Raises:
            ValueError: ``key_id`` is not 1-32 letters, digits, ``.``, ``_`` or ``-``.
        """
        return _keys.generate_key(key_id)

    # --- introspection --------------------------------------------------------------------------

    @property
    def active_key_id(self) -> str:
        """The id of the key that encrypts (re-read from the key file if another process changed it)."""
        self._refresh("read the active key")
        return self._active

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every configured key id, the active one first."""
        return tuple(self._ciphers)

    @property
    def source(self) -> str:
        """Where the keys came from (the env variable or the key file), for messages."""
        return self._source

    @property
    def key_file(self) -> Path | None:
        """The key file the keys were read from, or ``None`` (env variable or code)."""
        return self._key_file

    def __repr__(self) -> str:
        return f"Vault(active_key_id={self._active!r}, key_ids={list(self._ciphers)!r}, source={self._source!r})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Vault cannot be pickled (it holds keys); build one in each process with Vault.default()")

    # --- encryption -----------------------------------------------------------------------------

    def encrypt(self, plaintext: bytes | str, *, aad: str) -> str:
        """Encrypt ``plaintext`` with the active key, bound to ``aad``.

        Args:
            plaintext: The secret; text is encoded as UTF-8.
            aad: What the value belongs to, e.g. ``f"{connection_id}:credentials"``. The same
                string must be given to :meth:`decrypt`.

        Returns:
            ``v1:<key id>:<data>``, ASCII text.

        Raises:
            TypeError: ``plaintext`` or ``aad`` has the wrong type.
            ValueError: ``aad`` is empty.
            VaultError: The vault's key file was changed by someone else and is now unusable.
        """
        if isinstance(plaintext, str):
            plaintext = plaintext.encode("utf-8")
        elif not isinstance(plaintext, bytes | bytearray | memoryview):
            raise TypeError(f"plaintext must be bytes or str, got {type(plaintext).__name__}")
        self._refresh("encrypt a value")
        key_id = self._active
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._ciphers[key_id].encrypt(nonce, bytes(plaintext), _full_aad(key_id, aad))
        return f"{_VERSION}:{key_id}:{_b64encode(nonce + sealed)}"

    def decrypt(self, token: str, *, aad: str, what: str = _DEFAULT_WHAT) -> bytes:
        """Decrypt a value made by :meth:`encrypt` with any configured key.

        Args:
            token: The stored value.
            aad: The associated data it was encrypted with.
            what: Names the value in errors, e.g. ``"the credentials of connection 42"``.

        Returns:
            The plaintext bytes.

        Raises:
            VaultError: The value is malformed, its key is not configured, or authentication
                failed (tampered, copied from another row, or a different key under the same id).
                ``key_id`` and ``what`` are set on the error when known.
            TypeError: ``token`` or ``aad`` is not a string.
            ValueError: ``aad`` is empty.
        """
        key_id, blob = self._parse(token, what)
        cipher = self._ciphers.get(key_id)
        if cipher is None and self._refresh(f"decrypt {what}"):
            cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise VaultError(
                f"Cannot decrypt {what}: it was encrypted with key {key_id!r}, which is not configured "
                f"({self._source} has {', '.join(repr(k) for k in self._ciphers)}). "
                f"Add key {key_id!r} back to {self._source}.",
                key_id=key_id,
                what=what,
            )
        full_aad = _full_aad(key_id, aad)
        try:
            return cipher.decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], full_aad)
        except InvalidTag:
            pass
        # Outside the except block: no cryptography exception chained or in the context.
        raise VaultError(
            f"Cannot decrypt {what} with key {key_id!r}: authentication failed. The stored value was "
            f"modified, was copied from another row, or key {key_id!r} in {self._source} is not the key "
            "it was encrypted with.",
            key_id=key_id,
            what=what,
        )

    def encrypt_json(self, data: Mapping[str, Any], *, aad: str) -> str:
        """Encrypt a JSON-serialisable mapping (e.g. credentials or token state), bound to ``aad``.

        Raises:
            TypeError: ``data`` is not a mapping or holds a value JSON cannot represent.
            ValueError: ``data`` holds NaN or infinity (not valid JSON).
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"data must be a mapping, got {type(data).__name__}")
        text = json.dumps(dict(data), ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False)
        return self.encrypt(text, aad=aad)

    def decrypt_json(self, token: str, *, aad: str, what: str = _DEFAULT_WHAT) -> dict[str, Any]:
        """Decrypt a value made by :meth:`encrypt_json`.

        Raises:
            VaultError: As :meth:`decrypt`, or the plaintext is not a JSON object.
        """
        plaintext = self.decrypt(token, aad=aad, what=what)
        try:
            data = json.loads(plaintext.decode("utf-8"))
        except ValueError:  # UnicodeDecodeError and JSONDecodeError; their text quotes the input
            data = None
        if not isinstance(data, dict):
            raise VaultError(f"Cannot read {what}: the decrypted value is not a JSON object.", what=what)
        return data

    # --- rotation -------------------------------------------------------------------------------

    def key_id_of(self, token: str, *, what: str = _DEFAULT_WHAT) -> str:
        """The id of the key ``token`` was encrypted with (without decrypting it).

        Raises:
            VaultError: ``token`` is not a vault value.
        """
        return self._parse(token, what)[0]

    def needs_rotation(self, token: str, *, what: str = _DEFAULT_WHAT) -> bool:
        """Whether ``token`` was encrypted with a key other than the active one.

        A file-backed vault compares with the key file's current active key, so a rotation run
        in another process than the one that added the key still moves every value.

        Raises:
            VaultError: ``token`` is not a vault value.
        """
        key_id = self.key_id_of(token, what=what)
        self._refresh("check a value's key")
        return key_id != self._active

    def rotate(self, token: str, *, aad: str, what: str = _DEFAULT_WHAT) -> str:
        """Re-encrypt ``token`` with the active key (same ``aad``).

        The value is always decrypted first, so a broken value fails here, not later. A value
        already under the active key is returned unchanged.

        Raises:
            VaultError: As :meth:`decrypt`.
        """
        plaintext = self.decrypt(token, aad=aad, what=what)
        if not self.needs_rotation(token, what=what):
            return token
        return self.encrypt(plaintext, aad=aad)

    def add_key(self, entry: str | None = None) -> str:
        """Make a new key the active one in this vault's key file (for ``brokersync keys rotate``).

        The old keys stay in the file and in this vault, so existing values still decrypt; then
        :meth:`rotate` every stored value and finally :meth:`retire_key` the old ones.

        Args:
            entry: A ``key_id:base64`` entry; default: a freshly generated key.

        Returns:
            The new active key id.

        Raises:
            ConfigurationError: The keys do not come from a key file (for ``BROKERSYNC_ENCRYPTION_KEYS``,
                prepend a new entry from :meth:`generate_key` to the variable instead), the entry is
                invalid, or its key id is already used.
        """
        path = self._require_key_file("add a key")
        new_id = _keys.add_key_to_file(path, entry)
        self._reload(path)
        return new_id

    def retire_key(self, key_id: str) -> None:
        """Remove a no-longer-used, non-active key from this vault's key file and from this vault.

        Only call this once no stored value uses ``key_id`` (check with :meth:`key_id_of`).

        Raises:
            ConfigurationError: No key file, no such key, or ``key_id`` is the active key.
        """
        path = self._require_key_file("retire a key")
        _keys.remove_key_from_file(path, key_id)
        self._reload(path)

    def _reload(self, path: Path) -> None:
        stamp = _keys.file_stamp(path)
        self._load(_keys.read_key_file(path))
        self._stamp = stamp

    # --- internals ------------------------------------------------------------------------------

    def _refresh(self, action: str) -> bool:
        """Re-read the key file if another process changed it; ``True`` if the keys were reloaded."""
        path = self._key_file
        if path is None:
            return False
        stamp = _keys.file_stamp(path)
        if stamp is None:
            if not self._missing_logged:
                self._missing_logged = True
                from brokersync._log import get_logger

                get_logger(component="vault", key_file=str(path)).error(
                    f"The key file {path} has disappeared; this process keeps using the keys it loaded. "
                    "Restore the file from a backup: without it, no other process can decrypt the credentials."
                )
            return False
        if stamp == self._stamp:
            return False
        try:
            entries = _keys.read_key_file(path)
        except ConfigurationError as exc:
            raise VaultError(f"Cannot {action}: the key file changed and is now unusable: {exc.message}") from None
        self._load(entries)
        self._stamp = stamp
        self._missing_logged = False
        return True

    def _require_key_file(self, action: str) -> Path:
        if self._key_file is None:
            raise ConfigurationError(
                f"Cannot {action}: the keys come from {self._source}, not a key file. Change {self._source} "
                f"yourself: put a new entry first (it becomes the active key). Generate one with: {_keys.GENERATE_HINT}"
            )
        return self._key_file

    @staticmethod
    def _parse(token: str, what: str) -> tuple[str, bytes]:
        if not isinstance(token, str):
            raise TypeError(f"a vault value must be a string, got {type(token).__name__}")
        version, _, rest = token.partition(":")
        key_id, _, data = rest.partition(":")
        if version != _VERSION:
            if _VERSION_SHAPE.fullmatch(version) and _keys.check_key_id(key_id):
                raise VaultError(
                    f"Cannot decrypt {what}: it uses vault format {version!r}, which this version of "
                    "brokersync does not know. Upgrade brokersync.",
                    key_id=key_id,
                    what=what,
                )
            raise VaultError(
                f"Cannot decrypt {what}: the stored value is not in the vault format "
                f"'{_VERSION}:<key id>:<data>' (was it written by brokersync, or changed by hand?).",
                what=what,
            )
        if not _keys.check_key_id(key_id):
            raise VaultError(f"Cannot decrypt {what}: the stored value has an invalid key id.", what=what)
        blob = _b64decode(data)
        if blob is None or len(blob) < _NONCE_BYTES + _TAG_BYTES:
            raise VaultError(
                f"Cannot decrypt {what} with key {key_id!r}: the stored value is truncated or not valid base64.",
                key_id=key_id,
                what=what,
            )
        return key_id, blob
