"""Just enough Markdown reading for the docs tests: fenced code blocks, links, heading anchors.

Not a Markdown parser: it understands what our docs use (fenced blocks with ``` or ~~~, possibly
indented inside lists; inline links; reference definitions; ATX headings) and says so loudly when a
file is malformed (an unclosed fence), instead of silently skipping the rest of a document.
"""

from __future__ import annotations

import re
from pathlib import Path

import attrs

PYTHON_LANGUAGES = frozenset({"python", "py", "python3"})
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_NOT_RUN = re.compile(r"^\s*<!--\s*not-run:(?P<reason>.*?)-->\s*$")
_INLINE_CODE = re.compile(r"(`+)(?:.+?)\1")
_INLINE_LINK = re.compile(r"\]\(\s*<?(?P<target>[^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(?P<target>\S+?)>?(?:\s+.*)?$")
_HEADING = re.compile(r"^\s{0,3}(?P<hashes>#{1,6})\s+(?P<text>.*?)\s*#*\s*$")


@attrs.frozen
class CodeBlock:
    """A fenced code block: where it starts (1-based line of the opening fence) and its text."""

    path: Path
    line: int
    end_line: int  # the closing fence
    language: str
    code: str
    not_run: str | None  # the reason given in <!-- not-run: reason -->, or None when it must run

    @property
    def where(self) -> str:
        return f"{self.path.name}:{self.line}"


@attrs.frozen
class Link:
    """A link target written in a Markdown file (outside code)."""

    path: Path
    line: int
    target: str


def code_blocks(path: Path) -> list[CodeBlock]:
    """Every fenced code block in ``path``, with the not-run reason written right before it."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[CodeBlock] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        language = (opening["info"].strip().split() or [""])[0].lower()
        body: list[str] = []
        end = index + 1
        while end < len(lines):
            closing = _FENCE.match(lines[end])
            if closing and closing["fence"][0] == fence[0] and len(closing["fence"]) >= len(fence):
                if not closing["info"].strip():
                    break
            body.append(lines[end][indent:] if lines[end][:indent].strip() == "" else lines[end])
            end += 1
        else:
            raise ValueError(f"{path}:{index + 1}: code block opened with {fence} is never closed")
        blocks.append(
            CodeBlock(
                path=path,
                line=index + 1,
                end_line=end + 1,
                language=language,
                code="\n".join(body) + "\n",
                not_run=_not_run_reason(path, lines, index),
            )
        )
        index = end + 1
    return blocks


def _not_run_reason(path: Path, lines: list[str], fence_index: int) -> str | None:
    previous = fence_index - 1
    while previous >= 0 and not lines[previous].strip():
        previous -= 1
    if previous < 0:
        return None
    marker = _NOT_RUN.match(lines[previous])
    if marker is None:
        return None
    reason = marker["reason"].strip()
    if not reason:
        raise ValueError(f"{path}:{previous + 1}: a not-run marker must say why: <!-- not-run: reason -->")
    return reason


def prose_lines(path: Path) -> list[tuple[int, str]]:
    """(1-based line number, text) of every line outside fenced code blocks, inline code removed."""
    lines = path.read_text(encoding="utf-8").splitlines()
    inside: set[int] = set()
    for block in code_blocks(path):
        inside.update(range(block.line - 1, block.end_line))
    return [(n + 1, _INLINE_CODE.sub("", text)) for n, text in enumerate(lines) if n not in inside]


def links(path: Path) -> list[Link]:
    """Every inline link, image and reference definition target outside code."""
    found: list[Link] = []
    for number, text in prose_lines(path):
        for match in _INLINE_LINK.finditer(text):
            found.append(Link(path=path, line=number, target=match["target"]))
        reference = _REFERENCE.match(text)
        if reference:
            found.append(Link(path=path, line=number, target=reference["target"]))
    return found


def slugify(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading anchors on its text
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of every heading in ``path`` (repeated headings get -1, -2, ... as on GitHub)."""
    seen: dict[str, int] = {}
    result: set[str] = set()
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, _ in prose_lines(path):
        heading = _HEADING.match(lines[number - 1])
        if heading is None:
            continue
        slug = slugify(heading["text"])
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result
