"""The vocabulary of the conformance suite: cases, verdicts, results.

Contract:
- A `Case` is keyed by the stable rule id it checks (docs/PROTOCOL.md §7) plus a slug that
  names the probe; `Case.id` is "RULE:slug" and never depends on a case's position. A case
  declares its description, the roles it applies to, the acceptable outcomes (prose, shown
  as "Expected: A | B") and a coroutine `run(ctx) -> Judgement`.
- The rule's text and level come from docs/PROTOCOL.md at run time (`bind_rules`); the level
  a case declares is only the fallback used when the document lacks the rule.
- `Verdict` is the Autobahn-style outcome. `failing` verdicts fail a run (unless the case is
  an expected failure, or its rule is SHOULD and the run is not strict); `informational` and
  `unsupported` never fail.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from tslic.protocol.rules import Level, Rule

from .basics import ALL_ROLES as ALL_ROLES
from .basics import REQUEST_REPLY_ROLES as REQUEST_REPLY_ROLES
from .basics import Judgement as Judgement
from .basics import Role as Role
from .basics import Verdict as Verdict
from .context import Context
from .wire import Transcript

CaseFn = Callable[[Context], Awaitable[Judgement]]


@dataclass(slots=True)
class Case:
    """One probe of one rule."""

    rule: str
    slug: str
    description: str
    expected: tuple[str, ...]
    run: CaseFn
    roles: frozenset[Role] = ALL_ROLES
    level: Level = Level.MUST  # fallback when docs/PROTOCOL.md lacks the rule
    negative: bool = False  # bad input: time-to-reject is measured
    heavy: bool = False  # floods and slow senders (may be bounded by options)
    untestable: bool = False  # declared not testable black-box: always `unsupported`
    rule_text: str = ""
    rule_source: str = ""
    rule_found: bool = False

    @property
    def id(self) -> str:
        return f"{self.rule}:{self.slug}"

    @property
    def area(self) -> str:
        return self.rule.rsplit("-", 1)[0]

    def bind(self, rules: dict[str, Rule]) -> None:
        """Take the rule's text and level from the parsed specification."""
        rule = rules.get(self.rule)
        if rule is None:
            self.rule_found = False
            self.rule_text = "(this rule id is not in docs/PROTOCOL.md)"
            return
        self.rule_found = True
        self.level = rule.level
        self.rule_text = rule.text
        self.rule_source = rule.source


def bind_rules(cases: list[Case], rules: dict[str, Rule]) -> None:
    for case in cases:
        case.bind(rules)


@dataclass(slots=True)
class Result:
    """One case as it ran."""

    case: Case
    verdict: Verdict
    actual: str
    duration: float
    time_to_reject: float | None = None
    served_after: bool | None = None  # a well-behaved client was served after the case
    served_detail: str = ""
    notes: list[str] = field(default_factory=list)
    transcript: Transcript | None = None
    expected_failure: bool = False  # listed with --expect-fail
    counted: bool = True  # False for SHOULD rules outside --strict
    evidence: str = ""  # path of the evidence bundle, if one was written

    @property
    def status(self) -> str:
        """How the result counts: ok, failed, xfail (expected failure) or xpass."""
        failing = self.verdict.failing
        if self.expected_failure:
            return "xfail" if failing else "xpass"
        if failing and self.counted:
            return "failed"
        return "ok"

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.case.id,
            "rule": self.case.rule,
            "area": self.case.area,
            "level": str(self.case.level),
            "description": self.case.description,
            "rule_text": self.case.rule_text,
            "expected": list(self.case.expected),
            "verdict": str(self.verdict),
            "status": self.status,
            "actual": self.actual,
            "duration_ms": round(self.duration * 1000, 3),
            "time_to_reject_ms": (
                None if self.time_to_reject is None else round(self.time_to_reject * 1000, 3)
            ),
            "served_after": self.served_after,
            "served_detail": self.served_detail,
            "notes": list(self.notes),
            "counted": self.counted,
            "expected_failure": self.expected_failure,
            "evidence": self.evidence or None,
        }


def case(
    registry: list[Case],
    rule: str,
    slug: str,
    description: str,
    expected: tuple[str, ...],
    *,
    roles: frozenset[Role] = ALL_ROLES,
    level: Level = Level.MUST,
    negative: bool = False,
    heavy: bool = False,
    untestable: bool = False,
) -> Callable[[CaseFn], CaseFn]:
    """Decorator: register a coroutine as a case of `rule` in `registry`."""

    def register(fn: CaseFn) -> CaseFn:
        registry.append(
            Case(rule, slug, description, expected, fn, roles, level, negative, heavy, untestable)
        )
        return fn

    return register
