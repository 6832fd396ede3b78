"""docs/configuration.md documents every environment variable the core reads, and only real ones.

The variables are found in the source, not listed by hand: every string constant that is a
``BROKERSYNC_*`` name (``"BROKERSYNC_PLUGINS"``, or a prefix such as ``"BROKERSYNC_CREDENTIAL_"``)
and every literal name passed to ``os.environ.get`` / ``os.environ[...]`` / ``os.getenv`` or to a
click option's ``envvar=``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "core" / "src"
CONFIGURATION = ROOT / "docs" / "configuration.md"
_NAME = re.compile(r"^BROKERSYNC_[A-Z0-9_]*$")
_DOCUMENTED = re.compile(r"`(BROKERSYNC_[A-Z0-9_]*)(?:<[A-Z_]+>)?`")


def _literal(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _is_environ(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id == "environ"
    )


def env_names_in(source: str) -> set[str]:
    """Environment variable names (``PREFIX_`` for prefixes) a Python module reads."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        value = _literal(node)
        if value is not None and _NAME.match(value) and value != "BROKERSYNC_":
            names.add(value)
        if isinstance(node, ast.Call):
            func = node.func
            reads_env = (
                isinstance(func, ast.Attribute)
                and func.attr in ("get", "pop", "setdefault")
                and _is_environ(func.value)
            ) or (isinstance(func, ast.Attribute) and func.attr == "getenv")
            if reads_env and node.args and (name := _literal(node.args[0])):
                names.add(name)
            for keyword in node.keywords:
                if keyword.arg == "envvar" and (name := _literal(keyword.value)):
                    names.add(name)
        if isinstance(node, ast.Subscript) and _is_environ(node.value) and (name := _literal(node.slice)):
            names.add(name)
    return names


def variables_read_by(root: Path) -> set[str]:
    return set().union(*(env_names_in(p.read_text(encoding="utf-8")) for p in sorted(root.rglob("*.py"))))


def documented_variables() -> set[str]:
    """Variables named in a table row (``| `NAME` | ...``) of docs/configuration.md."""
    rows = [line for line in CONFIGURATION.read_text(encoding="utf-8").splitlines() if line.startswith("| `")]
    return {match for row in rows for match in _DOCUMENTED.findall(row.split("|")[1])}


def test_the_scan_finds_what_the_core_reads() -> None:
    found = variables_read_by(CORE)
    # The ones every user meets; if the scan lost them, the coverage test below would be vacuous.
    assert {"BROKERSYNC_DATA_DIR", "BROKERSYNC_DATABASE_URL", "BROKERSYNC_ENCRYPTION_KEYS"} <= found
    assert "BROKERSYNC_CREDENTIAL_" in found  # a prefix: BROKERSYNC_CREDENTIAL_<FIELD>


def test_scan_recognises_each_way_of_reading_the_environment() -> None:
    source = (
        "import os, click\n"
        "A = os.environ.get('PLAIN_GET')\n"
        "B = os.environ['SUBSCRIPT']\n"
        "C = os.getenv('GETENV')\n"
        "opt = click.option('--x', envvar='CLICK_ENVVAR')\n"
        "PREFIX = 'BROKERSYNC_THING_'\n"
        "message = 'mentions BROKERSYNC_NOT_A_READ in prose'\n"
    )
    assert env_names_in(source) == {"PLAIN_GET", "SUBSCRIPT", "GETENV", "CLICK_ENVVAR", "BROKERSYNC_THING_"}


@pytest.mark.parametrize("name", sorted(variables_read_by(CORE)))
def test_variable_is_documented(name: str) -> None:
    assert name in documented_variables(), f"{name} is read in core/src but has no row in docs/configuration.md" + (
        f" (document it as `{name}<FIELD>`)" if name.endswith("_") else ""
    )


def test_documented_variables_exist() -> None:
    # The reverse: a row for a variable nothing reads any more is a lie to operators.
    docs_tests = ROOT / "tests" / "docs"  # our own literals are not reads
    test_files = [p for p in (ROOT / "tests").rglob("*.py") if not p.is_relative_to(docs_tests)]
    read = variables_read_by(CORE) | variables_read_by(ROOT / "plugins")
    read |= set().union(*(env_names_in(p.read_text(encoding="utf-8")) for p in test_files))
    stale = sorted(documented_variables() - read)
    assert stale == [], f"docs/configuration.md documents variables nothing reads: {stale}"


def _rows() -> dict[str, list[str]]:
    """Variable -> the cells of its row in docs/configuration.md."""
    rows: dict[str, list[str]] = {}
    for line in CONFIGURATION.read_text(encoding="utf-8").splitlines():
        if line.startswith("| `"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            for name in _DOCUMENTED.findall(cells[0]):
                rows[name] = cells
    return rows


def _cli_options_with_envvar() -> list[tuple[str, str, object]]:
    """(command, env var, default) of every CLI option that reads an environment variable."""
    import click
    from brokersync._cli import cli

    found: list[tuple[str, str, object]] = []

    def walk(command: click.Command, ctx: click.Context, path: str) -> None:
        for param in command.params:
            for envvar in [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or ()):
                found.append((path, envvar, param.default))
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                if sub is not None:
                    walk(sub, click.Context(sub, info_name=name, parent=ctx), f"{path} {name}")

    walk(cli, click.Context(cli, info_name="brokersync"), "brokersync")
    return found


def test_cli_defaults_match_the_documented_defaults() -> None:
    options = _cli_options_with_envvar()
    assert any(envvar == "BROKERSYNC_USER" for _, envvar, _ in options)  # the walk reaches subcommands
    rows = _rows()
    for command, envvar, default in options:
        assert envvar in rows, f"{command}: option reads {envvar}, which docs/configuration.md does not list"
        if isinstance(default, str | int | float):  # click marks "no default" with a sentinel
            assert f"`{default}`" in rows[envvar][2], f"{command}: {envvar} defaults to {default!r}"
