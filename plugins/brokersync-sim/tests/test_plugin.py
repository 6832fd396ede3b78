"""The sim plugin as users meet it: discovered through its entry point, cheap to import, served on loopback."""

from __future__ import annotations

import subprocess
import sys

import brokersync
import pytest
from brokersync_sim import SimAPI, SimServer
from brokersync_sim.plugin import APP_LIMIT, SIM_BASE_URL, USER_LIMIT

pytestmark = pytest.mark.anyio


def test_the_plugin_is_discovered_through_its_entry_point_with_every_hook():
    registry = brokersync.BrokerRegistry()
    (info,) = [p for p in registry.plugins() if p.distribution == "brokersync-sim"]
    assert info.brokers == ("sim",)
    assert set(info.hooks) == {"authenticate", "broker_metadata", "get_accounts", "get_trades", "refresh_token"}
    assert not info.failures


def test_metadata_marks_the_password_secret_and_declares_the_fakes_url_and_limits():
    meta = brokersync.get_broker_metadata("sim")
    assert meta.secret_fields == {"password"}
    assert meta.environments["sim"] == SIM_BASE_URL
    assert meta.capabilities.refresh_token
    assert meta.capabilities.cursor is brokersync.CursorKind.OPAQUE
    limits = {(r.scope, r.max_requests, r.window_seconds) for r in meta.rate_limits}
    assert limits == {("account", *USER_LIMIT), ("broker", *APP_LIMIT)}
    api = SimAPI()
    assert (api.user_limit, api.app_limit) == (USER_LIMIT, APP_LIMIT), "the fake enforces what the metadata says"


async def test_credentials_are_checked_before_any_request():
    api = SimAPI()
    async with brokersync.get_broker("sim", transport=api.transport()) as broker:
        with pytest.raises(brokersync.ConfigurationError, match="missing required field 'password'"):
            await broker.authenticate({"username": "alice"})
    assert api.stats.requests == 0


def test_discovering_the_plugin_does_not_import_httpx_or_the_fake():
    code = (
        "import sys, brokersync; brokersync.get_broker_metadata('sim');"
        "print(sorted(m for m in ('httpx', 'brokersync_sim.api', 'sqlalchemy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


async def test_the_loopback_server_serves_the_same_trades_as_the_in_process_fake(credentials, sync_account):
    in_process = SimAPI(seed=9, accounts=1, trades_per_account=1500, correction_rate=0)
    served = SimAPI(seed=9, accounts=1, trades_per_account=1500, correction_rate=0)
    with SimServer(served) as server:
        assert server.base_url.startswith("http://127.0.0.1:")
        async with brokersync.get_broker("sim", base_url=server.base_url) as broker:
            auth = await broker.authenticate(credentials)
            (account,) = await broker.get_accounts(auth)
            over_http, errors, _, pages = await sync_account(broker, auth, account)
    assert pages == 2
    assert not errors
    async with brokersync.get_broker("sim", transport=in_process.transport()) as broker:
        auth = await broker.authenticate(credentials)
        (account,) = await broker.get_accounts(auth)
        local, _, _, _ = await sync_account(broker, auth, account)
    assert over_http == local
    assert served.stats.logins == 1


async def test_a_timeout_on_the_loopback_server_reaches_the_plugin_as_a_network_error(credentials):
    api = SimAPI(fault_rate=1.0, fault_kinds=["timeout"])
    with SimServer(api) as server:
        async with brokersync.get_broker("sim", base_url=server.base_url) as broker:
            with pytest.raises(brokersync.BrokerNetworkError):
                await broker.authenticate(credentials)


def test_brokersync_plugins_lists_the_sim_plugin_with_its_hooks():
    import json
    import subprocess
    import sys
    from pathlib import Path

    # The installed command, as a user runs it (the CLI module is the core's private business).
    command = Path(sys.executable).parent / "brokersync"
    result = subprocess.run([str(command), "plugins", "--json"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    (entry,) = [p for p in json.loads(result.stdout) if p["distribution"] == "brokersync-sim"]
    assert entry["brokers"] == ["sim"]
    assert "refresh_token" in entry["hooks"]
    assert entry["errors"] == []
