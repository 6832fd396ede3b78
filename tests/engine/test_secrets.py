"""No credential or token value reaches the database in clear, the logs, exceptions or audit rows."""

from __future__ import annotations

from pathlib import Path

import fakebroker
import pytest
from brokersync import BrokerAuthError, BrokerSync, Vault, classify_error
from engine_support import Clock
from loguru import logger
from sqlalchemy import text

pytestmark = pytest.mark.anyio

NEW_PASSWORD = "pw-Rotated-0a9b8c7d6e5f"
TABLES = ("connections", "accounts", "sync_cursors", "trades", "sync_runs", "sync_leases")


async def dump_tables(engine: BrokerSync) -> str:
    parts = []
    async with engine.store.engine.connect() as conn:
        for table in TABLES:
            result = await conn.execute(text(f"SELECT * FROM {table}"))
            parts += [repr(tuple(row)) for row in result]
    return "\n".join(parts)


async def test_secrets_never_appear_in_clear_anywhere(
    make_engine, db_url: str, api: fakebroker.FakeBrokerApi, clock: Clock, keys: str
) -> None:
    records: list[str] = []
    sink = logger.add(lambda message: records.append(str(message)), level="TRACE", format="{message} | {extra}")
    logger.enable("brokersync")
    seen: list[str] = []
    try:
        engine = make_engine()
        await engine.upgrade_database()
        connection = await engine.connect_broker("alice", fakebroker.KEY, fakebroker.CREDENTIALS)
        result = await engine.sync_broker_trades(connection.connection_id, "alice")
        seen.append(repr(result))
        clock.advance(hours=2)  # token expired: refreshed and persisted
        seen.append(repr(await engine.sync_broker_trades(connection.connection_id, "alice")))

        with pytest.raises(BrokerAuthError) as rejected:
            await engine.connect_broker("bob", fakebroker.KEY, {"username": "bob", "password": NEW_PASSWORD})
        api.password = NEW_PASSWORD  # the user changed the password at the broker
        api.tokens.clear()
        api.refresh_tokens.clear()
        with pytest.raises(BrokerAuthError) as failed_sync:
            await engine.sync_broker_trades(connection.connection_id, "alice")
        for exc in (rejected.value, failed_sync.value):
            seen += [str(exc), repr(exc), repr(classify_error(exc))]
        credentials = {"username": fakebroker.USERNAME, "password": NEW_PASSWORD}
        seen.append(repr(await engine.reconnect_broker(connection.connection_id, "alice", credentials)))
        seen.append(repr(await engine.sync_broker_trades(connection.connection_id, "alice")))

        rotated = make_engine(
            encryption_keys=f"{Vault.generate_key('k2')},{engine.vault.active_key_id}:{keys.split(':', 1)[1]}"
        )
        assert await rotated.rotate_keys() == 1
        seen.append(repr(await rotated.sync_broker_trades(connection.connection_id, "alice", trigger="scheduled")))
        seen.append(repr(await rotated.list_runs()))
        seen.append(repr(await rotated.list_connections()))
        seen.append(repr(await rotated.status()))
        seen.append(await dump_tables(rotated))
    finally:
        logger.remove(sink)
        logger.disable("brokersync")

    secrets = [fakebroker.PASSWORD, NEW_PASSWORD, *api.issued]
    assert len(api.issued) == 6  # token pairs from connect, refresh and reconnect
    haystacks = {"logs": "\n".join(records), "results, exceptions, audit rows, tables": "\n".join(seen)}
    if db_url.startswith("sqlite"):
        database = Path(db_url.split("///", 1)[1])
        raw = b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))
        haystacks["database files"] = raw.decode("latin-1")
    assert records, "the engine logged nothing: the log check would prove nothing"
    for where, haystack in haystacks.items():
        for secret in secrets:
            assert secret not in haystack, f"a secret leaked into the {where}"
