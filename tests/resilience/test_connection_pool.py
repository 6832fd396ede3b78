"""Scheduled syncs reuse kept-alive connections to the broker instead of opening new ones per sync.

The broker is the sim plugin's API served on a real loopback port (``SimServer``), which counts the
TCP connections its clients open.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import brokersync
import pytest
from brokersync import BrokerSync, Resilience, Vault
from brokersync_sim import SimAPI, SimServer

PASSWORD = SimAPI().password


def _engine(tmp_path: Path, base_url: str, **options: object) -> BrokerSync:
    return BrokerSync(
        f"sqlite+aiosqlite:///{tmp_path / 'pool.db'}",
        encryption_keys=Vault.generate_key("k1"),
        base_urls={"sim": base_url},
        **options,  # type: ignore[arg-type]
    )


async def _connect(engine: BrokerSync, count: int) -> None:
    for n in range(count):
        await engine.connect_broker(f"user-{n}", "sim", {"username": f"trader-{n}", "password": PASSWORD})


@pytest.mark.anyio
async def test_many_scheduled_syncs_share_a_few_connections_to_the_broker(tmp_path: Path) -> None:
    api = SimAPI(seed=3, accounts=2, trades_per_account=30, correction_rate=0)
    with SimServer(api) as server:
        async with _engine(tmp_path, server.base_url, concurrency=4) as engine:
            await _connect(engine, 12)
            results = await engine.run_scheduled_sync()
            assert [r.ok for r in results] == [True] * 12
            assert sum(r.imported for r in results) == 12 * 60
            requests = api.stats.requests
        # 12 logins and account lists, then 12 syncs of 2 accounts: dozens of requests, and never
        # more than 4 at once, so never more than 4 connections.
        assert requests >= 12 * 4
        assert 1 <= server.connections_opened <= 4


@pytest.mark.anyio
async def test_a_caller_transport_still_carries_every_request(tmp_path: Path) -> None:
    api = SimAPI(seed=3, accounts=1, trades_per_account=5, correction_rate=0)
    with SimServer(SimAPI()) as server:  # the URL is a real server, but the transport wins
        async with _engine(tmp_path, server.base_url, transports={"sim": api.transport()}) as engine:
            await _connect(engine, 1)
            (result,) = await engine.run_scheduled_sync()
        assert result.imported == 5
        assert server.connections_opened == 0


def test_one_resilience_serves_event_loops_one_after_another() -> None:
    # A pooled connection belongs to the loop that opened it: a second asyncio.run must not be
    # handed the first loop's connections (each loop closes its own pool when it is done).
    api = SimAPI(seed=4, accounts=1, trades_per_account=3)
    resilience = Resilience()

    async def login(server: SimServer) -> str:
        async with brokersync.get_broker("sim", base_url=server.base_url, http=resilience.client_for) as broker:
            auth = await broker.authenticate({"username": "loops", "password": PASSWORD})
            (account,) = await broker.get_accounts(auth)
        await resilience.aclose()
        return account.id

    with SimServer(api) as server:
        first = asyncio.run(login(server))
        second = asyncio.run(login(server))
    assert first == second
    assert server.connections_opened == 2


@pytest.mark.anyio
async def test_proxy_settings_from_the_environment_are_honoured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = SimAPI(seed=3, accounts=1, trades_per_account=5)
    with SimServer(api) as server:
        # A proxy nobody listens on: requests that go through it fail as network errors.
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
        monkeypatch.delenv("http_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        async with _engine(tmp_path, server.base_url) as engine:
            with pytest.raises(brokersync.BrokerNetworkError):
                await _connect(engine, 1)
        assert api.stats.requests == 0

        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        async with _engine(tmp_path, server.base_url) as engine:
            await _connect(engine, 1)
        assert api.stats.logins == 1
