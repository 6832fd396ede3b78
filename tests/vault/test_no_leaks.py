"""No plaintext and no key material in any message, repr, traceback or log line the vault produces."""

from __future__ import annotations

import base64
import pickle

import pytest
from brokersync import BrokerSyncError, ConfigurationError, Vault, VaultError, classify_error

PLAINTEXT = "Pl41ntext-Passw0rd-XYZ"
AAD = "conn-7:credentials"


def _failures(keys, tmp_path):
    """Every way decrypting or configuring can fail, as (name, callable)."""
    good = Vault([("k2", keys.b), ("k1", keys.a)])
    token = good.encrypt(PLAINTEXT, aad=AAD)
    blob_start = token.index(":", 3) + 1
    flipped = token[:blob_start] + ("A" if token[blob_start] != "A" else "B") + token[blob_start + 1 :]
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "encryption-keys").write_text(keys.spec("k1", keys.a) + "\n")
    (loose / "encryption-keys").chmod(0o644)
    return [
        ("aad-mismatch", lambda: good.decrypt(token, aad="conn-8:credentials", what="conn-8")),
        ("tampered", lambda: good.decrypt(flipped, aad=AAD)),
        ("wrong-key", lambda: Vault({"k2": keys.c}).decrypt(token, aad=AAD)),
        ("unknown-key", lambda: Vault({"k9": keys.c}).decrypt(token, aad=AAD)),
        ("plaintext-stored", lambda: good.decrypt(PLAINTEXT, aad=AAD)),
        ("json-not-object", lambda: good.decrypt_json(good.encrypt(f'"{PLAINTEXT}"', aad=AAD), aad=AAD)),
        ("json-not-utf8", lambda: good.decrypt_json(good.encrypt(b"\xff" + PLAINTEXT.encode(), aad=AAD), aad=AAD)),
        ("rotate-foreign", lambda: Vault({"k3": keys.c}).rotate(token, aad=AAD)),
        ("env-short", lambda: Vault.from_spec(f"k1:{base64.b64encode(keys.a[:31]).decode()}")),
        ("env-swapped", lambda: Vault.from_spec(f"{base64.b64encode(keys.a).decode()}:k1")),
        ("env-duplicate", lambda: Vault.from_spec(f"{keys.spec('k1', keys.a)},{keys.spec('k1', keys.b)}")),
        ("loose-key-file", lambda: Vault.from_data_dir(loose)),
    ]


def test_no_failure_shows_plaintext_or_key_material(keys, tmp_path):
    for name, fail in _failures(keys, tmp_path):
        with pytest.raises(BrokerSyncError) as info:
            fail()
        text = keys.visible(info.value)
        keys.assert_hidden(text, PLAINTEXT, keys.a, keys.b, keys.c, keys.a[:31])
        # Users see our message, not a cryptography traceback chained under it.
        assert "cryptography" not in text, name
        assert "InvalidTag" not in text, name
        assert isinstance(info.value, VaultError | ConfigurationError), name
        # The classification that goes into audit rows is as clean as the message.
        keys.assert_hidden(repr(classify_error(info.value)), PLAINTEXT, keys.a, keys.b, keys.c)


def test_repr_and_str_show_key_ids_only(keys):
    vault = Vault([("k2", keys.b), ("k1", keys.a)], source="BROKERSYNC_ENCRYPTION_KEYS")
    for text in (repr(vault), str(vault), f"{vault!r:>10}"):
        assert "'k2'" in text
        assert "'k1'" in text
        keys.assert_hidden(text, keys.a, keys.b)
    assert repr(vault) == "Vault(active_key_id='k2', key_ids=['k2', 'k1'], source='BROKERSYNC_ENCRYPTION_KEYS')"


def test_a_vault_cannot_be_pickled_so_keys_do_not_travel(keys):
    vault = Vault({"k1": keys.a})
    with pytest.raises(TypeError, match="cannot be pickled") as info:
        pickle.dumps(vault)
    keys.assert_hidden(keys.visible(info.value), keys.a)


def test_vault_has_no_attribute_holding_key_bytes(keys):
    vault = Vault({"k1": keys.a})
    reachable = [getattr(vault, name, None) for name in dir(vault)]
    for value in reachable:
        assert value != keys.a
        keys.assert_hidden(repr(value), keys.a)


def test_logs_of_the_whole_lifecycle_hold_no_secret(keys, tmp_path, log_messages):
    vault = Vault.from_data_dir(tmp_path)
    token = vault.encrypt(PLAINTEXT, aad=AAD)
    vault.add_key()
    rotated = vault.rotate(token, aad=AAD)
    assert vault.decrypt(rotated, aad=AAD) == PLAINTEXT.encode()
    file_keys = [
        line.split(":")[1] for line in (tmp_path / "encryption-keys").read_text().splitlines() if line[0] != "#"
    ]
    assert len(file_keys) == 2
    assert log_messages, "creating the key file is logged"
    keys.assert_hidden("\n".join(log_messages), PLAINTEXT, *file_keys, token, rotated)
