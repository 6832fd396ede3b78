"""docs/cli.md is exactly what docs/_generate_cli_reference.py produces from the installed CLI."""

from __future__ import annotations

import difflib
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.docs._markdown import anchors

ROOT = Path(__file__).resolve().parents[2]
CLI_MD = ROOT / "docs" / "cli.md"
GENERATOR = ROOT / "docs" / "_generate_cli_reference.py"


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    # Executed from source, not imported: no __pycache__ appears in docs/.
    module = ModuleType("_generate_cli_reference")
    module.__file__ = str(GENERATOR)
    exec(compile(GENERATOR.read_text(encoding="utf-8"), str(GENERATOR), "exec"), module.__dict__)
    return module


@pytest.fixture(scope="module")
def generated(generator: ModuleType) -> str:
    text: str = generator.render()
    return text


def test_cli_reference_is_current(generated: str) -> None:
    current = CLI_MD.read_text(encoding="utf-8")
    if current != generated:
        diff = "".join(
            difflib.unified_diff(
                current.splitlines(keepends=True), generated.splitlines(keepends=True), "docs/cli.md", "generated"
            )
        )
        pytest.fail(f"docs/cli.md is stale: run `python docs/_generate_cli_reference.py`\n{diff}")


def test_every_command_has_a_section(generated: str) -> None:
    from brokersync._cli import COMMANDS

    sections = set(re.findall(r"^## `(brokersync[^`]*)`$", generated, flags=re.MULTILINE))
    assert "brokersync" in sections
    for name in COMMANDS:
        assert f"brokersync {name}" in sections, name
    # Groups are walked: their subcommands get their own sections.
    assert {"brokersync keys rotate", "brokersync keys generate", "brokersync db upgrade"} <= sections


def test_sections_show_the_commands_own_help(generated: str) -> None:
    section = generated.split("## `brokersync keys rotate`", 1)[1].split("\n## ", 1)[0]
    assert "Usage: brokersync keys rotate [OPTIONS]" in section
    assert "Re-encrypt every stored credential and token under the active key." in section
    assert "--new-key / --no-new-key" in section


def test_table_of_contents_links_resolve(generated: str, tmp_path: Path) -> None:
    copy = tmp_path / "cli.md"
    copy.write_text(generated, encoding="utf-8")
    targets = re.findall(r"\]\(#([^)]+)\)", generated)
    assert targets
    assert set(targets) <= anchors(copy)


def test_help_does_not_depend_on_the_readers_environment(
    generator: ModuleType, generated: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BROKERSYNC_USER", "someone-else")
    monkeypatch.setenv("BROKERSYNC_DATABASE_URL", "postgresql://example.invalid/db")
    monkeypatch.setenv("COLUMNS", "40")
    assert generator.render() == generated


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "cli.md"
    stale.write_text(CLI_MD.read_text(encoding="utf-8").replace("Show the sync audit trail", "Old text"), "utf-8")
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--check", "--output", str(stale)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "Old text" in result.stdout  # the diff shows what changed
    assert "is stale" in result.stderr
    rewrite = subprocess.run(
        [sys.executable, str(GENERATOR), "--output", str(stale)], capture_output=True, text=True, check=False
    )
    assert rewrite.returncode == 0, rewrite.stderr
    assert stale.read_text(encoding="utf-8") == CLI_MD.read_text(encoding="utf-8")
