"""The Copier plugin template renders into a package that installs, passes its tests and is found.

Done-when of issue 6, end to end and outside the repository: render the template into an empty
directory, install the result next to the core in a fresh virtualenv, run the generated tests
(the conformance suite + entry point tests), lint and type-check the generated code, see
``brokersync plugins --json`` list it, then break one rule in the generated plugin and watch the
conformance suite fail naming that rule.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "plugin-template"
# One rendering per auth style (round trips), and one that reports executions, each its own broker
# key, so all four install side by side. Rendering name -> broker key, auth style, what it reports.
STYLES = {
    "password-token": "tplcheck_pw",
    "api-key": "tplcheck_key",
    "static-token": "tplcheck_token",
    "executions": "tplcheck_fills",
}
AUTH = {
    "password-token": "password-token",
    "api-key": "api-key",
    "static-token": "static-token",
    "executions": "static-token",
}
REPORTS = {
    "password-token": "round-trips",
    "api-key": "round-trips",
    "static-token": "round-trips",
    "executions": "executions",
}


def _run(args: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{' '.join(result.args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout


def _uv() -> list[str] | None:
    found = shutil.which("uv")
    if found:
        return [found]
    try:
        import uv  # the PyPI "uv" package ships its binary

        return [uv.find_uv_bin()]
    except ImportError:
        return None


def _make_venv(where: Path, packages: list[str]) -> Path:
    """A fresh virtualenv at ``where`` with ``packages`` (pip arguments) installed; returns its python."""
    python = where / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    uv = _uv()
    if uv is not None:
        _ok(_run([*uv, "venv", "-q", "-p", sys.executable, str(where)], cwd=where.parent))
        _ok(_run([*uv, "pip", "install", "-q", "-p", str(python), *packages], cwd=where.parent))
    else:
        _ok(_run([sys.executable, "-m", "venv", str(where)], cwd=where.parent))
        _ok(_run([str(python), "-m", "pip", "install", "-q", *packages], cwd=where.parent))
    return python


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Render every auth style into an empty directory outside the repository and install them all."""
    outside = tmp_path_factory.mktemp("plugin-author")
    assert not outside.resolve().is_relative_to(ROOT)
    rendered: dict[str, Path] = {}
    for style, key in STYLES.items():
        target = outside / f"brokersync-{key}"
        _ok(
            _run(
                [
                    sys.executable,
                    "-m",
                    "copier",
                    "copy",
                    "--quiet",
                    "--defaults",
                    "--data",
                    f"broker_key={key}",
                    "--data",
                    f"auth_style={AUTH[style]}",
                    "--data",
                    f"reports={REPORTS[style]}",
                    "--data",
                    "author_name=Template Test",
                    "--data",
                    f"api_base_url=https://api.{key.replace('_', '-')}-broker.com/v1",
                    "--data",
                    f"docs_url=https://developer.{key.replace('_', '-')}-broker.com/api",
                    str(TEMPLATE),
                    str(target),
                ],
                cwd=outside,
            )
        )
        rendered[style] = target
    editable = [arg for path in rendered.values() for arg in ("-e", str(path))]
    python = _make_venv(outside / "venv", ["-e", str(ROOT / "core"), *editable, "pytest", "ruff", "mypy"])
    return {"python": python, **rendered}


@pytest.mark.parametrize("style", list(STYLES))
def test_rendered_package_layout(workspace: dict[str, Path], style: str) -> None:
    target, key = workspace[style], STYLES[style]
    module = target / "src" / f"brokersync_{key}"
    for name in ("__init__.py", "plugin.py", "client.py", "fake.py", "py.typed"):
        assert (module / name).is_file(), name
    for name in ("pyproject.toml", "README.md", "noxfile.py", ".copier-answers.yml", "tests/test_conformance.py"):
        assert (target / name).is_file(), name
    pyproject = (target / "pyproject.toml").read_text(encoding="utf-8")
    assert f'name = "brokersync-{key.replace("_", "-")}"' in pyproject
    assert f'{key} = "brokersync_{key}.plugin"' in pyproject
    assert 'build-backend = "hatchling.build"' in pyproject
    answers = (target / ".copier-answers.yml").read_text(encoding="utf-8")
    assert f"auth_style: {AUTH[style]}" in answers  # what `copier update` needs
    assert f"reports: {REPORTS[style]}" in answers


@pytest.mark.parametrize("style", list(STYLES))
def test_rendered_tests_pass(workspace: dict[str, Path], style: str) -> None:
    out = _ok(_run([str(workspace["python"]), "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=workspace[style]))
    assert " passed" in out
    assert "failed" not in out
    assert "skipped" not in out


@pytest.mark.parametrize("style", list(STYLES))
def test_rendered_code_is_lint_and_type_clean(workspace: dict[str, Path], style: str) -> None:
    python, target = str(workspace["python"]), workspace[style]
    _ok(_run([python, "-m", "ruff", "check", "--no-cache", "."], cwd=target))
    _ok(_run([python, "-m", "ruff", "format", "--check", "--no-cache", "."], cwd=target))
    # One mypy cache for the three renderings: the core and httpx are analysed once.
    cache = workspace["python"].parents[2] / "mypy-cache"
    _ok(_run([python, "-m", "mypy", "--cache-dir", str(cache), "src", "tests"], cwd=target))


def test_cli_lists_every_rendered_plugin(workspace: dict[str, Path]) -> None:
    cli = workspace["python"].parent / ("brokersync.exe" if os.name == "nt" else "brokersync")
    listed = json.loads(_ok(_run([str(cli), "plugins", "--json"], cwd=workspace["python"].parent)))
    by_dist = {entry["distribution"]: entry for entry in listed}
    for key in STYLES.values():
        entry = by_dist[f"brokersync-{key.replace('_', '-')}"]
        assert entry["brokers"] == [key]
        assert entry["errors"] == []
        assert {"authenticate", "broker_metadata", "get_accounts", "get_trades"} <= set(entry["hooks"])


def test_breaking_a_rule_fails_the_suite_naming_it(workspace: dict[str, Path]) -> None:
    target = workspace["password-token"]
    client = target / "src" / f"brokersync_{STYLES['password-token']}" / "client.py"
    source = client.read_text(encoding="utf-8")
    honours_since = 'params["since"] = since.isoformat()'
    assert honours_since in source
    client.write_text(source.replace(honours_since, "pass  # broken on purpose: since is ignored"), encoding="utf-8")
    try:
        result = _run([str(workspace["python"]), "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=target)
    finally:
        client.write_text(source, encoding="utf-8")
    assert result.returncode == 1, result.stdout[-3000:]
    assert "breaks conformance rule 'since-honoured'" in result.stdout
    assert "returned a trade closed before since" in result.stdout
    assert "offending record: Trade(broker_trade_id=" in result.stdout
    assert "1 failed" in result.stdout  # exactly the one rule, the rest still pass


def test_the_placeholder_live_url_fails_conformance(workspace: dict[str, Path]) -> None:
    target = workspace["api-key"]
    plugin = target / "src" / f"brokersync_{STYLES['api-key']}" / "plugin.py"
    source = plugin.read_text(encoding="utf-8")
    real = f'LIVE_URL = "https://api.{STYLES["api-key"].replace("_", "-")}-broker.com/v1"'
    assert real in source
    plugin.write_text(source.replace(real, 'LIVE_URL = "https://api.acme.example/v1"'), encoding="utf-8")
    try:
        result = _run([str(workspace["python"]), "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=target)
    finally:
        plugin.write_text(source, encoding="utf-8")
    assert result.returncode == 1, result.stdout[-3000:]
    assert "breaks conformance rule 'metadata-complete'" in result.stdout
    assert "still has the placeholder URL https://api.acme.example/v1" in result.stdout
    assert "1 failed" in result.stdout


def test_the_rendered_plugins_return_mappings_and_leave_auth_and_paging_to_the_core(
    workspace: dict[str, Path],
) -> None:
    for style, key in STYLES.items():
        module = workspace[style] / "src" / f"brokersync_{key}"
        plugin = (module / "plugin.py").read_text(encoding="utf-8")
        client = (module / "client.py").read_text(encoding="utf-8")
        assert "Trade(" not in plugin and "Execution(" not in plugin  # mappings: one bad row is skipped
        assert "ctx.http.pages_by_cursor(" in client
        assert "except BrokerAuthError" not in client  # no renew-on-401 in the plugin
        if REPORTS[style] == "executions":
            assert "executions=[to_execution(row) for row in rows]" in plugin
            assert "Reports.EXECUTIONS" in plugin
        else:
            assert "records=[to_record(row) for row in rows]" in plugin
        if AUTH[style] != "api-key":
            assert "token_auth=TokenAuth.bearer()" in plugin


def test_a_malformed_row_is_reported_and_the_rest_of_the_page_synced(workspace: dict[str, Path]) -> None:
    # The template returns mappings: the core skips the bad record, the page and the sync go on.
    code = """
import asyncio, brokersync
from brokersync_tplcheck_pw import fake, plugin
rows = fake._history
def broken(account_id):
    history = rows(account_id)
    history[2]["entry_price"] = "12,5x"
    return history
fake._history = broken
async def main():
    broker = brokersync.get_broker("tplcheck_pw", transport=fake.FakeApi().transport())
    async with broker:
        auth = await broker.authenticate(fake.DEMO_CREDENTIALS)
        account = (await broker.get_accounts(auth))[0]
        trades, errors = [], []
        async for batch in broker.iter_trades(auth, account):
            trades += batch.trades
            errors += batch.errors
    print(len(trades), len(errors), errors[0].broker_trade_id)
asyncio.run(main())
"""
    out = _ok(_run([str(workspace["python"]), "-c", code], cwd=workspace["python"].parent))
    assert out.split() == ["11", "1", "ACC-1-00002"]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("broker_key=Acme-Broker", "must be lower-case letters, digits and '_'"),
        ('broker_name=Acme "Best" Broker', "must not contain double quotes or backslashes"),
    ],
    ids=["bad-key", "quoted-name"],
)
def test_bad_answers_are_refused_before_anything_is_written(tmp_path: Path, answer: str, message: str) -> None:
    target = tmp_path / "brokersync-bad"
    data = ["--data", answer] if answer.startswith("broker_key=") else ["--data", "broker_key=acme", "--data", answer]
    result = _run(
        [sys.executable, "-m", "copier", "copy", "--quiet", "--defaults", *data, str(TEMPLATE), str(target)],
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert message in result.stderr
    assert not target.exists()
