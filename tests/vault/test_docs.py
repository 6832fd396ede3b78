"""The Python shown in docs/security.md is code this test runs, so the docs cannot drift from the API."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

SECURITY_MD = Path(__file__).resolve().parents[2] / "docs" / "security.md"
BLOCKS = re.findall(r"```python\n(.*?)```", SECURITY_MD.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_security_doc_has_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block-{n}" for n in range(1, len(BLOCKS) + 1)])
def test_security_doc_example_runs(code, capsys):
    exec(compile(code, str(SECURITY_MD), "exec"), {"__name__": "docs_example"})
    out = capsys.readouterr().out
    assert "hunter2" not in out


def test_error_table_matches_the_messages(keys):
    from brokersync import Vault, VaultError

    table = SECURITY_MD.read_text(encoding="utf-8").split("### When decryption fails", 1)[1]
    fragments = re.findall(r"^\| `([^`]+)` \|", table, flags=re.MULTILINE)
    old = Vault({"K": keys.a})
    token = old.encrypt("x", aad="a:b")
    failures = {
        "unknown key": lambda: Vault({"k2": keys.b}).decrypt(token, aad="a:b"),
        "auth": lambda: old.decrypt(token, aad="a:c"),
        "format": lambda: old.decrypt("plain", aad="a:b"),
        "version": lambda: old.decrypt(token.replace("v1:", "v2:", 1), aad="a:b"),
    }
    messages = []
    for fail in failures.values():
        with pytest.raises(VaultError) as info:
            fail()
        messages.append(str(info.value))
    assert len(fragments) == len(failures)
    for fragment, message in zip(fragments, messages, strict=True):
        assert fragment in message, (fragment, message)
