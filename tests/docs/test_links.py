"""Every relative link in the docs and READMEs points to a file that exists (and a heading, if it names one)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.docs._markdown import anchors, links

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = sorted(
    [ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), *(ROOT / "plugins").glob("*/README.md")],
)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """Each broken relative link in ``path`` as ``file:line: target: why``."""
    problems: list[str] = []
    for link in links(path):
        if _SCHEME.match(link.target):
            continue  # http(s), mailto: not checked here (no network in tests)
        file_part, _, fragment = link.target.partition("#")
        target = (path.parent / unquote(file_part)).resolve() if file_part else path
        where = f"{path.relative_to(root)}:{link.line}: {link.target}"
        if not target.is_relative_to(root):
            problems.append(f"{where}: points outside the repository")
        elif not target.exists():
            problems.append(f"{where}: no such file")
        elif fragment and target.suffix == ".md" and fragment not in anchors(target):
            problems.append(f"{where}: {target.name} has no heading with anchor #{fragment}")
    return problems


def test_documents_are_found() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in DOCUMENTS}
    assert {"README.md", "docs/index.md", "docs/user-guide.md", "docs/configuration.md", "docs/cli.md"} <= names


@pytest.mark.parametrize("path", DOCUMENTS, ids=[p.relative_to(ROOT).as_posix() for p in DOCUMENTS])
def test_relative_links_resolve(path: Path) -> None:
    assert broken_links(path) == []


def test_index_links_every_document() -> None:
    # The map in docs/index.md stays complete as documents (guides, plugin-author pages, ADRs) are added.
    index = ROOT / "docs" / "index.md"
    linked = {(index.parent / link.target.partition("#")[0]).resolve() for link in links(index)}
    missing = [
        p.relative_to(ROOT).as_posix()
        for p in sorted((ROOT / "docs").rglob("*.md"))
        if p.resolve() not in linked and p.name != "index.md"
    ]
    assert missing == [], f"docs/index.md does not link {missing}"


def test_broken_links_are_reported(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "other.md").write_text("# Other page\n\n## Set up `redis`\n", encoding="utf-8")
    doc = tmp_path / "docs" / "page.md"
    doc.write_text(
        "# Page\n\n"
        "[ok](other.md) [ok anchor](other.md#set-up-redis) [self](#page) [web](https://example.com/x)\n"
        "[gone](missing.md) [bad anchor](other.md#nope) [escape](../../outside.md)\n"
        "`[in code](nope.md)`\n\n"
        "```markdown\n[in a block](nope.md)\n```\n\n"
        "[ref]: ./also-missing.md\n",
        encoding="utf-8",
    )
    problems = broken_links(doc, root=tmp_path)
    assert [p.split(": ")[1] for p in problems] == [
        "missing.md",
        "other.md#nope",
        "../../outside.md",
        "./also-missing.md",
    ]
