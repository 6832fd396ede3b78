"""brokersync is silent as a library, and an application's own loguru decision is respected."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    import brokersync
    from brokersync import hookimpl
    from loguru import logger

    logger.remove()
    logger.add(sys.stdout, format="{{message}} {{extra}}")
    {enable}

    class Plugin:
        @hookimpl
        def broker_metadata(self):
            return brokersync.BrokerMetadata(
                key="quiet", name="Quiet", auth_type="token",
                credential_fields=[brokersync.CredentialField(name="token", secret=True)],
                environments={{"live": "https://quiet.invalid"}},
            )

        @hookimpl
        def authenticate(self, credentials):
            return brokersync.AuthResult(access_token=credentials["token"])

        @hookimpl
        def get_accounts(self):
            return []

        @hookimpl
        def get_trades(self):
            return []

    registry = brokersync.BrokerRegistry(entry_points=False)
    registry.register("quiet", Plugin)

    async def main():
        async with registry.get("quiet") as broker:  # first use: brokersync._log loads lazily here
            await broker.authenticate({{"token": "secret-value-123456"}})

    asyncio.run(main())
    """
)


def _run(enable: str) -> str:
    env = {**os.environ, "BROKERSYNC_TRACE_PLUGINS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(enable=enable)], capture_output=True, text=True, check=True, env=env
    )
    return result.stdout + result.stderr


def test_library_logs_are_off_by_default():
    assert "hook authenticate" not in _run("")


def test_an_application_enabling_brokersync_before_first_use_is_respected():
    out = _run('logger.enable("brokersync")')
    assert "hook authenticate -> ok" in out
    assert "secret-value-123456" not in out
