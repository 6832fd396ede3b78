"""The Python example in docs/scale-out.md runs as shown, in a fresh interpreter, against a real Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs._markdown import PYTHON_LANGUAGES, code_blocks

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "scale-out.md"
BLOCKS = [b for b in code_blocks(GUIDE) if b.language in PYTHON_LANGUAGES]


def test_the_guide_has_an_example() -> None:
    assert len(BLOCKS) == 1 and BLOCKS[0].not_run is None


@pytest.mark.parametrize("block", BLOCKS, ids=[b.where for b in BLOCKS])
def test_example_runs(block: object, tmp_path: Path, redis_url: str) -> None:
    script = tmp_path / "example.py"
    script.write_text(block.code, encoding="utf-8")  # type: ignore[attr-defined]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKERSYNC_")}
    env.update(BROKERSYNC_DATA_DIR=str(tmp_path / "data"), BROKERSYNC_QUEUE_URL=redis_url)
    env.pop("PYTHONPATH", None)  # installed packages only, as a reader has
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    assert result.stdout.count("complete synced 100 imported") == 2
