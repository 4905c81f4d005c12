"""The normative rules of docs/PROTOCOL.md §7, read from the document's text (sans-IO).

Contract:
- A rule is one Markdown list item that starts with its id and level in bold, then the rule,
  then its source in parentheses at the very end of the item:
  `- **COMPAT-1** (MUST): a 2003 terminal server MUST NOT accept ...
  ([KB 823313](SOURCES.md#kb823313))`; the links go to docs/SOURCES.md, which lists the public
  sources.
  An item may continue on indented lines.
- Ids are `AREA-n` with AREA one of `AREAS` and n a positive integer without leading zeros;
  they are stable: a rule is never renumbered, and a withdrawn id is never reused.
- `load_rules(text)` returns every rule in document order; `check_rules` lists what is wrong
  (duplicates, unknown areas, a level keyword absent from the text, a missing source) as
  sentences, empty when all is well. The conformance suite cites rules by id through
  `rules_by_id`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass

AREAS = (
    "FRAME", "ENV", "MSG", "STATE", "ERR", "LIMIT", "COMPAT", "CAL", "TEMP", "LEASE", "GRACE",
    "DISC", "SEC", "ACT", "CH", "DIR", "RDP", "EVT", "CLOCK", "PAGE",
)  # fmt: skip


class Level(enum.StrEnum):
    """RFC 2119 requirement levels."""

    MUST = "MUST"
    SHOULD = "SHOULD"
    MAY = "MAY"


@dataclass(frozen=True, slots=True)
class Rule:
    """One normative rule: its id (e.g. "COMPAT-1"), level, text and cited source."""

    id: str
    level: Level
    text: str
    source: str

    @property
    def area(self) -> str:
        return self.id.rsplit("-", 1)[0]

    @property
    def number(self) -> int:
        return int(self.id.rsplit("-", 1)[1])


_START = re.compile(r"^- \*\*([A-Z]+-\d+)\*\* \((MUST|SHOULD|MAY)\):\s*(.*)$")
_ID = re.compile(r"^([A-Z]+)-([1-9]\d*)$")


def _items(text: str) -> Iterable[tuple[str, str, str]]:
    """(id, level, joined text) of every rule item, continuation lines included."""
    current: list[str] | None = None
    head: tuple[str, str] = ("", "")
    for line in text.splitlines():
        match = _START.match(line)
        if match:
            if current is not None:
                yield (*head, " ".join(current))
            head = (match.group(1), match.group(2))
            current = [match.group(3).strip()]
        elif current is not None and line.startswith("  ") and line.strip():
            current.append(line.strip())
        elif current is not None:
            yield (*head, " ".join(current))
            current = None
    if current is not None:
        yield (*head, " ".join(current))


def _split_source(body: str) -> tuple[str, str]:
    """Split "rule text (source)" at the final balanced parenthesis group."""
    if not body.endswith(")"):
        return body, ""
    depth = 0
    for i in range(len(body) - 1, -1, -1):
        if body[i] == ")":
            depth += 1
        elif body[i] == "(":
            depth -= 1
            if depth == 0:
                return body[:i].rstrip(), body[i + 1 : -1].strip()
    return body, ""


def load_rules(text: str) -> list[Rule]:
    """Every rule item in `text` (the Markdown of PROTOCOL.md), in document order.

    Items that look like rules are returned even when malformed in other ways (so that
    `check_rules` can say what is wrong); the level is whatever the bold head says.
    """
    rules = []
    for rule_id, level, body in _items(text):
        rule_text, source = _split_source(body)
        rules.append(Rule(rule_id, Level(level), rule_text, source))
    return rules


def check_rules(rules: Iterable[Rule]) -> list[str]:
    """Problems with a rule set, one sentence each; empty when every rule is well formed."""
    problems = []
    seen: set[str] = set()
    for rule in rules:
        match = _ID.match(rule.id)
        if not match or match.group(1) not in AREAS:
            problems.append(f"{rule.id}: id is not AREA-n with AREA one of {', '.join(AREAS)}")
        if rule.id in seen:
            problems.append(f"{rule.id}: id used twice")
        seen.add(rule.id)
        if not re.search(rf"\b{rule.level.value}\b", rule.text):
            problems.append(f"{rule.id}: level {rule.level} does not appear in the rule's text")
        if not rule.source:
            problems.append(f"{rule.id}: no source in parentheses at the end")
    return problems


def rules_by_id(text: str) -> dict[str, Rule]:
    """The rules of `text` keyed by id (the last one wins if an id is duplicated)."""
    return {rule.id: rule for rule in load_rules(text)}
