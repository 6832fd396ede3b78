"""Real processes sharing one data directory: first start and rotation are safe across processes."""

from __future__ import annotations

import json
import subprocess
import sys

CHILD = """
import json, sys
from brokersync import Vault
vault = Vault.from_data_dir(sys.argv[1])
action = sys.argv[2]
if action == "add":
    vault.add_key()
token = vault.encrypt("from-" + sys.argv[3], aad="conn-1:credentials")
print(json.dumps({"active": vault.active_key_id, "keys": list(vault.key_ids), "token": token}))
"""


def _run_children(data_dir, action: str, count: int) -> list[dict[str, object]]:
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(data_dir), action, str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(count)
    ]
    results = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        results.append(json.loads(out))
    return results


def test_processes_starting_together_share_one_generated_key(tmp_path):
    from brokersync import Vault

    results = _run_children(tmp_path, "start", 4)
    assert len({r["active"] for r in results}) == 1
    vault = Vault.from_data_dir(tmp_path)
    assert vault.key_ids == (results[0]["active"],)
    assert sorted(vault.decrypt(r["token"], aad="conn-1:credentials") for r in results) == [
        b"from-0",
        b"from-1",
        b"from-2",
        b"from-3",
    ]


def test_processes_rotating_together_lose_no_key(tmp_path):
    from brokersync import Vault

    first = Vault.from_data_dir(tmp_path)
    results = _run_children(tmp_path, "add", 3)
    final = Vault.from_data_dir(tmp_path)
    assert len(final.key_ids) == 4
    assert first.active_key_id in final.key_ids
    assert {r["active"] for r in results} <= set(final.key_ids)
    # Every value any process wrote is readable with the final key file.
    for n, result in enumerate(results):
        assert final.decrypt(result["token"], aad="conn-1:credentials") == f"from-{n}".encode()
