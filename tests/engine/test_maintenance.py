"""Operator maintenance: which stored secrets the configured keys open; forgetting a sync position under the lease."""

from __future__ import annotations

import fakebroker
import pytest
from brokersync import BrokerSync, ConnectionNotFoundError, SyncInProgressError, Vault
from engine_support import Clock

pytestmark = pytest.mark.anyio


async def test_reset_sync_state_waits_for_the_lease_and_keeps_the_trades(
    engine: BrokerSync, make_engine, clock: Clock
) -> None:
    connection = await engine.connect_broker("alice", fakebroker.KEY, fakebroker.CREDENTIALS)
    first = await engine.sync_broker_trades(connection.connection_id, "alice")
    info = await engine.get_connection(connection.connection_id, "alice")
    assert all(a.watermark is not None for a in info.accounts)

    with pytest.raises(ConnectionNotFoundError):
        await engine.reset_sync_state(connection.connection_id, "mallory")
    other = make_engine()
    assert await other.store.acquire_lease(
        connection.connection_id, holder="busy-worker", run_id="r1", now=clock(), ttl=engine.settings.lease_ttl
    )
    with pytest.raises(SyncInProgressError, match="being synced"):
        await engine.reset_sync_state(connection.connection_id, "alice")
    assert (await engine.get_connection(connection.connection_id, "alice")).accounts == info.accounts
    assert (await engine.store.lease_holder(connection.connection_id))[0] == "busy-worker"

    clock.advance(seconds=engine.settings.lease_ttl.total_seconds() + 1)
    assert await engine.reset_sync_state(connection.connection_id, "alice") == len(info.accounts)
    after = await engine.get_connection(connection.connection_id, "alice")
    assert [(a.watermark, a.cursor) for a in after.accounts] == [(None, None)] * len(info.accounts)
    assert await engine.store.lease_holder(connection.connection_id) is None  # given back in the same transaction
    assert await engine.count_trades(connection_id=connection.connection_id) == first.imported

    again = await engine.sync_broker_trades(connection.connection_id, "alice", trigger="scheduled")
    assert (again.imported, again.skipped) == (0, first.imported)  # all history read again, nothing new
    assert await engine.reset_sync_state(connection.connection_id, "alice") == len(info.accounts)


async def test_verify_secrets_names_the_connections_the_keys_cannot_open(
    engine: BrokerSync, make_engine, keys: str
) -> None:
    alice = await engine.connect_broker("alice", fakebroker.KEY, fakebroker.CREDENTIALS)
    bob = await engine.connect_broker("bob", fakebroker.KEY, fakebroker.CREDENTIALS)
    assert await engine.verify_secrets() == {alice.connection_id: None, bob.connection_id: None}
    assert await engine.verify_secrets([bob.connection_id, "no-such-id"]) == {bob.connection_id: None}

    stranger = make_engine(encryption_keys=Vault.generate_key("k9"))
    problems = await stranger.verify_secrets()
    assert set(problems) == {alice.connection_id, bob.connection_id}
    for connection_id, problem in problems.items():
        assert problem is not None
        assert connection_id in problem
        assert fakebroker.PASSWORD not in problem
        assert keys.split(":", 1)[1] not in problem

    both = make_engine(encryption_keys=f"{Vault.generate_key('k9')},{keys}")
    assert set((await both.verify_secrets()).values()) == {None}
