"""Where keys come from: BROKERSYNC_ENCRYPTION_KEYS parsing and the 0600 key file in the data dir."""

from __future__ import annotations

import base64
import os
import stat
import threading

import pytest
from brokersync import ConfigurationError, Vault

ENV = "BROKERSYNC_ENCRYPTION_KEYS"
AAD = "conn-1:credentials"


def test_env_keys_first_is_active_others_decrypt(keys):
    environ = {ENV: f"{keys.spec('new', keys.b)},{keys.spec('old', keys.a)}"}
    vault = Vault.from_env(environ)
    assert vault.active_key_id == "new"
    assert vault.key_ids == ("new", "old")
    assert vault.source == ENV
    assert vault.key_file is None
    old_token = Vault({"old": keys.a}).encrypt("s3cret", aad=AAD)
    assert vault.decrypt(old_token, aad=AAD) == b"s3cret"
    assert vault.encrypt("x", aad=AAD).startswith("v1:new:")


def test_env_accepts_spaces_newlines_urlsafe_and_missing_padding(keys):
    urlsafe = base64.urlsafe_b64encode(keys.c).decode().rstrip("=")
    assert "-" in urlsafe or "_" in urlsafe  # the test key really exercises the URL-safe alphabet
    vault = Vault.from_env({ENV: f"  k-1:{base64.b64encode(keys.a).decode()} ,\n k.2:{urlsafe}\n"})
    assert vault.key_ids == ("k-1", "k.2")
    # The keys were decoded to the right bytes: values made with them decrypt, both ways.
    assert vault.decrypt(Vault({"k.2": keys.c}).encrypt("x", aad=AAD), aad=AAD) == b"x"
    assert Vault({"k-1": keys.a}).decrypt(vault.encrypt("y", aad=AAD), aad=AAD) == b"y"


def _swapped(keys):
    return f"{base64.b64encode(keys.a).decode()}:k1"


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda k: "", f"{ENV} is empty"),
        (lambda k: " , ,", f"{ENV} is empty"),
        (lambda k: base64.b64encode(k.a).decode(), f"entry 1 of {ENV} is not a 'key_id:base64' pair"),
        (
            lambda k: f"{k.spec('k1', k.a)},bad id!:{base64.b64encode(k.b).decode()}",
            f"entry 2 of {ENV} has an invalid key id",
        ),
        (_swapped, f"entry 1 of {ENV} has an invalid key id"),
        (lambda k: "k1:this*is*not*base64", "key id 'k1'\\): the key is not valid base64"),
        (lambda k: f"k1:{base64.b64encode(k.a[:16]).decode()}", "the key is 16 bytes, AES-256 needs exactly 32"),
        (lambda k: f"k1:{base64.b64encode(k.a + k.b).decode()}", "the key is 64 bytes"),
        (
            lambda k: f"{k.spec('k1', k.a)},{k.spec('k2', k.b)},{k.spec('k1', k.c)}",
            "entries 1 and 3 both use key id 'k1'",
        ),
    ],
    ids=[
        "empty",
        "only-commas",
        "no-key-id",
        "bad-key-id",
        "swapped-halves",
        "bad-base64",
        "short",
        "long",
        "duplicate",
    ],
)
def test_env_errors_are_clear_and_never_show_key_material(keys, build, expected):
    with pytest.raises(ConfigurationError, match=expected) as info:
        Vault.from_env({ENV: build(keys)})
    keys.assert_hidden(keys.visible(info.value), keys.a, keys.b, keys.c, keys.a[:16])


def test_env_unset_is_a_configuration_error_with_a_hint():
    with pytest.raises(ConfigurationError, match=f"{ENV} is not set.*Vault.generate_key"):
        Vault.from_env({})


def test_constructor_validates_keys_without_showing_them(keys):
    with pytest.raises(ConfigurationError, match="no encryption key"):
        Vault({})
    with pytest.raises(ConfigurationError, match="key 'k1' must be 32 bytes") as info:
        Vault({"k1": keys.a[:31]})
    keys.assert_hidden(keys.visible(info.value), keys.a[:31])
    with pytest.raises(ConfigurationError, match="invalid key id"):
        Vault({"has:colon": keys.a})
    with pytest.raises(ConfigurationError, match="'k1' is used twice"):
        Vault([("k1", keys.a), ("k1", keys.b)])


def test_generated_keys_are_valid_random_and_accepted(keys):
    first, second = Vault.generate_key(), Vault.generate_key()
    assert first != second
    assert first.split(":")[0] != second.split(":")[0]
    assert len(base64.b64decode(first.split(":")[1])) == 32
    vault = Vault.from_spec(f"{first},{second}")
    assert vault.active_key_id == first.split(":")[0]
    assert Vault.generate_key("mine").startswith("mine:")
    with pytest.raises(ValueError, match="invalid key id"):
        Vault.generate_key("no spaces")


def test_data_dir_key_file_is_created_0600_and_reused(tmp_path, keys, log_messages):
    data_dir = tmp_path / "data" / "brokersync"
    vault = Vault.from_data_dir(data_dir)
    key_file = data_dir / "encryption-keys"
    assert vault.key_file == key_file
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert [m for m in log_messages if str(key_file) in m], "the creation is logged with the file's path"
    # The log says where, never what.
    key_b64 = key_file.read_text().strip().splitlines()[-1].split(":")[1]
    keys.assert_hidden("\n".join(log_messages), key_b64)

    token = vault.encrypt("s3cret", aad=AAD)
    log_messages.clear()
    again = Vault.from_data_dir(data_dir)
    assert again.active_key_id == vault.active_key_id
    assert again.decrypt(token, aad=AAD) == b"s3cret"
    assert not log_messages, "an existing key file is used silently"


def test_default_prefers_env_and_creates_no_file(tmp_path, keys):
    vault = Vault.default(tmp_path, environ={ENV: keys.spec("env-key", keys.a)})
    assert vault.active_key_id == "env-key"
    assert not (tmp_path / "encryption-keys").exists()


def test_default_falls_back_to_key_file(tmp_path):
    vault = Vault.default(tmp_path, environ={})
    assert vault.key_file == tmp_path / "encryption-keys"
    assert Vault.default(tmp_path, environ={}).active_key_id == vault.active_key_id


def test_default_refuses_a_set_but_empty_env_variable(tmp_path):
    with pytest.raises(ConfigurationError, match=f"{ENV} is empty"):
        Vault.default(tmp_path, environ={ENV: ""})
    assert not (tmp_path / "encryption-keys").exists()


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666], ids=oct)
def test_key_file_readable_by_others_is_refused(tmp_path, keys, mode):
    key_file = tmp_path / "encryption-keys"
    key_file.write_text(keys.spec("k1", keys.a) + "\n")
    key_file.chmod(mode)
    with pytest.raises(ConfigurationError, match=rf"accessible by other users \(mode {mode:04o}\).*chmod 600") as info:
        Vault.from_data_dir(tmp_path)
    assert str(key_file) in str(info.value)
    keys.assert_hidden(keys.visible(info.value), keys.a)
    assert key_file.read_text() == keys.spec("k1", keys.a) + "\n", "the file is left as it was"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "holds no key"),
        ("# only a comment\n\n", "holds no key"),
        ("not a key\n", "line 1 of the key file .* is not a 'key_id:base64' pair"),
        ("# header\nk1:c2hvcnQ=\n", "line 2 of the key file .*key id 'k1'\\): the key is 5 bytes"),
    ],
    ids=["empty", "comments-only", "garbage", "short-key"],
)
def test_key_file_with_wrong_content_is_refused(tmp_path, content, expected):
    key_file = tmp_path / "encryption-keys"
    key_file.write_text(content)
    key_file.chmod(0o600)
    with pytest.raises(ConfigurationError, match=expected):
        Vault.from_data_dir(tmp_path)
    assert key_file.read_text() == content, "a broken key file is never overwritten"


def test_key_file_duplicate_ids_and_binary_content_are_refused(tmp_path, keys):
    key_file = tmp_path / "encryption-keys"
    key_file.write_text(f"{keys.spec('k1', keys.a)}\n{keys.spec('k1', keys.b)}\n")
    key_file.chmod(0o600)
    with pytest.raises(ConfigurationError, match="entries 1 and 2 both use key id 'k1'") as info:
        Vault.from_key_file(key_file)
    keys.assert_hidden(keys.visible(info.value), keys.a, keys.b)
    key_file.write_bytes(b"\xff\xfe" + keys.a)
    with pytest.raises(ConfigurationError, match="not UTF-8 text") as info:
        Vault.from_key_file(key_file)
    keys.assert_hidden(keys.visible(info.value), keys.a)


def test_key_file_that_is_a_directory_or_missing_is_refused(tmp_path):
    (tmp_path / "encryption-keys").mkdir(mode=0o700)
    with pytest.raises(ConfigurationError, match="is not a regular file"):
        Vault.from_data_dir(tmp_path)
    with pytest.raises(ConfigurationError, match="Cannot read the key file"):
        Vault.from_data_dir(tmp_path / "elsewhere", create=False)


def test_concurrent_first_starts_share_one_key(tmp_path):
    vaults: list[Vault] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        try:
            vaults.append(Vault.from_data_dir(tmp_path))
        except BaseException as exc:  # pragma: no cover - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len({v.active_key_id for v in vaults}) == 1
    token = vaults[0].encrypt("shared", aad=AAD)
    assert all(v.decrypt(token, aad=AAD) == b"shared" for v in vaults)
    assert [p.name for p in tmp_path.iterdir()] == ["encryption-keys"], "no temporary file left behind"
