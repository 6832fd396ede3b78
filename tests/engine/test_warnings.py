"""Data-quality warnings: a plugin reports them with ctx.warn, the run keeps them bounded and redacted
in SyncResult.warnings and its audit row, and ``brokersync runs`` shows them."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import brokersync
import fakebroker
import pytest
from brokersync import (
    Account,
    AuthResult,
    AuthType,
    BrokerApiError,
    BrokerMetadata,
    BrokerSync,
    CredentialField,
    RunStatus,
    TradePage,
    hookimpl,
)
from brokersync.results import MAX_WARNINGS, SyncWarning
from engine_support import Clock
from sqlalchemy import text

pytestmark = pytest.mark.anyio


class WarningPlugin(fakebroker.FakeBrokerPlugin):
    """The fake broker, noticing things: one warning while listing accounts, ``per_account`` per account."""

    def __init__(self, *, per_account: int, fail_on: str | None = None) -> None:
        self.per_account = per_account
        self.fail_on = fail_on

    @hookimpl
    async def get_accounts(self, ctx: Any, auth: AuthResult) -> list[Account]:
        accounts = await super().get_accounts(ctx, auth)
        if self.per_account:
            ctx.warn(f"the broker listed {len(accounts)} accounts but its summary says 3")
        return accounts

    @hookimpl
    async def get_trades(
        self, ctx: Any, auth: AuthResult, account: Account, since: dt.datetime | None, cursor: str | None
    ) -> AsyncIterator[TradePage]:
        async for page in super().get_trades(ctx, auth, account, since, cursor):
            yield page
        for n in range(self.per_account):
            # The first one quotes what the broker echoed back: the user's password.
            echoed = f" (the broker echoed {fakebroker.PASSWORD})" if n == 0 else ""
            ctx.warn(f"trade {n} has a commission in another currency{echoed}", record_id=f"T-{n}", code="fake.fx_fee")
        if account.id == self.fail_on:
            raise BrokerApiError("the broker answered nonsense")


@pytest.fixture
def plugin() -> WarningPlugin:
    # Replaces the fake broker registered by the autouse fixture (which unregisters it afterwards).
    plugin = WarningPlugin(per_account=70)
    brokersync.register_broker(fakebroker.KEY, plugin, replace=True)
    return plugin


async def audit_column(engine: BrokerSync, run_id: str) -> str | None:
    async with engine.store.engine.connect() as conn:
        row = (await conn.execute(text("SELECT warnings FROM sync_runs WHERE id = :id"), {"id": run_id})).one()
    return row.warnings


async def test_warnings_reach_the_result_and_the_audit_row_bounded_and_redacted(
    engine: BrokerSync, plugin: WarningPlugin
) -> None:
    connection = await engine.connect_broker("alice", fakebroker.KEY, fakebroker.CREDENTIALS)

    result = await engine.sync_broker_trades(connection.connection_id, "alice")

    # Warnings change no status: every trade is stored.
    assert (result.status, result.imported) == (RunStatus.SUCCEEDED, 35)
    assert result.warning_count == 1 + 2 * 70
    assert len(result.warnings) == MAX_WARNINGS
    first, second = result.warnings[:2]
    assert first == SyncWarning(message="the broker listed 2 accounts but its summary says 3")
    # Without an account from the plugin, a warning in get_trades concerns the account being synced.
    assert (second.account_id, second.record_id, second.code) == ("ACC-1", "T-0", "fake.fx_fee")
    assert fakebroker.PASSWORD not in second.message and "***" in second.message
    assert [w.account_id for w in result.warnings[1:]] == ["ACC-1"] * 70 + ["ACC-2"] * 29

    [run] = await engine.list_runs(connection_id=connection.connection_id)
    assert run.warnings == result.warnings and run.warning_count == 141
    column = await audit_column(engine, run.id)
    assert column is not None and fakebroker.PASSWORD not in column
    stored = json.loads(column)
    assert len(stored) == MAX_WARNINGS + 1
    assert stored[-1] == {"message": "and 41 more warnings", "code": "brokersync.more_warnings", "more": 41}


async def test_a_run_without_warnings_records_none(engine: BrokerSync, plugin: WarningPlugin) -> None:
    plugin.per_account = 0
    connection = await engine.connect_broker("alice", fakebroker.KEY, fakebroker.CREDENTIALS)

    result = await engine.sync_broker_trades(connection.connection_id, "alice")

    assert (result.warnings, result.warning_count) == ((), 0)
    [run] = await engine.list_runs(connection_id=connection.connection_id)
    assert (run.warnings, run.warning_count) == ((), 0)
    assert await audit_column(engine, run.id) is None


async def test_a_failed_run_keeps_the_warnings_it_had(engine: BrokerSync, plugin: WarningPlugin) -> None:
    plugin.per_account, plugin.fail_on = 2, "ACC-2"
    connection = await engine.connect_broker("alice", fakebroker.KEY, fakebroker.CREDENTIALS)

    with pytest.raises(BrokerApiError):
        await engine.sync_broker_trades(connection.connection_id, "alice")

    [run] = await engine.list_runs(connection_id=connection.connection_id)
    assert run.status is RunStatus.FAILED
    assert [(w.account_id, w.record_id) for w in run.warnings] == [
        (None, None),
        ("ACC-1", "T-0"),
        ("ACC-1", "T-1"),
        ("ACC-2", "T-0"),
        ("ACC-2", "T-1"),
    ]


def test_misuse_of_warn_raises_the_builtin_error() -> None:
    ctx = brokersync.get_broker(fakebroker.KEY).context
    with pytest.raises(TypeError, match="message must be a string"):
        ctx.warn(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="message is empty"):
        ctx.warn("  \n ")
    ctx.warn("outside a sync a warning is only logged")  # no run to deliver it to: no error


def test_brokersync_runs_shows_the_warning_count_and_lists_them_as_json(
    db_url: str, keys: str, api: fakebroker.FakeBrokerApi, clock: Clock, plugin: WarningPlugin
) -> None:
    from brokersync._cli import cli
    from click.testing import CliRunner

    plugin.per_account = 1

    async def prepare() -> str:
        async with BrokerSync(
            db_url, encryption_keys=keys, transports={fakebroker.KEY: api.transport()}, clock=clock
        ) as engine:
            await engine.upgrade_database()
            connection = await engine.connect_broker("alice", fakebroker.KEY, fakebroker.CREDENTIALS)
            result = await engine.sync_broker_trades(connection.connection_id, "alice")
            assert result.run_id is not None
            return result.run_id

    run_id = asyncio.run(prepare())
    args = ["--database-url", db_url, "--user", "alice"]
    env = {"BROKERSYNC_ENCRYPTION_KEYS": keys, "COLUMNS": "250"}
    table = CliRunner().invoke(cli, ["runs", *args], env=env)
    assert table.exit_code == 0, table.output
    header, row = (line for line in table.output.splitlines() if "warnings" in line or run_id[:8] in line)
    cells = [c.strip() for c in row.split("│")]
    assert cells[[c.strip() for c in header.split("┃")].index("warnings")] == "3"
    listed = CliRunner().invoke(cli, ["runs", *args, "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    [run] = json.loads(listed.output)
    assert run["warning_count"] == 3
    assert run["warnings"][1] == {
        "message": "trade 0 has a commission in another currency (the broker echoed ***)",
        "account_id": "ACC-1",
        "record_id": "T-0",
        "code": "fake.fx_fee",
    }
    assert fakebroker.PASSWORD not in table.output + listed.output


QUIET = "quietbroker"


class QuietPlugin:
    """A broker without an API to call (its data is built in): one account, one trade, ``count`` warnings."""

    count = 0

    @hookimpl
    def broker_metadata(self) -> BrokerMetadata:
        return BrokerMetadata(
            key=QUIET,
            name="Quiet Broker",
            auth_type=AuthType.API_KEY,
            credential_fields=(CredentialField(name="login"),),
            environments={"live": "https://quiet.test"},
        )

    @hookimpl
    def authenticate(self, ctx: Any, credentials: Any) -> AuthResult:
        return AuthResult(access_token="none")

    @hookimpl
    def get_accounts(self, ctx: Any, auth: AuthResult) -> list[Account]:
        return [Account(id="Q-1", currency="USD")]

    @hookimpl
    async def get_trades(self, ctx: Any, account: Account) -> AsyncIterator[TradePage]:
        at = "2025-03-01T15:00:00+00:00"
        yield TradePage(
            records=[
                {
                    "broker_trade_id": "q1",
                    "symbol": "ES",
                    "direction": "long",
                    "opened_at": at,
                    "closed_at": at,
                    "entry_price": "1",
                    "exit_price": "2",
                    "quantity": "1",
                    "realized_pnl": "1",
                    "fees": "0",
                    "currency": "USD",
                }
            ]
        )
        for n in range(self.count):
            ctx.warn(f"fill {n} has no exchange", record_id=f"F-{n}", code="quiet.no_exchange")


@pytest.fixture
def quiet() -> Iterator[type[QuietPlugin]]:
    brokersync.register_broker(QUIET, QuietPlugin(), replace=True)
    yield QuietPlugin
    brokersync.unregister_broker(QUIET)
    QuietPlugin.count = 0


def test_brokersync_sync_lists_the_first_warnings_and_says_how_many_more(
    db_url: str, keys: str, tmp_path: Path, quiet: type[QuietPlugin]
) -> None:
    from brokersync._cli import cli
    from click.testing import CliRunner

    quiet.count = MAX_WARNINGS + 20
    env = {"BROKERSYNC_ENCRYPTION_KEYS": keys, "BROKERSYNC_DATA_DIR": str(tmp_path), "COLUMNS": "250"}
    base = ["--database-url", db_url, "--user", "alice"]
    upgraded = CliRunner().invoke(cli, ["db", "upgrade", "--database-url", db_url], env=env)
    assert upgraded.exit_code == 0, upgraded.output
    connected = CliRunner().invoke(cli, ["connect", QUIET, "--set", "login=me", *base, "--json"], env=env)
    assert connected.exit_code == 0, connected.output
    connection_id = json.loads(connected.stdout)["connection_id"]

    synced = CliRunner().invoke(cli, ["sync", connection_id, *base], env=env)

    assert synced.exit_code == 0, synced.output  # warnings are no failure
    listed = CliRunner().invoke(cli, ["runs", *base, "--json"], env=env)
    [run] = json.loads(listed.stdout)
    lines = synced.stderr.splitlines()
    start = lines.index(f"{connection_id}: 120 warnings:")
    assert lines[start + 1 : start + 12] == [
        *(f"  warning: [quiet.no_exchange] account Q-1, record F-{n}: fill {n} has no exchange" for n in range(10)),
        f"  and 110 more (`brokersync runs --json` lists those the run {run['id']} kept)",
    ]
    as_json = CliRunner().invoke(cli, ["sync", connection_id, *base, "--json"], env=env)
    assert as_json.exit_code == 0, as_json.output
    [result] = json.loads(as_json.stdout)
    assert (result["warning_count"], len(result["warnings"])) == (120, MAX_WARNINGS)
    assert result["warnings"][99] == {
        "message": "fill 99 has no exchange",
        "account_id": "Q-1",
        "record_id": "F-99",
        "code": "quiet.no_exchange",
    }
