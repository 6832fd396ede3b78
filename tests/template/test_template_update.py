"""`copier copy` then `copier update` work as the docs say: the template is rendered from a git
repository's root (its copier.yml includes plugin-template/copier.yml), so the generated project
records the template commit, and a later template change arrives while the author's edits stay.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GIT = [
    "git",
    "-c",
    "user.name=Template Test",
    "-c",
    "user.email=template@test.invalid",
    "-c",
    "init.defaultBranch=main",
]


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def copier(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "copier", *args], cwd)


@pytest.fixture
def template_repo(tmp_path: Path) -> Path:
    """A git repository holding the template the way brokersync's repository does (root copier.yml)."""
    repo = tmp_path / "brokersync"
    repo.mkdir()
    shutil.copy(ROOT / "copier.yml", repo / "copier.yml")
    shutil.copytree(ROOT / "plugin-template", repo / "plugin-template", ignore=shutil.ignore_patterns("__pycache__"))
    run([*GIT, "init", "-q"], repo)
    run([*GIT, "add", "-A"], repo)
    run([*GIT, "commit", "-qm", "template v1"], repo)
    return repo


def _answers(project: Path) -> dict[str, object]:
    """The answers file as YAML: a short hash of digits only (``1035455``) is written quoted."""
    loaded = yaml.safe_load((project / ".copier-answers.yml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return {str(key): str(value) for key, value in loaded.items()}


def test_copy_records_the_commit_and_update_merges_template_changes_with_the_authors_edits(
    template_repo: Path, tmp_path: Path
) -> None:
    first = run([*GIT, "rev-parse", "--short", "HEAD"], template_repo).stdout.strip()
    project = tmp_path / "brokersync-acme"
    copier("copy", "--quiet", "--defaults", "--data", "broker_key=acme", str(template_repo), str(project), cwd=tmp_path)
    answers = _answers(project)
    assert answers["_commit"] == first and answers["broker_key"] == "acme"
    run([*GIT, "init", "-q"], project)
    run([*GIT, "add", "-A"], project)
    run([*GIT, "commit", "-qm", "generated"], project)

    # The author's own work: a change in the generated plugin.
    plugin = project / "src" / "brokersync_acme" / "plugin.py"
    own_edit = "\n\n# Acme rounds fees to cents: see their API changelog 2024-03.\n"
    plugin.write_text(plugin.read_text(encoding="utf-8") + own_edit, encoding="utf-8")
    run([*GIT, "commit", "-qam", "author's edit"], project)

    # The template improves.
    noxfile = template_repo / "plugin-template" / "template" / "noxfile.py.jinja"
    improvement = "\n\n# Template improvement: a session for {{ broker_key }} benchmarks comes here.\n"
    noxfile.write_text(noxfile.read_text(encoding="utf-8") + improvement, encoding="utf-8")
    run([*GIT, "commit", "-qam", "template v2"], template_repo)
    second = run([*GIT, "rev-parse", "--short", "HEAD"], template_repo).stdout.strip()

    copier("update", "--quiet", "--defaults", cwd=project)
    assert "# Template improvement: a session for acme benchmarks comes here." in (project / "noxfile.py").read_text(
        encoding="utf-8"
    )
    assert plugin.read_text(encoding="utf-8").endswith(own_edit)
    assert _answers(project)["_commit"] == second


def test_defaults_without_a_broker_key_say_what_to_pass(template_repo: Path, tmp_path: Path) -> None:
    target = tmp_path / "brokersync-nokey"
    result = subprocess.run(
        [sys.executable, "-m", "copier", "copy", "--quiet", "--defaults", str(template_repo), str(target)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode != 0
    assert "pass --data broker_key=KEY" in result.stderr
    assert not target.exists()


def test_the_placeholder_live_url_is_rendered_only_when_no_real_one_is_given(
    template_repo: Path, tmp_path: Path
) -> None:
    placeholder = tmp_path / "brokersync-placeholder"
    copier(
        "copy", "--quiet", "--defaults", "--data", "broker_key=acme", str(template_repo), str(placeholder), cwd=tmp_path
    )
    assert 'LIVE_URL = "https://api.acme.example/v1"' in (placeholder / "src/brokersync_acme/plugin.py").read_text()
    real = tmp_path / "brokersync-real"
    copier(
        "copy",
        "--quiet",
        "--defaults",
        "--data",
        "broker_key=acme",
        "--data",
        "api_base_url=https://api.acme-securities.com/v2",
        "--data",
        "docs_url=https://developer.acme-securities.com/api",
        str(template_repo),
        str(real),
        cwd=tmp_path,
    )
    source = (real / "src/brokersync_acme/plugin.py").read_text()
    assert 'LIVE_URL = "https://api.acme-securities.com/v2"' in source
    assert 'docs_url="https://developer.acme-securities.com/api"' in source
