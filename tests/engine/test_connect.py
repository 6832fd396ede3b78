"""Connecting, reconnecting and disconnecting brokers; users only see their own connections."""

from __future__ import annotations

import fakebroker
import pytest
from brokersync import (
    BrokerAuthError,
    BrokerSync,
    ConfigurationError,
    ConnectionNotFoundError,
    ConnectionStatus,
    SyncError,
    VaultError,
)
from brokersync._store import Store

pytestmark = pytest.mark.anyio


async def test_connect_returns_accounts_and_stores_encrypted_credentials(engine: BrokerSync) -> None:
    result = await engine.connect_broker("alice", fakebroker.KEY, fakebroker.CREDENTIALS)

    assert [a.id for a in result.accounts] == ["ACC-1", "ACC-2"]
    assert result.environment == "live"
    [info] = await engine.list_connections(user_id="alice")
    assert info.id == result.connection_id
    assert info.status is ConnectionStatus.ACTIVE
    assert [a.account_id for a in info.accounts] == ["ACC-1", "ACC-2"]
    assert info.token_expires_at is not None
    row = await engine.store.connection_row(result.connection_id)
    assert row is not None
    assert row.credentials.startswith("v1:k1:")
    assert fakebroker.PASSWORD not in row.credentials
    assert row.token.startswith("v1:k1:")


async def test_rejected_credentials_raise_auth_error_and_store_nothing(
    engine: BrokerSync, api: fakebroker.FakeBrokerApi
) -> None:
    with pytest.raises(BrokerAuthError) as caught:
        await engine.connect_broker(
            "alice", fakebroker.KEY, {"username": fakebroker.USERNAME, "password": "wrong-pass"}
        )

    assert "wrong-pass" not in str(caught.value)
    assert api.auth_calls == 1
    assert await engine.list_connections() == []


async def test_credentials_not_matching_the_schema_fail_before_any_request(
    engine: BrokerSync, api: fakebroker.FakeBrokerApi
) -> None:
    with pytest.raises(ConfigurationError, match="missing required field 'password'"):
        await engine.connect_broker("alice", fakebroker.KEY, {"username": fakebroker.USERNAME})
    with pytest.raises(ConfigurationError, match="unknown broker 'nope'"):
        await engine.connect_broker("alice", "nope", fakebroker.CREDENTIALS)

    assert api.requests == []
    assert await engine.list_connections() == []


async def test_users_only_touch_their_own_connections(engine: BrokerSync) -> None:
    mine = await engine.connect_broker("alice", fakebroker.KEY, fakebroker.CREDENTIALS)

    for call in (
        engine.sync_broker_trades(mine.connection_id, "mallory"),
        engine.disconnect_broker(mine.connection_id, "mallory"),
        engine.get_connection(mine.connection_id, "mallory"),
        engine.reconnect_broker(mine.connection_id, "mallory", fakebroker.CREDENTIALS),
        engine.list_runs(user_id="mallory", connection_id=mine.connection_id),
    ):
        with pytest.raises(ConnectionNotFoundError, match=f"no connection {mine.connection_id} for user mallory"):
            await call
    assert await engine.list_connections(user_id="mallory") == []
    assert (await engine.get_connection(mine.connection_id, "alice")).status is ConnectionStatus.ACTIVE


async def test_disconnect_forgets_secrets_keeps_trades_and_blocks_sync(engine: BrokerSync) -> None:
    connection = await engine.connect_broker("alice", fakebroker.KEY, fakebroker.CREDENTIALS)
    await engine.sync_broker_trades(connection.connection_id, "alice")

    await engine.disconnect_broker(connection.connection_id, "alice")

    info = await engine.get_connection(connection.connection_id, "alice")
    assert info.status is ConnectionStatus.DISABLED
    row = await engine.store.connection_row(connection.connection_id)
    assert row is not None
    assert row.credentials is None
    assert row.token is None
    assert await engine.count_trades(connection_id=connection.connection_id) == 35
    with pytest.raises(SyncError, match="disconnected"):
        await engine.sync_broker_trades(connection.connection_id, "alice")
    assert [r.status for r in await engine.run_scheduled_sync()] == []

    await engine.reconnect_broker(connection.connection_id, "alice", fakebroker.CREDENTIALS)
    result = await engine.sync_broker_trades(connection.connection_id, "alice")
    assert (result.imported, result.skipped) == (0, 35)


async def test_disconnect_with_delete_trades_removes_everything_but_the_audit(engine: BrokerSync) -> None:
    connection = await engine.connect_broker("alice", fakebroker.KEY, fakebroker.CREDENTIALS)
    await engine.sync_broker_trades(connection.connection_id, "alice")

    await engine.disconnect_broker(connection.connection_id, "alice", delete_trades=True)

    assert await engine.list_connections() == []
    assert await engine.count_trades() == 0
    assert [r.connection_id for r in await engine.list_runs()] == [connection.connection_id]


async def test_a_wrong_key_is_a_vault_error_naming_the_connection(engine: BrokerSync, make_engine, db_url) -> None:
    from brokersync import Vault

    connection = await engine.connect_broker("alice", fakebroker.KEY, fakebroker.CREDENTIALS)
    other = make_engine(encryption_keys=Vault.generate_key("k1"))  # same key id, different key

    with pytest.raises(VaultError, match=f"credentials of connection {connection.connection_id}"):
        await other.sync_broker_trades(connection.connection_id, "alice")
    runs = await other.list_runs(connection_id=connection.connection_id)
    assert [(r.status.value, r.error_type) for r in runs] == [("failed", "unknown")]


async def test_status_summarizes_schema_connections_trades_and_keys(engine: BrokerSync, db_url: str) -> None:
    first = await engine.connect_broker("alice", fakebroker.KEY, fakebroker.CREDENTIALS)
    second = await engine.connect_broker("bob", fakebroker.KEY, fakebroker.CREDENTIALS)
    await engine.sync_broker_trades(first.connection_id, "alice")
    await engine.disconnect_broker(second.connection_id, "bob")

    status = await engine.status()

    assert status.schema_current
    assert status.dialect == ("sqlite" if db_url.startswith("sqlite") else "postgresql")
    assert dict(status.connections) == {"active": 1, "disabled": 1}
    assert dict(status.last_runs) == {"succeeded": 1}
    assert status.trades == 35
    assert status.active_key_id == "k1"


async def test_postgresql_schema_is_upgraded_explicitly(make_engine, db_url: str) -> None:
    if db_url.startswith("sqlite"):
        engine = make_engine()  # SQLite: migrated on first use
        assert await engine.list_connections() == []
        assert (await engine.status()).schema_current
        return
    engine = make_engine()
    with pytest.raises(ConfigurationError, match="brokersync db upgrade"):
        await engine.list_connections()
    assert await engine.upgrade_database() == (None, Store.head())
    assert await engine.list_connections() == []
