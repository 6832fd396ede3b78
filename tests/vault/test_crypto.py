"""Encrypt and decrypt: round trips, row binding, tampering, unknown keys, malformed values."""

from __future__ import annotations

import base64

import pytest
from brokersync import Vault, VaultError
from hypothesis import given, settings
from hypothesis import strategies as st

AAD = "conn-42:credentials"
_HYPOTHESIS_VAULT = Vault([("hk", bytes(range(32)))])


def _blob(token: str) -> bytes:
    data = token.split(":", 2)[2]
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def _with_blob(token: str, blob: bytes) -> str:
    version, key_id, _ = token.split(":", 2)
    return f"{version}:{key_id}:{base64.urlsafe_b64encode(blob).decode().rstrip('=')}"


def test_round_trip_of_bytes_and_text(vault):
    assert vault.decrypt(vault.encrypt(b"\x00secret\xff", aad=AAD), aad=AAD) == b"\x00secret\xff"
    assert vault.decrypt(vault.encrypt("pässwörd", aad=AAD), aad=AAD) == "pässwörd".encode()
    assert vault.decrypt(vault.encrypt(b"", aad=AAD), aad=AAD) == b""


def test_value_is_self_describing_text_with_key_id_and_no_plaintext(vault):
    token = vault.encrypt("hunter2-password", aad=AAD)
    version, key_id, _data = token.split(":")
    assert (version, key_id) == ("v1", "k1")
    assert token.isascii()
    assert "hunter2" not in token
    # 12-byte nonce + 16 plaintext bytes + 16-byte tag
    assert len(_blob(token)) == 12 + len("hunter2-password") + 16


def test_every_encryption_uses_a_fresh_nonce(vault):
    tokens = {vault.encrypt("same", aad=AAD) for _ in range(50)}
    assert len(tokens) == 50
    assert len({_blob(t)[:12] for t in tokens}) == 50


def test_value_copied_to_another_row_does_not_decrypt(vault):
    token = vault.encrypt("api-secret-value", aad="conn-1:credentials")
    with pytest.raises(VaultError, match="authentication failed") as info:
        vault.decrypt(token, aad="conn-2:credentials", what="the credentials of connection conn-2")
    assert "the credentials of connection conn-2" in str(info.value)
    assert info.value.key_id == "k1"
    assert info.value.what == "the credentials of connection conn-2"


def test_value_of_another_purpose_does_not_decrypt(vault):
    token = vault.encrypt("access", aad="conn-1:token")
    with pytest.raises(VaultError):
        vault.decrypt(token, aad="conn-1:credentials")


@pytest.mark.parametrize(
    "position",
    [0, 11, 12, 20, -16, -1],
    ids=["nonce-first", "nonce-last", "ciphertext-first", "ciphertext-mid", "tag-first", "tag-last"],
)
def test_any_flipped_bit_is_detected(vault, position):
    token = vault.encrypt("a-secret-long-enough", aad=AAD)
    blob = bytearray(_blob(token))
    blob[position] ^= 0x01
    with pytest.raises(VaultError, match=r"with key 'k1': authentication failed"):
        vault.decrypt(_with_blob(token, bytes(blob)), aad=AAD)


def test_truncated_and_extended_values_are_refused(vault):
    token = vault.encrypt("a-secret", aad=AAD)
    blob = _blob(token)
    with pytest.raises(VaultError, match="authentication failed"):
        vault.decrypt(_with_blob(token, blob[:-1]), aad=AAD)
    with pytest.raises(VaultError, match="authentication failed"):
        vault.decrypt(_with_blob(token, blob + b"\x00"), aad=AAD)
    with pytest.raises(VaultError, match="truncated"):
        vault.decrypt(_with_blob(token, blob[:27]), aad=AAD)


def test_a_changed_character_is_detected_even_in_padding_bits(vault):
    # The base64 text is canonical: any edit of the stored text fails, not only edits of the bytes.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    token = vault.encrypt("x" * 3, aad=AAD)  # 31 bytes: the last character carries 2 bits + 4 spare bits
    last = alphabet.index(token[-1])
    same_bytes = [c for c in alphabet if alphabet.index(c) >> 4 == last >> 4 and c != token[-1]]
    assert _blob(token[:-1] + same_bytes[0]) == _blob(token)  # base64 itself would not notice
    for replacement in same_bytes:
        with pytest.raises(VaultError, match="truncated or not valid base64"):
            vault.decrypt(token[:-1] + replacement, aad=AAD)


def test_unknown_key_id_names_key_and_what_to_do(keys):
    old = Vault({"old-key": keys.a})
    token = old.encrypt("a-secret", aad=AAD)
    new = Vault({"new-key": keys.b}, source="BROKERSYNC_ENCRYPTION_KEYS")
    with pytest.raises(VaultError) as info:
        new.decrypt(token, aad=AAD, what="the credentials of connection conn-42")
    message = str(info.value)
    assert "'old-key', which is not configured" in message
    assert "the credentials of connection conn-42" in message
    assert "BROKERSYNC_ENCRYPTION_KEYS has 'new-key'" in message
    assert info.value.key_id == "old-key"


def test_same_key_id_with_different_key_material_fails_cleanly(keys):
    token = Vault({"k1": keys.a}).encrypt("a-secret", aad=AAD)
    with pytest.raises(VaultError, match="is not the key it was encrypted with"):
        Vault({"k1": keys.b}).decrypt(token, aad=AAD)


def test_key_id_header_cannot_be_swapped_between_keys(keys):
    # Same key material registered under two ids: the id is authenticated, so relabelling fails.
    vault = Vault([("k1", keys.a), ("k2", keys.a)])
    token = vault.encrypt("a-secret", aad=AAD)
    relabelled = token.replace("v1:k1:", "v1:k2:", 1)
    with pytest.raises(VaultError):
        vault.decrypt(relabelled, aad=AAD)


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("", "not in the vault format"),
        ("plaintext-password", "not in the vault format"),
        ("v1:k1", "truncated or not valid base64"),
        ("v1:k1:***not-base64***", "truncated or not valid base64"),
        ("v1:k1:QUJD", "truncated or not valid base64"),
        ("v1:bad id!:QUJD", "invalid key id"),
        ("v2:k1:QUJD", "vault format 'v2'"),
        ("gAAAAABf-fernet-looking", "not in the vault format"),
    ],
    ids=["empty", "plaintext", "no-data", "bad-base64", "too-short", "bad-key-id", "future-version", "fernet"],
)
def test_malformed_values_raise_vault_error(vault, token, expected):
    with pytest.raises(VaultError, match=expected) as info:
        vault.decrypt(token, aad=AAD, what="the token of connection conn-9")
    assert "connection conn-9" in str(info.value)
    if token:
        # Never echo the stored value: it may be a plaintext secret someone stored by mistake.
        assert token not in str(info.value)


def test_programming_errors_raise_builtin_errors(vault):
    token = vault.encrypt("x", aad=AAD)
    with pytest.raises(ValueError, match="aad must not be empty"):
        vault.encrypt("x", aad="")
    with pytest.raises(TypeError, match="aad must be a string"):
        vault.decrypt(token, aad=42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="plaintext must be bytes or str"):
        vault.encrypt(42, aad=AAD)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="vault value must be a string"):
        vault.decrypt(token.encode(), aad=AAD)  # type: ignore[arg-type]


def test_json_round_trip_and_non_object_refused(vault):
    data = {"username": "trader", "password": "pässwörd", "nested": {"n": 1, "list": [1, "x"]}}
    token = vault.encrypt_json(data, aad=AAD)
    assert vault.decrypt_json(token, aad=AAD) == data
    with pytest.raises(VaultError, match="not a JSON object"):
        vault.decrypt_json(vault.encrypt("[1, 2]", aad=AAD), aad=AAD, what="the credentials of conn-42")
    with pytest.raises(VaultError, match="not a JSON object"):
        vault.decrypt_json(vault.encrypt(b"\xff\xfe", aad=AAD), aad=AAD)
    with pytest.raises(TypeError):
        vault.encrypt_json(["not", "a", "mapping"], aad=AAD)  # type: ignore[arg-type]


def test_json_accepts_any_mapping(vault):
    from brokersync import Credentials

    credentials = Credentials({"api_key": "key-123", "api_secret": "sec-456"}, secret_fields=["api_secret"])
    token = vault.encrypt_json(credentials, aad=AAD)
    assert vault.decrypt_json(token, aad=AAD) == {"api_key": "key-123", "api_secret": "sec-456"}


@settings(deadline=None)  # shared CI machines: slow examples are not failures
@given(plaintext=st.binary(max_size=2048), aad=st.text(min_size=1, max_size=200))
def test_round_trip_any_bytes_any_aad(plaintext, aad):
    token = _HYPOTHESIS_VAULT.encrypt(plaintext, aad=aad)
    assert _HYPOTHESIS_VAULT.decrypt(token, aad=aad) == plaintext


@settings(deadline=None)  # shared CI machines: slow examples are not failures
@given(plaintext=st.binary(max_size=256), aad=st.text(min_size=1), other=st.text(min_size=1))
def test_any_other_aad_fails(plaintext, aad, other):
    token = _HYPOTHESIS_VAULT.encrypt(plaintext, aad=aad)
    if other != aad:
        with pytest.raises(VaultError):
            _HYPOTHESIS_VAULT.decrypt(token, aad=other)


@settings(deadline=None)  # shared CI machines: slow examples are not failures
@given(plaintext=st.binary(min_size=1, max_size=256), data=st.data())
def test_any_edit_of_the_stored_text_fails(plaintext, data):
    token = _HYPOTHESIS_VAULT.encrypt(plaintext, aad=AAD)
    position = data.draw(st.integers(min_value=0, max_value=len(token) - 1))
    replacement = data.draw(st.characters(codec="ascii"))
    edited = token[:position] + replacement + token[position + 1 :]
    if edited != token:
        with pytest.raises(VaultError):
            _HYPOTHESIS_VAULT.decrypt(edited, aad=AAD)
