"""Every routine task is a nox session: tests, lint, typing, demo, plugins, template, docs, bench.

python -m pip install nox uv
python -m nox -s tests      # the whole test suite, in a fresh virtualenv
python -m nox -s demo       # the main job
python -m nox -s build      # wheels and sdists of every distribution into dist/, metadata checked
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

# uv ships its own certificate roots; machines behind a TLS-inspecting proxy (like our CI) trust an
# extra CA in the system store only. Use the system store (pip already does). Older uv: UV_NATIVE_TLS.
os.environ.setdefault("UV_SYSTEM_CERTS", "1")
os.environ.setdefault("UV_NATIVE_TLS", "1")

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["lint", "typing", "tests"]
nox.options.error_on_missing_interpreters = True

ROOT = Path(__file__).parent
PYPROJECT = nox.project.load_toml("pyproject.toml")
PLUGINS = sorted(str(p) for p in (ROOT / "plugins").glob("brokersync-*") if (p / "pyproject.toml").exists())
# Small real distributions (good and deliberately broken plugins) the discovery tests need installed.
TEST_PACKAGES = sorted(str(p) for p in (ROOT / "tests" / "packages").glob("*") if (p / "pyproject.toml").exists())


def _bytecode(session: nox.Session) -> None:
    # Compile installed packages and let Python cache bytecode even where the environment sets
    # PYTHONDONTWRITEBYTECODE: the tests start many CLI subprocesses, and recompiling SQLAlchemy,
    # Alembic and friends in each one costs seconds.
    session.env["UV_COMPILE_BYTECODE"] = "1"
    session.env["PYTHONDONTWRITEBYTECODE"] = ""


def install_project(session: nox.Session, *, with_test_packages: bool = False) -> None:
    _bytecode(session)
    session.install("-e", "./core[postgres,queue]", *[arg for p in PLUGINS for arg in ("-e", p)])
    if with_test_packages and TEST_PACKAGES:
        session.install(*TEST_PACKAGES)


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """Run the whole test suite (unit, integration with real Redis/PostgreSQL, end-to-end)."""
    install_project(session, with_test_packages=True)
    session.install(*nox.project.dependency_groups(PYPROJECT, "test"))
    session.run("pytest", *(session.posargs or []))


@nox.session(python="3.11")
def build(session: nox.Session) -> None:
    """Build every distribution's wheel and sdist into dist/ and check their metadata (twine check --strict)."""
    import shutil

    session.install("uv", "twine>=5")
    out = ROOT / "dist"
    shutil.rmtree(out, ignore_errors=True)
    for source in [str(ROOT / "core"), *PLUGINS]:
        session.run("uv", "build", "--out-dir", str(out), source)
    session.run("twine", "check", "--strict", *sorted(str(p) for p in out.iterdir()))
    session.log(f"Built into {out}: pip install {out}/*.whl")


@nox.session(python="3.11")
def demo(session: nox.Session) -> None:
    """The main job: sync tens of thousands of simulated trades offline on the embedded defaults."""
    install_project(session)
    session.run("brokersync", "plugins")
    session.run("brokersync", "demo", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """Ruff lint and format check."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python="3.11")
def typing(session: nox.Session) -> None:
    """mypy --strict on the core and the first-party plugins."""
    install_project(session)
    session.install(*nox.project.dependency_groups(PYPROJECT, "typing"))
    session.run("mypy", "core/src", *[f"{p}/src" for p in PLUGINS])


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """Run the benchmarks and rewrite benchmarks/RESULTS.md."""
    install_project(session, with_test_packages=True)
    session.install(*nox.project.dependency_groups(PYPROJECT, "test"))
    for script in sorted((ROOT / "benchmarks").glob("bench_*.py")):
        session.run("python", str(script), *session.posargs)


@nox.session(python="3.11")
def template(session: nox.Session) -> None:
    """Render plugin-template/ into a temp dir, install it next to the core, run its tests, lint and typing."""
    import shutil

    session.install("copier>=9.0", "-e", "./core")
    target = Path(session.create_tmp()) / "brokersync-example"
    shutil.rmtree(target, ignore_errors=True)
    session.run(
        "copier",
        "copy",
        "--defaults",
        "--data",
        "broker_key=example",
        "--data",
        "api_base_url=https://api.example-broker.com/v1",
        "--data",
        "docs_url=https://developer.example-broker.com/api",
        str(ROOT / "plugin-template"),
        str(target),
    )
    session.install("-e", str(target), "pytest", *nox.project.dependency_groups(PYPROJECT, "lint", "typing"))
    with session.chdir(target):
        session.run("pytest", *session.posargs)
        session.run("ruff", "check", ".")
        session.run("ruff", "format", "--check", ".")
        session.run("mypy", "src", "tests")
        session.run("brokersync", "plugins", "--check")


@nox.session(python="3.11")
def docs(session: nox.Session) -> None:
    """Fail if docs/cli.md is stale; run the docs tests (every example runs, links resolve, env vars documented)."""
    install_project(session)
    session.install(*nox.project.dependency_groups(PYPROJECT, "test"))
    generated = Path(session.create_tmp()) / "cli.md"
    session.run("python", "docs/_generate_cli_reference.py", "--output", str(generated))
    if generated.read_text(encoding="utf-8") != (ROOT / "docs" / "cli.md").read_text(encoding="utf-8"):
        session.error("docs/cli.md is stale: run `python docs/_generate_cli_reference.py` and commit the result")
    session.run("pytest", "tests/docs", *session.posargs)
