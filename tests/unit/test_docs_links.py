"""Every relative Markdown link in README.md and docs/*.md reaches a file that exists and, when it
names one, a heading of that file (anchors as GitHub makes them)."""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from local.apidoc import github_anchor

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def _prose_lines(text: str):
    """Lines outside fenced code blocks, with inline code removed."""
    fenced = False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield re.sub(r"(`+)(?:(?!\1).)+?\1", "", line)


def anchors(path: Path) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown file (repeats get -1, -2, ...)."""
    seen: dict[str, int] = {}
    found = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            slug = github_anchor(match.group(1))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def links(path: Path) -> list[str]:
    return [match.group(1) for line in _prose_lines(path.read_text(encoding="utf-8"))
            for match in LINK.finditer(line)]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_reach_files_and_headings(document):
    broken = []
    for target in links(document):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:, ...
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (document.parent / unquote(file_part)).resolve() if file_part else document
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading #{anchor} in {resolved.relative_to(ROOT)}")
    assert not broken, f"{document.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_front_door_links_the_documents():
    targets = set(links(ROOT / "README.md"))
    for needed in ("docs/api.md", "docs/api-guide.md", "docs/ARCHITECTURE.md", "docs/runbook.md",
                   "docs/testing.md", "local/README.md", "local/webhook_receiver.py"):
        assert needed in targets, needed
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 220
