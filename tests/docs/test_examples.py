"""Every Python example in the integrator docs and the README is a program this test runs.

Each ```python block runs on its own, in a fresh interpreter, in an empty working directory, with a
temporary ``BROKERSYNC_DATA_DIR``, no other ``BROKERSYNC_*`` variable, and the network switched off
(``_offline.py``). So an example cannot lean on a previous one, on the repository, on the reader's
configuration or on the internet: a reader who copies it gets what the docs promise. A block that is
deliberately not run carries ``<!-- not-run: reason -->`` right before it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.docs._markdown import PYTHON_LANGUAGES, CodeBlock, code_blocks

ROOT = Path(__file__).resolve().parents[2]
OFFLINE = Path(__file__).with_name("_offline.py")
DOCUMENTS = [
    ROOT / "README.md",
    ROOT / "docs" / "index.md",
    ROOT / "docs" / "user-guide.md",
    ROOT / "docs" / "configuration.md",
]
TIMEOUT = 300  # seconds; the examples take a few seconds each, this only catches a hang


def _python_blocks(path: Path) -> list[CodeBlock]:
    return [b for b in code_blocks(path) if b.language in PYTHON_LANGUAGES]


BLOCKS = [block for path in DOCUMENTS if path.exists() for block in _python_blocks(path)]
RUN = [b for b in BLOCKS if b.not_run is None]


def _clean_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKERSYNC_")}
    env["BROKERSYNC_DATA_DIR"] = str(data_dir)
    env.pop("PYTHONPATH", None)  # examples use installed packages only, never the repository
    return env


def run_example(code: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    """Run ``code`` the way a reader would: a fresh interpreter, clean env, no network."""
    script = workdir / "example.py"
    script.write_text(code, encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(OFFLINE), str(script)],
        cwd=workdir,
        env=_clean_env(workdir / "data"),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


@pytest.mark.parametrize("block", RUN, ids=[b.where for b in RUN])
def test_example_runs(block: CodeBlock, tmp_path: Path) -> None:
    result = run_example(block.code, tmp_path)
    assert result.returncode == 0, (
        f"the example at {block.path.relative_to(ROOT)}:{block.line} failed (exit {result.returncode})\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )


@pytest.mark.parametrize("path", DOCUMENTS, ids=[p.name for p in DOCUMENTS])
def test_each_document_has_examples_that_run(path: Path) -> None:
    # Guards the test above against passing vacuously (a renamed fence language, a moved file).
    assert path.exists(), f"{path.relative_to(ROOT)} is missing"
    blocks = _python_blocks(path)
    assert blocks, f"{path.relative_to(ROOT)} shows no Python example"
    skipped = [b for b in blocks if b.not_run is not None]
    # not-run blocks are the exception: at most one in four, each with its reason.
    assert len(skipped) * 4 <= len(blocks), [f"{b.where}: {b.not_run}" for b in skipped]


def test_a_failing_example_fails(tmp_path: Path) -> None:
    result = run_example("import brokersync\nbrokersync.get_broker('no-such-broker')\n", tmp_path)
    assert result.returncode != 0
    assert "no-such-broker" in result.stderr


def test_examples_cannot_reach_the_network(tmp_path: Path) -> None:
    # A real listening socket on loopback: the kernel would complete the example's connection even
    # before accept(), so a connection waiting in the backlog afterwards means the guard failed.
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=5)\n"
        result = run_example(code, tmp_path)
        server.setblocking(False)
        with pytest.raises(BlockingIOError):
            server.accept()
    assert result.returncode != 0
    assert "must run offline" in result.stderr


def test_examples_see_only_their_own_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BROKERSYNC_DATABASE_URL", "postgresql://reader-config.invalid/db")
    code = textwrap.dedent(
        """
        import os
        from pathlib import Path
        assert "BROKERSYNC_DATABASE_URL" not in os.environ
        assert Path(os.environ["BROKERSYNC_DATA_DIR"]).parent == Path.cwd()
        """
    )
    result = run_example(code, tmp_path)
    assert result.returncode == 0, result.stderr


def test_not_run_marker_needs_a_reason(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- not-run: needs a live broker account -->\n\n```python\nx = 1\n```\n", encoding="utf-8")
    assert code_blocks(doc)[0].not_run == "needs a live broker account"
    doc.write_text("<!-- not-run: -->\n```python\nx = 1\n```\n", encoding="utf-8")
    with pytest.raises(ValueError, match="must say why"):
        code_blocks(doc)


def test_indented_blocks_and_unclosed_fences(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("1. Step:\n\n   ```python\n   if True:\n       x = 1\n   ```\n", encoding="utf-8")
    (block,) = code_blocks(doc)
    assert block.code == "if True:\n    x = 1\n"
    assert block.not_run is None
    doc.write_text("```python\nx = 1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="never closed"):
        code_blocks(doc)
