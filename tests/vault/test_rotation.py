"""Key rotation: a new active key, old values still readable, rotate() moving them, retiring keys."""

from __future__ import annotations

import stat
import threading

import pytest
from brokersync import ConfigurationError, Vault, VaultError

ROWS = {f"conn-{n}:{purpose}": f"secret-{n}-{purpose}" for n in range(5) for purpose in ("credentials", "token")}


def test_rotation_with_env_keys(keys):
    old_vault = Vault.from_env({"BROKERSYNC_ENCRYPTION_KEYS": keys.spec("k1", keys.a)})
    stored = {aad: old_vault.encrypt(value, aad=aad) for aad, value in ROWS.items()}

    # The operator prepends a new key: it becomes active, the old one still decrypts.
    vault = Vault.from_env({"BROKERSYNC_ENCRYPTION_KEYS": f"{keys.spec('k2', keys.b)},{keys.spec('k1', keys.a)}"})
    assert vault.active_key_id == "k2"
    assert all(vault.needs_rotation(token) for token in stored.values())
    assert {aad: vault.decrypt(token, aad=aad).decode() for aad, token in stored.items()} == ROWS

    rotated = {aad: vault.rotate(token, aad=aad) for aad, token in stored.items()}
    assert all(vault.key_id_of(token) == "k2" for token in rotated.values())
    assert not any(vault.needs_rotation(token) for token in rotated.values())
    assert {aad: vault.decrypt(token, aad=aad).decode() for aad, token in rotated.items()} == ROWS

    # Once every row moved, the old key can go: the new vault reads everything without it.
    only_new = Vault({"k2": keys.b})
    assert {aad: only_new.decrypt(token, aad=aad).decode() for aad, token in rotated.items()} == ROWS
    with pytest.raises(VaultError, match="'k1', which is not configured"):
        only_new.decrypt(stored["conn-0:token"], aad="conn-0:token")


def test_rotate_keeps_the_row_binding(keys):
    vault = Vault([("k2", keys.b), ("k1", keys.a)])
    token = Vault({"k1": keys.a}).encrypt("s", aad="conn-1:credentials")
    rotated = vault.rotate(token, aad="conn-1:credentials")
    with pytest.raises(VaultError):
        vault.decrypt(rotated, aad="conn-2:credentials")


def test_rotate_of_a_current_value_returns_it_unchanged_but_still_checks_it(keys):
    vault = Vault({"k1": keys.a})
    token = vault.encrypt("s", aad="conn-1:credentials")
    assert vault.rotate(token, aad="conn-1:credentials") == token
    with pytest.raises(VaultError, match="authentication failed"):
        vault.rotate(token, aad="conn-2:credentials", what="the credentials of connection conn-2")


def test_rotate_refuses_values_it_cannot_read(keys):
    vault = Vault([("k2", keys.b), ("k1", keys.a)])
    foreign = Vault({"k0": keys.c}).encrypt("s", aad="conn-1:token")
    assert vault.needs_rotation(foreign)
    with pytest.raises(VaultError, match="'k0', which is not configured"):
        vault.rotate(foreign, aad="conn-1:token")
    with pytest.raises(VaultError, match="not in the vault format"):
        vault.needs_rotation("plaintext-credentials")


def test_key_file_rotation_add_then_retire(tmp_path):
    vault = Vault.from_data_dir(tmp_path)
    first = vault.active_key_id
    stored = {aad: vault.encrypt(value, aad=aad) for aad, value in ROWS.items()}

    new_id = vault.add_key()
    assert new_id != first
    assert vault.active_key_id == new_id
    assert vault.key_ids == (new_id, first)
    assert stat.S_IMODE((tmp_path / "encryption-keys").stat().st_mode) == 0o600
    # Another process starting now reads the same keys from the file.
    reloaded = Vault.from_data_dir(tmp_path)
    assert reloaded.key_ids == (new_id, first)

    rotated = {aad: vault.rotate(token, aad=aad) for aad, token in stored.items()}
    assert not any(reloaded.needs_rotation(token) for token in rotated.values())

    with pytest.raises(ConfigurationError, match="is the active key"):
        vault.retire_key(new_id)
    with pytest.raises(ConfigurationError, match="has no key with id 'nope'"):
        vault.retire_key("nope")
    vault.retire_key(first)
    assert vault.key_ids == (new_id,)
    final = Vault.from_data_dir(tmp_path)
    assert final.key_ids == (new_id,)
    assert {aad: final.decrypt(token, aad=aad).decode() for aad, token in rotated.items()} == ROWS
    with pytest.raises(VaultError, match="not configured"):
        final.decrypt(stored["conn-3:credentials"], aad="conn-3:credentials")


def test_add_key_with_a_given_entry_and_duplicate_refused(tmp_path, keys):
    vault = Vault.from_data_dir(tmp_path)
    assert vault.add_key(keys.spec("ops-2026", keys.b)) == "ops-2026"
    assert Vault({"ops-2026": keys.b}).decrypt(vault.encrypt("x", aad="a:b"), aad="a:b") == b"x"
    with pytest.raises(ConfigurationError, match="already has a key with id 'ops-2026'") as info:
        vault.add_key(keys.spec("ops-2026", keys.c))
    keys.assert_hidden(keys.visible(info.value), keys.b, keys.c)
    with pytest.raises(ConfigurationError, match="the new key .* 16 bytes"):
        vault.add_key(keys.spec("short", keys.a[:16]))
    assert Vault.from_data_dir(tmp_path).key_ids == vault.key_ids, "failed additions change nothing"


def test_env_vault_cannot_edit_a_key_file(keys):
    vault = Vault.from_env({"BROKERSYNC_ENCRYPTION_KEYS": keys.spec("k1", keys.a)})
    with pytest.raises(ConfigurationError, match="keys come from BROKERSYNC_ENCRYPTION_KEYS, not a key file"):
        vault.add_key()
    with pytest.raises(ConfigurationError, match="not a key file"):
        vault.retire_key("k1")


def test_add_key_refuses_a_loosened_key_file(tmp_path):
    vault = Vault.from_data_dir(tmp_path)
    (tmp_path / "encryption-keys").chmod(0o644)
    with pytest.raises(ConfigurationError, match="accessible by other users"):
        vault.add_key()
    assert len(vault.key_ids) == 1, "the vault keeps working with the keys it has"


def test_concurrent_rotations_lose_no_key(tmp_path):
    Vault.from_data_dir(tmp_path)
    vaults = [Vault.from_data_dir(tmp_path) for _ in range(6)]
    added: list[str] = []
    barrier = threading.Barrier(len(vaults))

    def rotate(vault: Vault) -> None:
        barrier.wait()
        added.append(vault.add_key())

    threads = [threading.Thread(target=rotate, args=(v,)) for v in vaults]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = Vault.from_data_dir(tmp_path)
    assert len(added) == 6
    assert set(added) <= set(final.key_ids)
    assert len(final.key_ids) == 7


def test_a_running_vault_adopts_keys_another_process_adds(tmp_path):
    # Two vaults on one key file stand for a long-running worker and the `keys rotate` process.
    worker = Vault.from_data_dir(tmp_path)
    idle_worker = Vault.from_data_dir(tmp_path)
    operator = Vault.from_data_dir(tmp_path)
    old_id = worker.active_key_id

    new_id = operator.add_key()
    moved = operator.rotate(operator.encrypt("s", aad="c:token"), aad="c:token")
    assert operator.key_id_of(moved) == new_id

    # A value under a key this process has never seen: the file is re-read, no restart needed.
    assert idle_worker.decrypt(moved, aad="c:token") == b"s"
    assert idle_worker.active_key_id == new_id
    # New values are encrypted with the new active key, so a later retire loses nothing.
    assert worker.key_id_of(worker.encrypt("fresh", aad="c:credentials")) == new_id

    operator.retire_key(old_id)
    worker.encrypt("x", aad="c:credentials")
    assert worker.key_ids == (new_id,)


def test_a_deleted_key_file_keeps_the_process_working_and_is_reported_once(tmp_path, keys, log_messages):
    vault = Vault.from_data_dir(tmp_path)
    key_b64 = (tmp_path / "encryption-keys").read_text().splitlines()[-1].split(":")[1]
    (tmp_path / "encryption-keys").unlink()
    log_messages.clear()
    token = vault.encrypt("still-works", aad="c:credentials")
    vault.encrypt("again", aad="c:credentials")
    assert vault.decrypt(token, aad="c:credentials") == b"still-works"
    reports = [m for m in log_messages if "has disappeared" in m]
    assert len(reports) == 1
    assert str(tmp_path / "encryption-keys") in reports[0]
    keys.assert_hidden("\n".join(log_messages), key_b64)


def test_a_key_file_broken_by_someone_else_stops_encryption_with_a_clear_error(tmp_path, keys):
    vault = Vault.from_data_dir(tmp_path)
    key_file = tmp_path / "encryption-keys"
    content = key_file.read_text()
    key_b64 = content.splitlines()[-1].split(":")[1]
    key_file.write_text(f"{content}oops-no-separator\n")
    expected = r"Cannot encrypt a value: the key file changed.*line \d+ of the key file"
    plaintext = "-".join(["plain", "secret"])  # not a literal: tracebacks quote source lines
    with pytest.raises(VaultError, match=expected) as info:
        vault.encrypt(plaintext, aad="c:credentials")
    keys.assert_hidden(keys.visible(info.value), key_b64, plaintext)


def test_key_file_accepts_a_pasted_env_value(tmp_path, keys):
    key_file = tmp_path / "encryption-keys"
    key_file.write_text(f"# pasted from the environment\n{keys.spec('k2', keys.b)},{keys.spec('k1', keys.a)}\n")
    key_file.chmod(0o600)
    assert Vault.from_data_dir(tmp_path).key_ids == ("k2", "k1")


def test_rotation_in_a_process_that_did_not_add_the_key_still_moves_every_value(tmp_path):
    rotator = Vault.from_data_dir(tmp_path)
    stored = rotator.encrypt("s", aad="c:token")
    new_id = Vault.from_data_dir(tmp_path).add_key()  # `keys rotate` adding the key elsewhere
    assert rotator.needs_rotation(stored)
    assert rotator.active_key_id == new_id
    assert rotator.key_id_of(rotator.rotate(stored, aad="c:token")) == new_id
