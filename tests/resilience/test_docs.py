"""The code in docs/resilience.md runs, in order, as one async function (docs show tested code)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import brokersync
import pytest
from brokersync import BrokerMetadata, CredentialField, Resilience, hookimpl
from brokersync.resilience import set_default_resilience

pytestmark = pytest.mark.anyio

DOC = Path(__file__).resolve().parents[2] / "docs" / "resilience.md"


class DocsDemo:
    @hookimpl
    def broker_metadata(self):
        return BrokerMetadata(
            key="docs_demo",
            name="Docs demo",
            auth_type="token",
            credential_fields=[CredentialField(name="token", secret=True)],
            environments={"live": "https://docs-demo.invalid/v1"},
        )

    @hookimpl
    async def authenticate(self, ctx, credentials):
        return brokersync.AuthResult(access_token=credentials["token"])

    @hookimpl
    async def get_accounts(self, ctx, auth):
        return []

    @hookimpl
    async def get_trades(self, ctx, auth, account, since, cursor):
        return []


@pytest.fixture
def docs_demo():
    brokersync.register_broker("docs_demo", DocsDemo(), replace=True)
    set_default_resilience(Resilience())
    yield
    set_default_resilience(None)
    brokersync.unregister_broker("docs_demo")


async def test_the_resilience_guide_runs(docs_demo):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 4
    source = "async def _guide():\n" + textwrap.indent("\n".join(blocks), "    ") + "\n    return locals()\n"
    namespace: dict = {}
    exec(compile(source, str(DOC), "exec"), namespace)
    seen = await namespace["_guide"]()
    assert seen["run_metrics"].requests == 2
    assert seen["breaker"].state.value == "open"
