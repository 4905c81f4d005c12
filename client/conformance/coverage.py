"""Rule coverage: which MUST and SHOULD rules have cases that can fail, per role.

Contract: `coverage(cases, rules)` sorts every rule of docs/PROTOCOL.md, for each role and
overall, into one of three kinds:
- **can fail**: at least one case of the role checks it on the wire (or through the target's
  documented status interface) and can report a failing verdict;
- **declared**: its only cases are `RULE:not-black-box` declarations (`Case.untestable`),
  which always report `unsupported` with the reason (cases_declared.py);
- absent: no case of that role cites it (the rule is about another role's behaviour).
A rule counts as "can fail" overall when any role has such a case, "declared" when it only
has declarations. `coverage_json` carries both counts, overall and per role; the shape is
documented in docs/CONFORMANCE.md §4 (fields are only added).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rich.table import Table
from rich.text import Text
from tslic.protocol.rules import Level, Rule

from .basics import Role
from .model import Case

SCHEMA = "tslic-conformance/1/coverage"


@dataclass(frozen=True, slots=True)
class Coverage:
    covered: dict[str, list[str]]  # rule id -> case ids (every role)
    uncovered: list[Rule]  # MUST and SHOULD rules without a case
    unknown: dict[str, list[str]]  # rule ids cited by cases but absent from the spec
    rules: dict[str, Rule]
    testable: dict[Role, set[str]]  # per role: rules with a case that can fail
    declared: dict[Role, set[str]]  # per role: rules with only declared cases

    def counts(self, level: Level) -> tuple[int, int]:
        """(covered, total) for MUST or SHOULD: rules with any case, declared ones included."""
        total = [r for r in self.rules.values() if r.level is level]
        return sum(r.id in self.covered for r in total), len(total)

    def can_fail(self, level: Level, role: Role | None = None) -> set[str]:
        """Rules of `level` with a case that can fail (for `role`, or for any role)."""
        roles = [role] if role is not None else list(Role)
        ids = set().union(*(self.testable[r] for r in roles))
        return {i for i in ids if i in self.rules and self.rules[i].level is level}

    def only_declared(self, level: Level, role: Role | None = None) -> set[str]:
        """Rules of `level` whose only cases (for `role`, or anywhere) are declarations."""
        roles = [role] if role is not None else list(Role)
        ids = set().union(*(self.declared[r] for r in roles)) - self.can_fail(level, role)
        return {i for i in ids if i in self.rules and self.rules[i].level is level}


def coverage(cases: Iterable[Case], rules: dict[str, Rule]) -> Coverage:
    covered: dict[str, list[str]] = {}
    unknown: dict[str, list[str]] = {}
    testable: dict[Role, set[str]] = {r: set() for r in Role}
    declared: dict[Role, set[str]] = {r: set() for r in Role}
    for c in cases:
        (covered if c.rule in rules else unknown).setdefault(c.rule, []).append(c.id)
        for role in c.roles:
            (declared if c.untestable else testable)[role].add(c.rule)
    for role in Role:
        declared[role] -= testable[role]
    uncovered = [
        r for r in rules.values() if r.level in (Level.MUST, Level.SHOULD) and r.id not in covered
    ]
    return Coverage(covered, uncovered, unknown, rules, testable, declared)


def coverage_table(cov: Coverage) -> Table:
    table = Table(title="rule coverage (MUST and SHOULD)")
    table.add_column("rule")
    table.add_column("level")
    table.add_column("kind")
    table.add_column("cases", justify="right")
    table.add_column("case ids")
    can_fail = cov.can_fail(Level.MUST) | cov.can_fail(Level.SHOULD)
    for rule in cov.rules.values():
        if rule.level is Level.MAY:
            continue
        ids = cov.covered.get(rule.id, [])
        kind = "can fail" if rule.id in can_fail else ("declared" if ids else "none")
        style = "" if ids else ("bold red" if rule.level is Level.MUST else "yellow")
        if kind == "declared":
            style = "dim"
        shown = ", ".join(ids[:3]) + (f" (+{len(ids) - 3})" if len(ids) > 3 else "")
        table.add_row(Text(rule.id, style=style), str(rule.level), kind, str(len(ids)), shown)
    return table


def coverage_lines(cov: Coverage) -> list[str]:
    """The summary printed under the table: overall, then one line per role."""
    lines = []
    for level in (Level.MUST, Level.SHOULD):
        done, total = cov.counts(level)
        fail, decl = len(cov.can_fail(level)), len(cov.only_declared(level))
        lines.append(f"{level}: {done}/{total} rules have cases: {fail} with a case that can"
                     f" fail, {decl} declared untestable")  # fmt: skip
    for role in Role:
        fail = len(cov.can_fail(Level.MUST, role))
        decl = len(cov.only_declared(Level.MUST, role))
        lines.append(f"  {role}: MUST {fail} can fail, {decl} declared untestable"
                     f" ({_pct(decl, fail + decl)})")  # fmt: skip
    return lines


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}% declared" if whole else "no rules"


def _counts(cov: Coverage, level: Level, role: Role | None) -> dict[str, int]:
    fail, decl = len(cov.can_fail(level, role)), len(cov.only_declared(level, role))
    return {"can_fail": fail, "declared": decl, "total": fail + decl}


def coverage_json(cov: Coverage) -> dict[str, object]:
    must = cov.counts(Level.MUST)
    should = cov.counts(Level.SHOULD)
    return {
        "schema": SCHEMA,
        "must": {"covered": must[0], "total": must[1], **_declared(cov, Level.MUST)},
        "should": {"covered": should[0], "total": should[1], **_declared(cov, Level.SHOULD)},
        "roles": {
            str(role): {
                "must": _counts(cov, Level.MUST, role),
                "should": _counts(cov, Level.SHOULD, role),
            }
            for role in Role
        },
        "rules": {
            r.id: {"level": str(r.level), "cases": cov.covered.get(r.id, []), "kind": _kind(cov, r)}
            for r in cov.rules.values()
        },
        "declared": sorted(cov.only_declared(Level.MUST) | cov.only_declared(Level.SHOULD)),
        "uncovered": [r.id for r in cov.uncovered],
        "unknown_rule_ids": sorted(cov.unknown),
    }


def _declared(cov: Coverage, level: Level) -> dict[str, int]:
    return {"can_fail": len(cov.can_fail(level)), "declared": len(cov.only_declared(level))}


def _kind(cov: Coverage, rule: Rule) -> str:
    if rule.id in cov.can_fail(rule.level):
        return "can-fail"
    return "declared" if rule.id in cov.covered else "none"
