"""``brokersync stats`` and ``brokersync sync --failed`` end to end, in real subprocesses on a SQLite file.

The broker is `beta` from the installed test distribution tests/packages/good. A sync fails for real
when the plugin is not loaded (``BROKERSYNC_PLUGINS`` leaves it out, as after an uninstall): the run
is recorded as failed, and syncs again once the plugin is back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_engine_cli import cli, connect

NO_PLUGINS = {"BROKERSYNC_PLUGINS": "nothing-installed"}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("BROKERSYNC_")}
    return {**base, "BROKERSYNC_DATA_DIR": str(tmp_path / "data"), "BROKERSYNC_PLUGINS": "beta", "COLUMNS": "200"}


def stats_json(env: dict[str, str], *args: str) -> dict[str, Any]:
    result = cli(env, "stats", "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_stats_json_and_check_exit_codes(env, tmp_path: Path) -> None:
    empty = stats_json(env)
    assert empty["total"]["runs"] == 0 and empty["brokers"] == {} and empty["alerts"] == []
    assert (empty["total"]["success_rate"], empty["total"]["retry_rate"]) == (None, None)
    calm = cli(env, "stats", "--check")
    assert calm.returncode == 0, calm.stderr
    assert "No alerts." in calm.stdout

    # beta's login always reaches accounts B-1 and B-2: one connection per user (a second one of
    # the same user would be refused as a duplicate).
    first, _second = connect(env, tmp_path), connect(env, tmp_path, user="other")
    assert cli(env, "sync", "--all").returncode == 0
    assert cli(env, "stats", "--check").returncode == 0  # partial runs (an invalid record) are no failures
    failed = cli(env, "sync", first, extra=NO_PLUGINS)
    assert failed.returncode != 0 and "unknown broker 'beta'" in failed.stderr

    data = stats_json(env)
    beta = data["brokers"]["beta"]
    assert (beta["runs"], beta["partial"], beta["failed"], beta["imported"]) == (3, 2, 1, 10)
    assert beta["failure_rate"] == 1 / 3 and data["total"]["failure_rate"] == 1 / 3
    assert [(a["kind"], a["broker"]) for a in data["alerts"]] == [("failure_rate", "beta")]
    assert data["thresholds"]["failure_rate"] == 0.1 and data["thresholds"]["slow_sync_seconds"] == 60

    alarm = cli(env, "stats", "--check")
    assert alarm.returncode == 1
    assert "ALERT failure_rate: beta: 1 of 3 completed syncs failed" in alarm.stdout
    assert cli(env, "stats").returncode == 0  # without --check it only reports
    assert cli(env, "stats", "--check", "--max-failure-rate", "34").returncode == 0
    assert cli(env, "stats", "--check", "--min-runs", "4").returncode == 0

    assert stats_json(env, "--broker", "alpha")["total"]["runs"] == 0
    assert stats_json(env, "--user", "someone-else")["total"]["runs"] == 0
    assert stats_json(env, "--since", "2999-01-01")["total"]["runs"] == 0
    assert stats_json(env, "--since", "7d")["total"]["runs"] == 3
    assert stats_json(env, "--since", "all")["since"] is None

    bad = cli(env, "stats", "--since", "yesterday")
    assert bad.returncode == 2 and "'yesterday' is neither a duration" in bad.stderr


def test_sync_failed_syncs_exactly_the_connections_whose_last_sync_failed(env, tmp_path: Path) -> None:
    first, second, third = (connect(env, tmp_path, user=user) for user in ("local", "u2", "u3"))
    assert cli(env, "sync", "--all").returncode == 0
    assert cli(env, "sync", first, extra=NO_PLUGINS).returncode != 0
    assert cli(env, "sync", third, "--user", "u3", extra=NO_PLUGINS).returncode != 0
    assert cli(env, "disconnect", third, "--user", "u3").returncode == 0  # failed, then disconnected: not retried

    retried = cli(env, "sync", "--failed", "--json")

    assert retried.returncode == 0, retried.stderr
    [result] = json.loads(retried.stdout)
    assert (result["connection_id"], result["trigger"], result["status"]) == (first, "scheduled", "partial")
    runs = json.loads(cli(env, "runs", "--json", "--limit", "100").stdout)
    seconds = json.loads(cli(env, "runs", "--json", "--limit", "100", "--user", "u2").stdout)
    assert sum(r["connection_id"] == second for r in seconds) == 1  # the healthy one was left alone
    assert [r["status"] for r in runs if r["connection_id"] == first] == ["partial", "failed", "partial"]

    again = cli(env, "sync", "--failed")
    assert again.returncode == 0
    assert "nothing to retry" in again.stderr
    both = cli(env, "sync", "--failed", "--all")
    assert both.returncode == 2 and "give one of a CONNECTION_ID, --all or --failed" in both.stderr
