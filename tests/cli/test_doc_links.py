"""Every relative link and anchor in README.md and docs/*.md resolves.

An anchor is checked against the headings of the target file, slugged as GitHub does
(lower case, punctuation dropped, spaces to hyphens, -1/-2 suffixes for repeats). Links
inside code blocks and inline code are not links. External (http, mailto) links are not
followed: the machine has no network, and they are not the project's to keep alive.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)")


def _prose(text: str, inline_code: bool = False) -> str:
    """The text without fenced code blocks (and without inline code spans unless `inline_code`)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return text if inline_code else re.sub(r"`[^`\n]*`", "", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading text."""
    heading = re.sub(r"`", "", heading.strip().lower())
    heading = re.sub(r"[^\w\- ]", "", heading)
    return heading.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a markdown file."""
    seen: dict[str, int] = {}
    out = set()
    for line in _prose(path.read_text(encoding="utf-8"), inline_code=True).splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(path: Path) -> list[str]:
    """The relative link targets of a markdown file."""
    found = [a or b for a, b in LINK.findall(_prose(path.read_text(encoding="utf-8")))]
    return [t for t in found if not re.match(r"^[a-z]+:", t)]


def broken(path: Path) -> list[str]:
    """Links of `path` whose file or anchor does not exist."""
    bad = []
    for target in links(path):
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            bad.append(f"{target}: no file {dest.relative_to(REPO) if dest.is_relative_to(REPO) else dest}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{target}: no heading #{anchor} in {dest.name}")
    return bad


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_and_anchor_resolves(doc: Path) -> None:
    assert broken(doc) == []


def test_the_checker_sees_broken_links(tmp_path: Path) -> None:
    (tmp_path / "b.md").write_text("# Real `heading`, here\n## Twice\n## Twice\n")
    doc = tmp_path / "a.md"
    doc.write_text("[ok](b.md#real-heading-here) [ok2](b.md#twice-1) [gone](missing.md) [bad](b.md#nope)\n"
                   "`[code](ignored.md)` [web](https://example.org/x)\n```\n[fenced](ignored.md)\n```\n")
    assert [b.split(":")[0] for b in broken(doc)] == ["missing.md", "b.md#nope"]
