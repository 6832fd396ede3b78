"""Encryption keys for the vault: the ``key_id:base64`` format, the env variable and the key file.

One key entry is ``<key id>:<base64 of 32 random bytes>``. A key list is several entries; the
FIRST one is active (it encrypts), the others only decrypt, so a rotation prepends a new key and
keeps the old ones until every row has been re-encrypted.

- ``BROKERSYNC_ENCRYPTION_KEYS``: entries separated by commas (whitespace around them is ignored).
- The key file (``<data dir>/encryption-keys``): one entry per line, ``#`` comments and blank lines
  allowed. It is created with mode 0600 and refused when group or others may read or write it.

Nothing here ever puts key material into an exception message or a log record: parse errors name
the entry (its position, and its key id once that id is known to be well formed) and what is wrong.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import os
import re
import secrets
import stat
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from brokersync._redact import register_secret
from brokersync.errors import ConfigurationError

__all__ = [
    "ENV_VAR",
    "GENERATE_HINT",
    "KEY_BYTES",
    "KEY_FILE_NAME",
    "KeyEntry",
    "add_key_to_file",
    "check_key_id",
    "create_key_file",
    "file_stamp",
    "generate_key",
    "key_file_path",
    "parse_key_entries",
    "read_key_file",
    "remove_key_from_file",
]

#: The environment variable holding the keys (comma-separated ``key_id:base64`` entries).
ENV_VAR = "BROKERSYNC_ENCRYPTION_KEYS"
#: The key file's name inside the data directory.
KEY_FILE_NAME = "encryption-keys"
#: AES-256 keys are 32 bytes.
KEY_BYTES = 32

# At most 32 characters: a key id can never hold a whole base64 key (44 characters), so printing an
# id in a message can never print a key, even when a user swaps the two halves of an entry.
_KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
_KEY_ID_RULE = "1-32 letters, digits, '.', '_' or '-', starting with a letter or digit"
_FILE_HEADER = (
    "# brokersync encryption keys: one 'key_id:base64' entry per line.\n"
    "# The FIRST key encrypts; the others only decrypt (kept until every row is re-encrypted).\n"
    "# Keep this file secret (mode 0600) and backed up: without it, stored credentials are lost.\n"
)
_CHECK_PERMISSIONS = os.name == "posix"
#: How to make a new key entry, for messages (works wherever brokersync is installed).
GENERATE_HINT = "`brokersync keys generate` (or brokersync.Vault.generate_key() in Python)"

#: One parsed key: (key id, 32 key bytes).
KeyEntry = tuple[str, bytes]


def check_key_id(key_id: str) -> bool:
    """Whether ``key_id`` is a well-formed key id (safe to print, usable in a vault value)."""
    return isinstance(key_id, str) and _KEY_ID.fullmatch(key_id) is not None


def _decode_key(text: str) -> bytes | None:
    # Standard or URL-safe alphabet, padding optional; anything else is refused, not skipped.
    text = text.strip().replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _parse_entry(entry: str, where: str) -> KeyEntry:
    key_id, sep, encoded = entry.partition(":")
    key_id = key_id.strip()
    if not sep:
        raise ConfigurationError(f"{where} is not a 'key_id:base64' pair (no ':' found).")
    if not check_key_id(key_id):
        raise ConfigurationError(f"{where} has an invalid key id: use {_KEY_ID_RULE}.")
    key = _decode_key(encoded)
    if key is None:
        raise ConfigurationError(f"{where} (key id {key_id!r}): the key is not valid base64.")
    if len(key) != KEY_BYTES:
        raise ConfigurationError(
            f"{where} (key id {key_id!r}): the key is {len(key)} bytes, AES-256 needs exactly {KEY_BYTES}. "
            f"Generate one with: {GENERATE_HINT}"
        )
    register_secret(encoded.strip())
    register_secret(base64.b64encode(key).decode("ascii"))
    return key_id, key


def _check_unique(entries: Sequence[KeyEntry], source: str) -> None:
    seen: dict[str, int] = {}
    for position, (key_id, _) in enumerate(entries, start=1):
        if key_id in seen:
            raise ConfigurationError(
                f"{source}: entries {seen[key_id]} and {position} both use key id {key_id!r}; key ids must be unique."
            )
        seen[key_id] = position


def parse_key_entries(spec: str, *, source: str = ENV_VAR) -> list[KeyEntry]:
    """Parse comma- or newline-separated ``key_id:base64`` entries; the first one is active.

    Args:
        spec: The entries, e.g. the value of ``BROKERSYNC_ENCRYPTION_KEYS``.
        source: Where ``spec`` came from, for error messages.

    Returns:
        ``(key_id, key_bytes)`` pairs in the given order.

    Raises:
        ConfigurationError: ``spec`` is empty, or an entry is malformed, has the wrong length or
            repeats a key id. The message names the entry, never its key material.
    """
    parts = [part.strip() for part in re.split(r"[,\n]", spec)]
    if not any(parts):
        raise ConfigurationError(f"{source} is empty: expected comma-separated 'key_id:base64' entries.")
    entries = [
        _parse_entry(part, f"entry {position} of {source}")
        for position, part in enumerate((p for p in parts if p), start=1)
    ]
    _check_unique(entries, source)
    return entries


def generate_key(key_id: str | None = None) -> str:
    """A new random key entry ``key_id:base64`` for ``BROKERSYNC_ENCRYPTION_KEYS`` or the key file.

    Args:
        key_id: The id to give it; default: today's UTC date plus a random suffix.

    Raises:
        ValueError: ``key_id`` is not a well-formed key id.
    """
    if key_id is None:
        key_id = f"{dt.datetime.now(dt.UTC):%Y%m%d}-{secrets.token_hex(4)}"
    if not check_key_id(key_id):
        raise ValueError(f"invalid key id: use {_KEY_ID_RULE}")
    encoded = base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")
    register_secret(encoded)
    return f"{key_id}:{encoded}"


def key_file_path(data_dir: str | os.PathLike[str]) -> Path:
    """Where the key file of ``data_dir`` lives."""
    return Path(data_dir) / KEY_FILE_NAME


def _check_file(path: Path) -> None:
    try:
        info = path.stat()
    except OSError as exc:
        raise ConfigurationError(f"Cannot read the key file {path}: {exc.strerror}.") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigurationError(f"The key file {path} is not a regular file.")
    if _CHECK_PERMISSIONS and info.st_mode & 0o077:
        raise ConfigurationError(
            f"The key file {path} is accessible by other users (mode {stat.S_IMODE(info.st_mode):04o}); "
            f"brokersync refuses to use it. Restrict it with `chmod 600 {path}` and check nobody copied it."
        )


def read_key_file(path: str | os.PathLike[str]) -> list[KeyEntry]:
    """Read and validate a key file; the first entry is active.

    Raises:
        ConfigurationError: The file cannot be read, other users may access it, or its content is
            not a list of valid key entries (the message names the line, never key material).
    """
    path = Path(path)
    _check_file(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigurationError(f"The key file {path} is not UTF-8 text; is it the right file?") from None
    except OSError as exc:
        raise ConfigurationError(f"Cannot read the key file {path}: {exc.strerror}.") from None
    entries: list[KeyEntry] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip().startswith("#"):
            continue
        # Commas too, so a value of BROKERSYNC_ENCRYPTION_KEYS pasted on one line works as is.
        entries.extend(
            _parse_entry(part, f"line {number} of the key file {path}") for part in line.split(",") if part.strip()
        )
    if not entries:
        raise ConfigurationError(f"The key file {path} holds no key; delete it to have a new one generated.")
    _check_unique(entries, f"the key file {path}")
    return entries


def _render(entries: Sequence[KeyEntry]) -> str:
    lines = [f"{key_id}:{base64.b64encode(key).decode('ascii')}" for key_id, key in entries]
    return _FILE_HEADER + "\n".join(lines) + "\n"


def _write_temp(directory: Path, content: str) -> Path:
    # mkstemp creates the file with mode 0600, whatever the umask; the key never exists with looser bits.
    fd, name = tempfile.mkstemp(prefix=f".{KEY_FILE_NAME}.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def _fsync_dir(directory: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_exclusive(path: Path, content: str) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    return True


def file_stamp(path: str | os.PathLike[str]) -> tuple[int, int, int] | None:
    """Identity of the key file's current version (inode, mtime, size), or ``None`` if it is gone.

    Every change brokersync makes replaces the file, so a different stamp means "read it again".
    """
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns, info.st_size


def create_key_file(path: str | os.PathLike[str], entries: Sequence[KeyEntry] | None = None) -> bool:
    """Create the key file with mode 0600 holding ``entries`` (default: one new key).

    The file appears atomically with its full content, so a concurrent reader never sees it
    half-written, and two processes racing to create it end up sharing one key.

    Returns:
        ``True`` if this call created the file, ``False`` if it already existed (left unchanged).

    Raises:
        ConfigurationError: The directory cannot be created or written.
    """
    path = Path(path)
    if entries is None:
        key_id, _, encoded = generate_key().partition(":")
        entries = [(key_id, base64.b64decode(encoded))]
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temp = _write_temp(path.parent, _render(entries))
        try:
            os.link(temp, path)  # atomic, and fails instead of overwriting an existing key file
        except FileExistsError:
            return False
        except OSError:
            # Some file systems (certain network and container mounts) have no hard links.
            if not _create_exclusive(path, _render(entries)):
                return False
        finally:
            temp.unlink(missing_ok=True)
        _fsync_dir(path.parent)
    except OSError as exc:
        raise ConfigurationError(f"Cannot create the key file {path}: {exc.strerror or exc}.") from None
    return True


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    # Serialise read-modify-write of the key file across processes (two rotations must not lose a key).
    if sys.platform == "win32":  # pragma: no cover - no fcntl; rotations are an operator's manual step
        yield
        return
    import fcntl

    fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _replace(path: Path, entries: Sequence[KeyEntry]) -> None:
    try:
        temp = _write_temp(path.parent, _render(entries))
        os.replace(temp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        raise ConfigurationError(f"Cannot write the key file {path}: {exc.strerror or exc}.") from None


def add_key_to_file(path: str | os.PathLike[str], entry: str | None = None) -> str:
    """Make a new key the active one in the key file at ``path``, keeping the others to decrypt.

    Args:
        path: The key file (created if missing).
        entry: The ``key_id:base64`` entry to add; default: :func:`generate_key`.

    Returns:
        The new active key id.

    Raises:
        ConfigurationError: The file is unusable, ``entry`` is malformed, or its key id is taken.
    """
    path = Path(path)
    new_id, new_key = _parse_entry(entry or generate_key(), "the new key")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _locked(path):
        entries = read_key_file(path) if path.exists() else []
        if any(key_id == new_id for key_id, _ in entries):
            raise ConfigurationError(f"The key file {path} already has a key with id {new_id!r}.")
        _replace(path, [(new_id, new_key), *entries])
    return new_id


def remove_key_from_file(path: str | os.PathLike[str], key_id: str) -> None:
    """Remove a retired (non-active) key from the key file at ``path``.

    Only do this once no stored value uses ``key_id`` any more: values encrypted with it become
    unreadable.

    Raises:
        ConfigurationError: The file is unusable, has no such key, or ``key_id`` is the active key.
    """
    path = Path(path)
    with _locked(path):
        entries = read_key_file(path)
        shown = repr(key_id) if check_key_id(key_id) else "(invalid key id)"
        if entries[0][0] == key_id:
            raise ConfigurationError(f"Key {shown} is the active key of {path}; add a new key before removing it.")
        remaining = [entry for entry in entries if entry[0] != key_id]
        if len(remaining) == len(entries):
            raise ConfigurationError(f"The key file {path} has no key with id {shown}.")
        _replace(path, remaining)
