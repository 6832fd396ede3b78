"""Fixtures for the vault tests: fixed keys (so tests can look for their bytes) and leak checks."""

from __future__ import annotations

import base64
import importlib
import traceback
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from brokersync import Vault
from loguru import logger

KEY_A = bytes(range(32))
KEY_B = bytes(range(100, 132))
KEY_C = b"\xfe" * 16 + b"\x01" * 16


def _spec(key_id: str, key: bytes) -> str:
    return f"{key_id}:{base64.b64encode(key).decode()}"


def _forms(secret: bytes | str) -> list[str]:
    """Every way a secret could show up in text: as is, or a key's base64 (both alphabets), hex, bytes repr."""
    if isinstance(secret, str):
        return [secret]
    b64 = base64.b64encode(secret).decode()
    return [b64, base64.urlsafe_b64encode(secret).decode(), secret.hex(), repr(secret)[2:-1]]


def _visible_text(exc: BaseException) -> str:
    """What a user can see of an exception: message, repr and the whole printed traceback."""
    return "\n".join([str(exc), repr(exc), *traceback.format_exception(exc)])


def _assert_hidden(text: str, *secrets: bytes | str) -> None:
    for secret in secrets:
        for form in _forms(secret):
            # Any 8-character slice would already be a partial leak.
            for start in range(max(1, len(form) - 7)):
                piece = form[start : start + 8]
                assert piece not in text, f"secret material leaked: {piece!r} in {text!r}"


@pytest.fixture
def keys() -> SimpleNamespace:
    """Three fixed 32-byte keys and helpers to write them as entries and to hunt for leaks."""
    return SimpleNamespace(a=KEY_A, b=KEY_B, c=KEY_C, spec=_spec, visible=_visible_text, assert_hidden=_assert_hidden)


@pytest.fixture
def vault() -> Vault:
    return Vault({"k1": KEY_A})


@pytest.fixture
def log_messages() -> Iterator[list[str]]:
    """brokersync's log output (message plus bound extra fields) while the test runs."""
    messages: list[str] = []

    def sink(message: Any) -> None:
        messages.append(f"{message.record['message']} {message.record['extra']}")

    # brokersync._log disables brokersync's records when first imported: import it before enabling.
    importlib.import_module("brokersync._log")
    handler = logger.add(sink, level="DEBUG")
    logger.enable("brokersync")
    try:
        yield messages
    finally:
        logger.disable("brokersync")
        logger.remove(handler)
