"""What a lab scenario is, and what it reports.

Contract: a scenario is an async function registered with `@scenario(...)`, naming the
documented rule it acts out (its source, e.g. KB 823313) and the `docs/PROTOCOL.md` rule ids.
It narrates with `ctx.say(...)` (each line stamped with the virtual date) and records checks
with `ctx.expect(expected, actual, ok)`. Its verdict is "as documented" only if every check
held and it raised nothing; an exception is recorded as a deviation with its message, and the
lab goes on to the next scenario.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .world import World


@dataclass
class Check:
    expected: str
    actual: str
    ok: bool


@dataclass
class Outcome:
    name: str
    title: str
    rules: tuple[str, ...]
    source: str
    checks: list[Check] = field(default_factory=list)
    narration: list[str] = field(default_factory=list)
    error: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.error and bool(self.checks) and all(c.ok for c in self.checks)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "title": self.title,
            "rules": list(self.rules),
            "source": self.source,
            "verdict": "as documented" if self.ok else "deviates",
            "checks": [vars(c) for c in self.checks],
            "narration": self.narration,
            "error": self.error,
            "seconds": round(self.seconds, 3),
        }


ScenarioFn = Callable[["World", "Context"], Awaitable[None]]


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    rules: tuple[str, ...]
    source: str
    fn: ScenarioFn


CATALOGUE: dict[str, Scenario] = {}


def scenario(
    name: str, title: str, *, rules: tuple[str, ...], source: str
) -> Callable[[ScenarioFn], ScenarioFn]:
    """Register a scenario in the catalogue, in definition order."""

    def register(fn: ScenarioFn) -> ScenarioFn:
        CATALOGUE[name] = Scenario(name, title, rules, source, fn)
        return fn

    return register


class Context:
    """Narration and checks of one running scenario."""

    def __init__(self, outcome: Outcome, today: Callable[[], str], echo: Callable[[str], None]):
        self.outcome = outcome
        self._today = today
        self._echo = echo

    def say(self, text: str) -> None:
        line = f"[{self._today()}] {text}"
        self.outcome.narration.append(line)
        self._echo(line)

    def expect(self, expected: str, actual: object, ok: bool) -> bool:
        self.outcome.checks.append(Check(expected=expected, actual=str(actual), ok=bool(ok)))
        self._echo(f"    {'ok ' if ok else 'DEVIATION'} expected {expected}; got {actual}")
        return bool(ok)

    def equal(self, expected: object, actual: object, what: str = "") -> bool:
        label = f"{what}: {expected}" if what else str(expected)
        return self.expect(label, actual, expected == actual)
