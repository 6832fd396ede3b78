"""The distributions users will `pip install` build, pass `twine check`, and work from a clean venv.

Builds the core and every first-party plugin (wheel and sdist) from this checkout, checks their
metadata, installs only the wheels into a fresh virtualenv outside the repository and runs the
installed `brokersync`: the plugin is found through its entry point, not through the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTIONS = [
    ROOT / "core",
    *sorted(p for p in (ROOT / "plugins").glob("brokersync-*") if (p / "pyproject.toml").exists()),
]


def _uv() -> str:
    found = shutil.which("uv") or shutil.which("uv", path=str(Path(sys.executable).parent))
    if found:
        return found
    import uv  # the PyPI "uv" package ships its binary

    return str(uv.find_uv_bin())


def _ok(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def _project(path: Path) -> dict[str, str]:
    return tomllib.loads((path / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_every_distribution_builds_checks_and_runs_from_a_clean_venv(tmp_path: Path) -> None:
    uv = _uv()
    dist = tmp_path / "dist"
    for source in DISTRIBUTIONS:
        _ok([uv, "build", "-q", "--out-dir", str(dist), str(source)], cwd=tmp_path)
    wheels = sorted(dist.glob("*.whl"))
    sdists = sorted(dist.glob("*.tar.gz"))
    names = {_project(p)["name"].replace("-", "_") for p in DISTRIBUTIONS}
    assert {w.name.split("-")[0] for w in wheels} == names
    assert {s.name.rsplit("-", 1)[0] for s in sdists} == names
    _ok([sys.executable, "-m", "twine", "check", "--strict", *map(str, wheels + sdists)], cwd=tmp_path)

    venv = tmp_path / "clean-venv"
    _ok([uv, "venv", "-q", "-p", sys.executable, str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    _ok([uv, "pip", "install", "-q", "-p", str(python), *map(str, wheels)], cwd=tmp_path)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("BROKERSYNC_", "PYTHON", "VIRTUAL_ENV"))}
    env["BROKERSYNC_DATA_DIR"] = str(tmp_path / "data")
    where = _ok([str(python), "-c", "import brokersync, brokersync_sim; print(brokersync.__file__)"], tmp_path, env)
    assert Path(where.strip()).is_relative_to(venv), where  # the wheel, not this checkout
    listed = json.loads(_ok([str(venv / "bin" / "brokersync"), "plugins", "--json"], tmp_path, env))
    sim = [p for p in listed if p["distribution"] == "brokersync-sim"]
    assert sim and sim[0]["brokers"] == ["sim"] and sim[0]["errors"] == []
    assert sim[0]["version"] == _project(ROOT / "plugins" / "brokersync-sim")["version"]
    core_version = {}
    exec((ROOT / "core" / "src" / "brokersync" / "_version.py").read_text(encoding="utf-8"), core_version)
    version = _ok([str(venv / "bin" / "brokersync"), "--version"], tmp_path, env)
    assert core_version["__version__"] in version
