"""The documentation is self-contained: every link, anchor and section reference resolves.

Checked in docs/*.md and README.md (fenced code blocks are not prose and are skipped):
- a relative Markdown link `[text](path#anchor)` names an existing file, and its anchor is a
  heading of that file (GitHub's slug) or an explicit `<a id="...">`;
- a `§n.n` reference names a numbered heading: a bare `§n` means the document it is written
  in, `PROTOCOL.md §n` (or `` `docs/PROTOCOL.md` §n ``, and any `§` listed after it) that
  document. A reference after an outside specification's name (`MS-RDPBCGR §2.2.1.1`,
  `RFC 5280 §4.2`) is that specification's and is not checked here; a document whose bare
  `§` all mean one specification says so once, in a comment
  `<!-- bare § sections: MS-RDPBCGR -->`;
- every project document (`NAME.md`) a document mentions exists in the repository, and
  nothing points outside it (absolute paths, the research notes the project was built from);
- docs/SOURCES.md and the rules of docs/PROTOCOL.md §7 agree both ways: every rule id listed
  under a source exists, and a rule's source cites `SOURCES.md#anchor` exactly when that
  source lists the rule.
Code docstrings and comments must not cite the research notes either.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from pathlib import Path

import pytest
from tslic.protocol.rules import load_rules

ROOT = Path(__file__).resolve().parents[2]
DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
CODE_FOLDERS = ("protocol", "runtime", "server", "client", "cli", "tools", "bench", "tests")

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
LINK = re.compile(r"(?<!!)\[(?P<text>[^\]\n]*)\]\((?P<target>[^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)
EXPLICIT_ANCHOR = re.compile(r"""<a\s+(?:id|name)=["']([^"']+)["']""")
NUMBERED = re.compile(r"^(\d+(?:\.\d+)*)\.?\s")
# `§n` optionally preceded by a document name; later refs of the same list follow it.
SECTION_LIST = re.compile(
    r"(?:(?P<doc>[\w./-]+\.md)[`)]?\s+)?"
    r"(?P<refs>§\d+(?:\.\d+)*(?:(?:\s*[,-]\s*|\s+(?:and|or|to)\s+)§\d+(?:\.\d+)*)*)"
)
SECTION = re.compile(r"§(\d+(?:\.\d+)*)")
# A specification outside the repository named just before a § reference.
SPEC_BEFORE = re.compile(r"(?:\bMS-[A-Z]+|\bBCGR|\bELE|\bRFC \d+|\bT\.\d+|\bX\.\d+)\s*$")
BARE_IS_SPEC = re.compile(r"<!--\s*bare § sections:\s*([^>]*?)\s*-->")
# A document of the project: upper-case names (`reliability.md` is a file a run writes).
MD_NAME = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[A-Z][A-Z0-9_]*\.md)\b")
# The research notes and their folder: material to learn from, never a citation.
OUTSIDE = re.compile(
    r"tslicensing\.md|kb823313\.md|architecture\.md|style\.md|tooling\.md|shared/reference"
    r"|/work/|(?<![\w.])rdp\.md"
)
RULE_ID = re.compile(r"\b([A-Z]+-[1-9]\d*)\b")


def prose(path: Path) -> str:
    """The file's text with fenced code blocks blanked (line numbers kept)."""
    text = path.read_text(encoding="utf-8")
    return FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped."""
    text = re.sub(r"`([^`]*)`", r"\1", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    kept = [
        c for c in text if c in " -_" or unicodedata.category(c)[0] in ("L", "N") or c in "\u200d"
    ]
    return "".join(kept).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor a link into `path` may use."""
    text = prose(path)
    found = set(EXPLICIT_ANCHOR.findall(path.read_text(encoding="utf-8")))
    seen: dict[str, int] = defaultdict(int)
    for match in HEADING.finditer(text):
        base = slug(match.group(2))
        found.add(base if seen[base] == 0 else f"{base}-{seen[base]}")
        seen[base] += 1
    return found


def sections(path: Path) -> set[str]:
    """The numbers of `path`'s numbered headings ("7", "7.1", ...)."""
    numbers = set()
    for match in HEADING.finditer(prose(path)):
        number = NUMBERED.match(match.group(2))
        if number:
            numbers.add(number.group(1))
    return numbers


def resolve(name: str, within: Path) -> Path | None:
    """A document name as written (`PROTOCOL.md`, `docs/PROTOCOL.md`, `../README.md`)."""
    for base in (within.parent, ROOT, ROOT / "docs"):
        candidate = (base / name).resolve()
        if candidate.is_file() and candidate.is_relative_to(ROOT):
            return candidate
    return None


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("doc", DOCS, ids=rel)
def test_relative_links_and_anchors_resolve(doc: Path) -> None:
    text = prose(doc)
    broken = []
    for match in LINK.finditer(text):
        target = match.group("target")
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        where = f"{rel(doc)}:{line_of(text, match.start())} {target}"
        path_part, _, anchor = target.partition("#")
        if path_part.startswith("/"):
            broken.append(f"{where}: absolute path")
            continue
        dest = (doc.parent / path_part).resolve() if path_part else doc
        if not dest.exists() or not dest.is_relative_to(ROOT):
            broken.append(f"{where}: no such file in the repository")
            continue
        if anchor and (dest.suffix != ".md" or anchor not in anchors(dest)):
            broken.append(f"{where}: no heading or anchor '{anchor}' in {dest.name}")
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("doc", DOCS, ids=rel)
def test_section_references_name_existing_sections(doc: Path) -> None:
    text = prose(doc)
    bare_is_spec = BARE_IS_SPEC.search(doc.read_text(encoding="utf-8")) is not None
    broken = []
    for match in SECTION_LIST.finditer(text):
        name = match.group("doc")
        if not name and (
            bare_is_spec or SPEC_BEFORE.search(text[max(0, match.start() - 40) : match.start()])
        ):
            continue  # an outside specification's section
        target = resolve(name, doc) if name else doc
        where = f"{rel(doc)}:{line_of(text, match.start())}"
        if target is None:
            broken.append(f"{where}: {name} is not in the repository")
            continue
        known = sections(target)
        for number in SECTION.findall(match.group("refs")):
            if number not in known:
                broken.append(f"{where}: §{number} is not a section of {target.name}")
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("doc", DOCS, ids=rel)
def test_nothing_is_cited_outside_the_repository(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    outside = [
        f"{rel(doc)}:{line_of(text, m.start())}: {m.group(0)}" for m in OUTSIDE.finditer(text)
    ]
    missing = [
        f"{rel(doc)}:{line_of(text, m.start())}: {m.group(1)} does not exist"
        for m in MD_NAME.finditer(prose(doc))
        if resolve(m.group(1), doc) is None
    ]
    assert not outside + missing, "\n".join(outside + missing)


def source_entries() -> dict[str, set[str]]:
    """docs/SOURCES.md: each explicit anchor and the rule ids listed on its `Rules:` line."""
    entries: dict[str, set[str]] = {}
    current = None
    for line in (ROOT / "docs" / "SOURCES.md").read_text(encoding="utf-8").splitlines():
        anchor = EXPLICIT_ANCHOR.search(line)
        if anchor:
            current = anchor.group(1)
            entries[current] = set()
        elif current is not None and line.startswith("Rules:"):
            entries[current] |= set(RULE_ID.findall(line))
    return entries


def test_sources_and_rules_cite_each_other() -> None:
    rules = load_rules((ROOT / "docs" / "PROTOCOL.md").read_text(encoding="utf-8"))
    known = {rule.id for rule in rules}
    entries = source_entries()
    assert entries, "docs/SOURCES.md lists no source"
    listed = {(anchor, rid) for anchor, ids in entries.items() for rid in ids}
    cited = {
        (anchor, rule.id)
        for rule in rules
        for anchor in re.findall(r"\(SOURCES\.md#([\w-]+)\)", rule.source)
    }
    assert sorted(rid for _, rid in listed if rid not in known) == [], "unknown rule ids"
    assert sorted(cited - listed) == [], "rules citing a source that does not list them"
    assert sorted(listed - cited) == [], "sources listing a rule that does not cite them"


def test_every_rule_rests_on_a_source() -> None:
    """A rule's source is a public document (via SOURCES.md) or a place in the repository."""
    rules = load_rules((ROOT / "docs" / "PROTOCOL.md").read_text(encoding="utf-8"))
    unsourced = [
        rule.id
        for rule in rules
        if "SOURCES.md#" not in rule.source and not re.search(r"§\d|\.py|\.md", rule.source)
    ]
    assert unsourced == []


def test_code_does_not_cite_the_research_notes() -> None:
    this = Path(__file__).resolve()
    hits = []
    for folder in CODE_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.resolve() == this:
                continue
            text = path.read_text(encoding="utf-8")
            hits += [f"{rel(path)}:{line_of(text, m.start())}" for m in OUTSIDE.finditer(text)]
    assert not hits, "\n".join(hits)
