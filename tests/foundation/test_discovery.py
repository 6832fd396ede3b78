"""Discovery through real installed distributions (tests/packages/*, installed by the nox session)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys

import brokersync
import pytest
from brokersync import BrokerRegistry

pytestmark = pytest.mark.anyio

INSTALLED = {d.metadata["Name"] for d in importlib.metadata.distributions()}
if not {"bstest-good", "bstest-broken", "bstest-dup"} <= INSTALLED:  # pragma: no cover - guarded setup
    pytest.fail(
        "the test distributions in tests/packages are not installed; run the suite through "
        "`nox -s tests` (or `pip install tests/packages/*`)",
        pytrace=False,
    )

BROKEN = {
    "broken_import": "cannot import bstest_broken.import_error:plugin: ModuleNotFoundError",
    "misspelled": "unknown hook(s) 'get_trade' (did you mean 'get_trades'?)",
    "unmarked": "missing required hook(s): get_trades (defined, but not marked @brokersync.hookimpl)",
    "badargs": "Argument(s) {'acount'} are declared in the hookimpl but can not be found in the hookspec",
    "badmeta": "invalid metadata:",
    "wrongkey": "says its key is 'not_the_entry_point_name'; it must equal the entry point name",
    "futureapi": "supports plugin API >=2,<3, but this brokersync implements plugin API 1.0",
    "missing_attr": "has no attribute 'does_not_exist'",
}


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_brokersync_exe(), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        check=False,
        timeout=60,
    )


def _brokersync_exe() -> str:
    return os.path.join(os.path.dirname(sys.executable), "brokersync")


def test_every_broken_plugin_is_reported_by_name_with_its_reason():
    registry = BrokerRegistry()
    failures = {f.key: f for f in registry.failures()}
    for key, fragment in BROKEN.items():
        assert key in failures, f"{key} was not reported"
        assert failures[key].distribution == "bstest-broken"
        assert fragment in failures[key].error, failures[key].error
        assert not registry.is_supported(key)


def test_good_plugins_still_work_next_to_broken_ones():
    registry = BrokerRegistry()
    assert registry.is_supported("beta")
    beta = registry.metadata("beta")
    assert beta.name == "Beta Futures"
    assert beta.default_environment == "demo"
    assert beta.secret_fields == {"password"}
    info = next(p for p in registry.plugins() if p.distribution == "bstest-good")
    assert info.version == "1.2.0"
    assert "beta" in info.brokers
    assert set(info.hooks) >= {"authenticate", "broker_metadata", "get_accounts", "get_trades", "refresh_token"}


def test_a_contested_key_is_refused_for_every_claimant_until_the_user_chooses():
    registry = BrokerRegistry()
    contested = [f for f in registry.failures() if f.key == "alpha"]
    assert {f.distribution for f in contested} == {"bstest-good", "bstest-dup"}
    assert all("claimed by several distributions" in f.error for f in contested)
    with pytest.raises(brokersync.ConfigurationError, match="installed but failed to load"):
        registry.get("alpha")

    chosen = BrokerRegistry(allow=["alpha=bstest-good", "beta"])
    assert chosen.is_supported("alpha") and chosen.is_supported("beta")
    assert chosen.failures() == []
    assert [m.key for m in chosen.list_brokers()] == ["alpha", "beta"]


def test_allow_list_from_environment(monkeypatch):
    monkeypatch.setenv("BROKERSYNC_PLUGINS", "beta, misspelled")
    registry = BrokerRegistry()
    assert [m.key for m in registry.list_brokers()] == ["beta"]
    assert [f.key for f in registry.failures()] == ["misspelled"]
    monkeypatch.setenv("BROKERSYNC_PLUGINS", "")
    assert BrokerRegistry().list_brokers() == []


async def test_an_installed_plugin_is_usable_through_the_facade():
    registry = BrokerRegistry(allow=["alpha=bstest-good", "beta"])
    async with registry.get("beta") as beta:
        assert beta.environment == "demo" and beta.base_url == "https://demo.beta.invalid"
        auth = await beta.authenticate({"username": "ann", "password": "s3cret-pw"})
        renewed = await beta.refresh_token({"username": "ann", "password": "s3cret-pw"}, auth)
        assert renewed is not None and renewed.access_token == "beta-ann-renewed"
        accounts = await beta.get_accounts(auth)
        assert [(a.id, a.currency) for a in accounts] == [("B-1", None), ("B-2", "EUR")]
    async with registry.get("alpha") as alpha:
        auth = await alpha.authenticate({"token": "alpha-token-1"})
        [account] = await alpha.get_accounts(auth)
        batches = [b async for b in alpha.iter_trades(auth, account)]
        assert [t.broker_trade_id for b in batches for t in b.trades] == ["T-1"]
        assert not alpha.implements("refresh_token")
        assert await alpha.refresh_token({"token": "alpha-token-1"}, auth) is None


def test_cli_plugins_lists_installed_and_broken_plugins_as_json():
    result = _cli("plugins", "--json")
    assert result.returncode == 0, result.stderr
    data = {entry["distribution"]: entry for entry in json.loads(result.stdout)}
    assert data["bstest-good"]["version"] == "1.2.0"
    assert "beta" in data["bstest-good"]["brokers"]
    assert "refresh_token" in data["bstest-good"]["hooks"]
    errors = {e["broker"]: e["error"] for e in data["bstest-broken"]["errors"]}
    for key, fragment in BROKEN.items():
        assert fragment in errors[key]


def test_cli_plugins_table_shows_errors_and_check_flag_fails():
    result = _cli("plugins")
    assert result.returncode == 0
    assert "bstest-good" in result.stdout and "failed to load" in result.stdout
    assert "misspelled" in result.stdout and "did you mean 'get_trades'" in result.stdout
    assert _cli("plugins", "--check").returncode == 1
    assert _cli("plugins", "--check", env={"BROKERSYNC_PLUGINS": "beta"}).returncode == 0


def test_cli_brokers_shows_metadata_and_unknown_key_is_a_usage_error():
    result = _cli("brokers", "beta", "--json")
    assert result.returncode == 0, result.stderr
    [beta] = json.loads(result.stdout)
    assert beta["key"] == "beta"
    assert beta["environments"] == {"live": "https://live.beta.invalid", "demo": "https://demo.beta.invalid"}
    assert {f["name"]: f["secret"] for f in beta["credential_fields"]} == {"username": False, "password": True}
    table = _cli("brokers")
    assert table.returncode == 0 and "Beta Futures" in table.stdout
    unknown = _cli("brokers", "nope")
    assert unknown.returncode == 2
    assert "unknown broker 'nope'" in unknown.stderr


def test_cli_version_and_help():
    version = _cli("--version")
    assert version.returncode == 0 and brokersync.__version__ in version.stdout
    for args in (["--help"], ["plugins", "--help"], ["brokers", "--help"]):
        result = _cli(*args)
        assert result.returncode == 0 and "Usage:" in result.stdout
