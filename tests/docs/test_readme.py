"""The README keeps its promise: set-up in exactly two commands, the main job and the whole test suite."""

from __future__ import annotations

from pathlib import Path

from tests.docs._markdown import code_blocks

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def test_setup_is_two_commands_main_job_and_tests() -> None:
    shell = [b for b in code_blocks(README) if b.language in ("bash", "sh", "console")]
    assert shell, "README.md shows no set-up commands"
    commands = [line.split("#", 1)[0].strip() for line in shell[0].code.splitlines() if line.strip()]
    assert len(commands) == 2, commands
    demo, tests = commands
    assert demo.endswith("python -m nox -s demo"), demo  # the main job
    assert tests.endswith("python -m nox -s tests"), tests  # the whole test suite
    for command in commands:  # works on a fresh machine with only Python and pip
        assert command.startswith("python -m pip install nox uv && "), command


def test_noxfile_has_the_sessions_the_docs_name() -> None:
    noxfile = (ROOT / "noxfile.py").read_text(encoding="utf-8")
    for session in ("demo", "tests", "docs"):  # README: demo, tests; docs/cli.md: docs
        assert f"def {session}(session: nox.Session)" in noxfile, session
