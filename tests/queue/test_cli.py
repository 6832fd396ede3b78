"""``brokersync enqueue`` and ``brokersync worker`` as users run them: processes, Redis, SQLite, sim on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from brokersync import BrokerSync, SyncQueue, Vault
from brokersync._cli import cli
from brokersync_sim import SimAPI
from brokersync_sim.server import SimServer
from click.testing import CliRunner, Result

# saq calls redis-py commands that redis 8 marks deprecated (setex); harmless, but pytest makes warnings errors.
pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore:Call to deprecated:DeprecationWarning")]

SIM_PASSWORD = "sim-password"
SIM_TRADES = 2 * 40  # two accounts of 40 trades per sim user


def brokersync_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = "import sys; from brokersync._cli import main; main(sys.argv[1:])"
    return subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def sim() -> Iterator[SimServer]:
    with SimServer(SimAPI(seed=5, accounts=2, trades_per_account=40)) as server:
        yield server


@pytest.fixture
def setting(tmp_path: Path, redis_url: str) -> dict[str, str]:
    """What an operator exports: the database, the keys, the queue (a name of its own per test)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKERSYNC_")}
    env.update(
        BROKERSYNC_DATA_DIR=str(tmp_path / "data"),
        BROKERSYNC_DATABASE_URL=f"sqlite:///{tmp_path / 'trades.db'}",
        BROKERSYNC_ENCRYPTION_KEYS=Vault.generate_key("k1"),
        BROKERSYNC_QUEUE_URL=redis_url,
        BROKERSYNC_PLUGINS="sim",
    )
    return env


@pytest.fixture
async def sim_engine(setting: dict[str, str], sim: SimServer) -> AsyncIterator[BrokerSync]:
    engine = BrokerSync(
        setting["BROKERSYNC_DATABASE_URL"],
        encryption_keys=setting["BROKERSYNC_ENCRYPTION_KEYS"],
        base_urls={"sim": sim.base_url},
    )
    yield engine
    await engine.aclose()


async def test_enqueue_then_worker_syncs_every_connection(
    setting: dict[str, str], sim: SimServer, sim_engine: BrokerSync
) -> None:
    ids = []
    for user in ("ann", "bob", "cid"):
        connected = await sim_engine.connect_broker(user, "sim", {"username": user, "password": SIM_PASSWORD})
        ids.append(connected.connection_id)
    name = ["--queue-name", f"cli-{uuid.uuid4().hex[:8]}"]

    first = brokersync_cli("enqueue", "--all", *name, env=setting)
    assert first.returncode == 0, first.stderr
    assert "3 queued, 0 already queued" in first.stdout
    again = brokersync_cli("enqueue", ids[0], "--json", *name, env=setting)
    assert again.returncode == 0 and json.loads(again.stdout) == {ids[0]: False}

    worker = brokersync_cli(
        "worker", "--burst", "--concurrency", "2", "--base-url", f"sim={sim.base_url}", *name, env=setting
    )

    assert worker.returncode == 0, worker.stderr
    assert "worker stopped: 3 complete, 0 failed" in worker.stdout
    for connection_id in ids:
        assert await sim_engine.count_trades(connection_id=connection_id) == SIM_TRADES
    assert SIM_PASSWORD not in worker.stdout + worker.stderr
    async with SyncQueue(setting["BROKERSYNC_QUEUE_URL"], name=name[1]) as queue:
        assert await queue.counts() == {"queued": 0, "active": 0, "scheduled": 0}


def run_in_process(*args: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Result:
    """The CLI in this process (fast) with exactly the operator's environment."""
    for name in [k for k in os.environ if k.startswith("BROKERSYNC_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        if name.startswith("BROKERSYNC_"):
            monkeypatch.setenv(name, value)
    return CliRunner().invoke(cli, list(args))


def test_enqueue_refuses_unknown_connections_and_bad_usage(
    setting: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    unknown = run_in_process("enqueue", "no-such-connection", env=setting, monkeypatch=monkeypatch)
    assert unknown.exit_code == 2 and "no connection no-such-connection" in unknown.stderr
    neither = run_in_process("enqueue", env=setting, monkeypatch=monkeypatch)
    assert neither.exit_code == 2 and "CONNECTION_ID" in neither.stderr


@pytest.mark.parametrize("command", ["worker", "enqueue"])
def test_missing_queue_url_is_a_configuration_error(
    setting: dict[str, str], command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    del setting["BROKERSYNC_QUEUE_URL"]
    args = [command, *(["--all"] if command == "enqueue" else [])]
    result = run_in_process(*args, env=setting, monkeypatch=monkeypatch)
    assert result.exit_code == 2
    assert "BROKERSYNC_QUEUE_URL" in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize("command", ["worker", "enqueue"])
def test_without_saq_the_commands_say_what_to_install(
    setting: dict[str, str], command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "saq", None)  # a Python without saq: `import saq` fails as when missing
    args = [command, *(["--all"] if command == "enqueue" else [])]
    result = run_in_process(*args, env=setting, monkeypatch=monkeypatch)
    assert result.exit_code == 2
    assert "pip install 'brokersync[queue]'" in result.stderr


async def test_enqueue_takes_an_id_prefix_and_the_worker_reports_json(
    setting: dict[str, str], sim: SimServer, sim_engine: BrokerSync
) -> None:
    connected = await sim_engine.connect_broker("ann", "sim", {"username": "ann", "password": SIM_PASSWORD})
    name = ["--queue-name", f"cli-{uuid.uuid4().hex[:8]}"]
    queued = brokersync_cli("enqueue", connected.connection_id[:8], "--json", *name, env=setting)
    assert queued.returncode == 0, queued.stderr
    assert json.loads(queued.stdout) == {connected.connection_id: True}
    worker = brokersync_cli("worker", "--burst", "--json", "--base-url", f"sim={sim.base_url}", *name, env=setting)
    assert worker.returncode == 0, worker.stderr
    assert json.loads(worker.stdout) == {"complete": 1, "failed": 0, "retried": 0, "aborted": 0}
    assert await sim_engine.count_trades(connection_id=connected.connection_id) == SIM_TRADES
