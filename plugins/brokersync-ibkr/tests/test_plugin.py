"""The plugin as the core discovers it: metadata, credential schema, and a light import."""

from __future__ import annotations

import subprocess
import sys

import brokersync
from brokersync import AuthType, CursorKind, Reports


def test_metadata_through_the_entry_point() -> None:
    meta = brokersync.get_broker_metadata("ibkr")
    fields = {f.name: f for f in meta.credential_fields}
    assert meta.auth_type is AuthType.TOKEN
    assert fields["token"].secret and fields["token"].required
    assert not fields["query_id"].secret and fields["query_id"].required
    assert not fields["time_zone"].required and fields["time_zone"].default == "America/New_York"
    assert meta.capabilities.reports is Reports.EXECUTIONS
    assert meta.capabilities.refresh_token is False and meta.capabilities.cursor is CursorKind.NONE
    assert meta.capabilities.min_sync_interval_seconds == 6 * 3600
    assert {(r.max_requests, r.window_seconds, r.scope) for r in meta.rate_limits} == {
        (1, 1.0, "account"),
        (10, 60.0, "account"),
    }
    assert "/Universal/servlet" not in meta.environments["live"]
    assert meta.environments["live"].startswith("https://ndcdyn.interactivebrokers.com/AccountManagement/")


def test_discovery_does_not_import_the_parser_or_httpx() -> None:
    code = (
        "import sys, brokersync; brokersync.get_broker_metadata('ibkr');"
        "print(sorted(m for m in ('httpx', 'defusedxml', 'brokersync_ibkr.parse', 'brokersync_ibkr.client')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
