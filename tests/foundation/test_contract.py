"""The broker contract through runtime registration and the Broker facade."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import brokersync
import httpx
import pytest
from brokersync import BrokerRegistry, hookimpl
from loguru import logger

pytestmark = pytest.mark.anyio

UTC = dt.UTC


def _meta(key: str = "mock", **overrides: Any) -> brokersync.BrokerMetadata:
    values: dict[str, Any] = {
        "key": key,
        "name": "Mock Broker",
        "auth_type": "password",
        "credential_fields": [
            brokersync.CredentialField(name="username"),
            brokersync.CredentialField(name="password", secret=True),
        ],
        "environments": {"live": "https://live.mock.invalid/v1", "demo": "https://demo.mock.invalid/v1"},
        "default_environment": "demo",
    }
    values.update(overrides)
    return brokersync.BrokerMetadata(**values)


def _record(trade_id: str, **overrides: Any) -> dict[str, Any]:
    record = {
        "broker_trade_id": trade_id,
        "symbol": "ESZ4",
        "direction": "long",
        "opened_at": "2024-11-01T14:30:00Z",
        "closed_at": "2024-11-01T15:00:00Z",
        "entry_price": "5800.25",
        "exit_price": "5801.00",
        "quantity": "1",
        "realized_pnl": "37.50",
        "fees": "4.10",
        "currency": "USD",
    }
    record.update(overrides)
    return record


class HttpPlugin:
    """Talks to a fake API through ctx.http; pages trades with an opaque cursor."""

    @hookimpl
    def broker_metadata(self) -> brokersync.BrokerMetadata:
        return _meta()

    @hookimpl
    async def authenticate(self, ctx: brokersync.BrokerContext, credentials: brokersync.Credentials):
        response = await ctx.http.post(
            "/auth", json={"name": credentials["username"], "password": credentials["password"]}
        )
        body = response.json()
        return brokersync.AuthResult(
            access_token=body["accessToken"], expires_at=dt.datetime.fromisoformat(body["expirationTime"])
        )

    @hookimpl
    async def get_accounts(self, ctx: brokersync.BrokerContext, auth: brokersync.AuthResult):
        response = await ctx.http.get("/account/list", headers={"Authorization": f"Bearer {auth.access_token}"})
        return [{"id": str(a["id"]), "name": a["name"]} for a in response.json()]

    @hookimpl
    async def get_trades(self, ctx, auth, account, since, cursor):
        page = cursor
        while True:
            response = await ctx.http.get(
                "/trades",
                params={"account": account.id, "after": page or ""},
                headers={"Authorization": f"Bearer {auth.access_token}"},
            )
            body = response.json()
            yield brokersync.TradePage(records=body["trades"], cursor=body["next"] or page)
            if not body["next"]:
                return
            page = body["next"]


TRADES = [_record("1"), _record("2", entry_price=5800.5), _record("3", opened_at="2024-11-01T14:30:00"), _record("4")]


def fake_api(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/v1/auth":
        data = json.loads(request.content)
        if data["password"] != "correct-horse":
            return httpx.Response(401, json={"errorText": "Incorrect username or password"})
        return httpx.Response(200, json={"accessToken": "tok-0123456789", "expirationTime": "2030-01-01T00:00:00Z"})
    if request.headers.get("Authorization") != "Bearer tok-0123456789":
        return httpx.Response(401)
    if request.url.path == "/v1/account/list":
        return httpx.Response(200, json=[{"id": 11, "name": "DEMO11"}])
    if request.url.path == "/v1/trades":
        after = request.url.params.get("after") or "0"
        start = int(after)
        chunk = TRADES[start : start + 2]
        nxt = str(start + 2) if start + 2 < len(TRADES) else None
        return httpx.Response(200, json={"trades": chunk, "next": nxt})
    return httpx.Response(404)


@pytest.fixture
def registry() -> BrokerRegistry:
    registry = BrokerRegistry(entry_points=False)
    registry.register("mock", HttpPlugin)
    return registry


async def test_full_contract_round_trip_through_the_core_http_client(registry):
    async with registry.get("mock", transport=httpx.MockTransport(fake_api)) as broker:
        assert broker.environment == "demo"
        auth = await broker.authenticate({"username": "ann", "password": "correct-horse"})
        assert auth.expires_at == dt.datetime(2030, 1, 1, tzinfo=UTC)
        [account] = await broker.get_accounts(auth)
        assert account.id == "11" and account.name == "DEMO11"
        batches = [b async for b in broker.iter_trades(auth, account)]
    assert [b.cursor for b in batches] == ["2", "2"]
    trades = [t for b in batches for t in b.trades]
    assert [t.broker_trade_id for t in trades] == ["1", "4"]
    assert trades[0].fees == Decimal("4.10") and trades[0].account_id == "11"
    errors = [e for b in batches for e in b.errors]
    assert [e.broker_trade_id for e in errors] == ["2", "3"]
    assert "float 5800.5 is not allowed" in errors[0].reason
    assert "naive datetime" in errors[1].reason


async def test_cursor_is_handed_back_exactly(registry):
    async with registry.get("mock", transport=httpx.MockTransport(fake_api)) as broker:
        auth = await broker.authenticate({"username": "ann", "password": "correct-horse"})
        account = brokersync.Account(id="11")
        batches = [b async for b in broker.iter_trades(auth, account, cursor="2")]
    assert [t.broker_trade_id for b in batches for t in b.trades] == ["4"]


async def test_bad_credentials_raise_auth_error_and_invalid_ones_never_reach_the_network(registry):
    calls: list[httpx.Request] = []

    def counting(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return fake_api(request)

    async with registry.get("mock", transport=httpx.MockTransport(counting)) as broker:
        with pytest.raises(brokersync.BrokerAuthError) as excinfo:
            await broker.authenticate({"username": "ann", "password": "wrong-password-1"})
        assert excinfo.value.status_code == 401 and excinfo.value.broker == "mock"
        assert len(calls) == 1
        with pytest.raises(brokersync.ConfigurationError, match="missing required field 'password'"):
            await broker.authenticate({"username": "ann"})
        assert len(calls) == 1


async def test_unknown_environment_and_unknown_broker_are_configuration_errors(registry):
    with pytest.raises(brokersync.ConfigurationError, match="no environment 'paper'"):
        registry.get("mock", environment="paper")
    with pytest.raises(brokersync.ConfigurationError, match="unknown broker 'nope'; available brokers: mock"):
        registry.get("nope")


class SyncPlugin:
    """Plain (non-async) hooks returning lists and mappings are accepted too."""

    @hookimpl
    def broker_metadata(self):
        return _meta("plain")

    @hookimpl
    def authenticate(self, credentials):
        return brokersync.AuthResult(access_token="plain-" + credentials["username"])

    @hookimpl
    def get_accounts(self):
        return [{"id": "P1"}]

    @hookimpl
    def get_trades(self, account, since):
        records = [_record(str(i), opened_at=f"2024-11-0{1 + i % 2}T14:30:00Z", closed_at=None) for i in range(1203)]
        return [r for r in records if since is None or r["opened_at"] >= since.isoformat().replace("+00:00", "Z")]


async def test_sync_hooks_and_large_lists_are_batched():
    registry = BrokerRegistry(entry_points=False)
    registry.register("plain", SyncPlugin())
    async with registry.get("plain") as broker:
        auth = await broker.authenticate({"username": "bob", "password": "pw-123456"})
        [account] = await broker.get_accounts(auth)
        batches = [b async for b in broker.iter_trades(auth, account)]
        assert [len(b.trades) for b in batches] == [500, 500, 203]
        since = dt.datetime(2024, 11, 2, tzinfo=dt.timezone(dt.timedelta(hours=1)))
        later = [b async for b in broker.iter_trades(auth, account, since=since)]
        assert sum(len(b.trades) for b in later) == 601
        with pytest.raises(ValueError, match="since must be a timezone-aware datetime"):
            [b async for b in broker.iter_trades(auth, account, since=dt.datetime(2024, 1, 1))]


class WrongReturns:
    @hookimpl
    def broker_metadata(self):
        return _meta("wrong")

    @hookimpl
    async def authenticate(self):
        return {"access_token": "abc"}

    @hookimpl
    async def get_accounts(self):
        return [{"id": "1"}, {"id": "1"}]

    @hookimpl
    async def get_trades(self):
        return {"trades": []}


async def test_contract_violations_name_the_hook():
    registry = BrokerRegistry(entry_points=False)
    registry.register("wrong", WrongReturns)
    async with registry.get("wrong") as broker:
        with pytest.raises(
            brokersync.PluginContractError, match="hook authenticate returned dict, expected AuthResult"
        ):
            await broker.authenticate({"username": "u", "password": "p"})
        auth = brokersync.AuthResult(access_token="abcd")
        with pytest.raises(brokersync.PluginContractError, match="duplicate account ids"):
            await broker.get_accounts(auth)
        with pytest.raises(brokersync.PluginContractError, match="hook get_trades returned dict"):
            [b async for b in broker.iter_trades(auth, brokersync.Account(id="1"))]


def test_runtime_registration_validates_and_refuses_taken_keys(registry):
    with pytest.raises(ValueError, match="broker key 'mock' is already provided by a runtime registration"):
        registry.register("mock", HttpPlugin)
    registry.register("mock", HttpPlugin, replace=True)

    class Incomplete:
        @hookimpl
        def broker_metadata(self):
            return _meta("incomplete")

    with pytest.raises(
        brokersync.PluginError, match="missing required hook\\(s\\): authenticate, get_accounts, get_trades"
    ):
        registry.register("incomplete", Incomplete)
    assert not registry.is_supported("incomplete")
    registry.unregister("mock")
    assert not registry.is_supported("mock")


def test_module_level_api_uses_the_default_registry():
    brokersync.register_broker("mock_default", _Renamed("mock_default"))
    try:
        assert brokersync.is_broker_supported("mock_default")
        assert brokersync.get_broker_metadata("mock_default").name == "Mock Broker"
        assert "mock_default" in [m.key for m in brokersync.list_brokers()]
        assert any("mock_default" in p.brokers for p in brokersync.list_plugins())
        assert brokersync.get_broker("mock_default", environment="live").base_url == "https://live.mock.invalid/v1"
    finally:
        brokersync.unregister_broker("mock_default")
    assert not brokersync.is_broker_supported("mock_default")


class _Renamed(SyncPlugin):
    def __init__(self, key: str) -> None:
        self.key = key

    @hookimpl
    def broker_metadata(self):
        return _meta(self.key)


async def test_trace_logs_every_hook_call_without_secrets(monkeypatch):
    monkeypatch.setenv("BROKERSYNC_TRACE_PLUGINS", "1")
    records: list[dict[str, Any]] = []
    logger.enable("brokersync")
    sink = logger.add(lambda message: records.append(message.record), level="INFO")
    try:
        registry = BrokerRegistry(entry_points=False)
        registry.register("mock", HttpPlugin)
        async with registry.get("mock", transport=httpx.MockTransport(fake_api)) as broker:
            auth = await broker.authenticate({"username": "ann", "password": "correct-horse"})
            await broker.get_accounts(auth)
            with pytest.raises(brokersync.BrokerAuthError):
                await broker.authenticate({"username": "ann", "password": "wrong-horse-2"})
    finally:
        logger.remove(sink)
        logger.disable("brokersync")
    traced = [(r["extra"]["hook"], r["extra"]["outcome"]) for r in records if "hook" in r["extra"]]
    assert traced == [("authenticate", "ok"), ("get_accounts", "ok"), ("authenticate", "error BrokerAuthError")]
    assert all(r["extra"]["broker"] == "mock" and r["extra"]["ms"] >= 0 for r in records if "hook" in r["extra"])
    text = " ".join(r["message"] + str(r["extra"]) for r in records)
    assert "correct-horse" not in text and "tok-0123456789" not in text


def test_a_file_only_plugin_needs_only_metadata_and_file_formats(registry):
    from brokersync.files import FileFormat

    fmt = FileFormat(name="nt-grid", description="grid", sniff=lambda head: True, parse=lambda source: iter(()))

    class FileOnly:
        @hookimpl
        def broker_metadata(self):
            return _meta("fileonly", auth_type="file", credential_fields=[], environments={}, default_environment=None)

        @hookimpl
        def file_formats(self):
            return [fmt]

    meta = registry.register("fileonly", FileOnly)
    assert meta.auth_type is brokersync.AuthType.FILE
    broker = registry.get("fileonly")
    assert broker.environment == "file"
    assert broker.file_formats() == (fmt,)

    class Confused(FileOnly):
        @hookimpl
        def broker_metadata(self):
            return _meta("confused")

    with pytest.raises(brokersync.PluginError, match="implements only file_formats, so its metadata must say"):
        registry.register("confused", Confused)
