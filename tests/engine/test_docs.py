"""The code in docs/engine.md runs, and says what it claims."""

from __future__ import annotations

import re
from pathlib import Path

import fakebroker
import pytest
from brokersync import BrokerSync

pytestmark = pytest.mark.anyio

DOC = Path(__file__).parents[2] / "docs" / "engine.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)


async def test_the_engine_guide_example_runs(engine: BrokerSync) -> None:
    [block] = python_blocks()
    namespace: dict[str, object] = {}
    exec(compile(block, str(DOC), "exec"), namespace)

    lines = await namespace["first_sync"](engine, "alice", fakebroker.KEY, fakebroker.CREDENTIALS)  # type: ignore[operator]

    assert lines == [
        "accounts: ACC-1, ACC-2",
        "ACC-1: 25 new, 0 unchanged, 0 updated",
        "ACC-2: 35 new, 0 unchanged, 0 updated",
        "succeeded: 35 imported, 0 invalid records",
        "scheduled True: succeeded",
    ]


def test_every_public_engine_method_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    public = [name for name in dir(BrokerSync) if not name.startswith("_") and callable(getattr(BrokerSync, name))]
    missing = [name for name in public if f"`{name}(" not in text]
    assert not missing, f"docs/engine.md does not document {missing}"
