"""The settings of one load run, shared by the coordinator and every worker process.

Contract: `LoadConfig` is a frozen, picklable value (it crosses process boundaries) built
by the CLI from validated options. `parse_mix` and `parse_weights` turn `new=70,upgrade=10`
into normalised weights and raise `UsageError` naming the bad part. `build_schedule` returns
the workload model the config names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tslic.protocol.domain import DEFAULT_SITE, ClientOS
from tslic.runtime.args import ClockSource

from .errors import UsageError
from .schedule import ClosedSchedule, OpenSchedule, Schedule, Stage

OPERATIONS = ("new", "upgrade", "mark", "return")
DEFAULT_MIX = "new=70,upgrade=10,mark=15,return=5"


def parse_weights(text: str, allowed: tuple[str, ...], what: str) -> dict[str, float]:
    """`a=70,b=30` as {a: 0.7, b: 0.3}.

    Raises:
        UsageError: an unknown name, a non-number, a negative weight, or all zero.
    """
    weights: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.strip().partition("=")
        name = name.strip()
        if not sep:
            raise UsageError(f"{what}: {part.strip()!r} is not NAME=WEIGHT")
        if name not in allowed:
            raise UsageError(f"{what}: unknown {name!r}; choose from {', '.join(allowed)}")
        try:
            weight = float(value)
        except ValueError:
            raise UsageError(f"{what}: {value!r} is not a number") from None
        if not math.isfinite(weight) or weight < 0:
            raise UsageError(f"{what}: the weight of {name!r} must be zero or positive")
        weights[name] = weights.get(name, 0.0) + weight
    total = sum(weights.values())
    if total <= 0:
        raise UsageError(f"{what}: the weights add up to zero")
    return {name: weights.get(name, 0.0) / total for name in allowed if weights.get(name)}


def parse_mix(text: str) -> dict[str, float]:
    """The operation mix (`--mix new=70,upgrade=10,mark=15,return=5`)."""
    return parse_weights(text, OPERATIONS, "--mix")


def parse_clients(text: str) -> dict[str, float]:
    """The client systems (`--clients windows-xp-professional=70,windows-98=30`)."""
    return parse_weights(text, tuple(c.value for c in ClientOS), "--clients")


def parse_fraction(text: str, what: str) -> float:
    """A share between 0 and 1 (`0.2`, or `20%`).

    Raises:
        UsageError: not a number between 0 and 1.
    """
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise UsageError(f"{what} {text!r} is not a number between 0 and 1") from None
    if not 0.0 <= value <= 1.0:
        raise UsageError(f"{what} {text!r} must be between 0 and 1")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadConfig:
    """Everything a worker needs to run its share of a run."""

    target: str
    duration: float
    model: str  # "open" or "closed"
    stages: tuple[Stage, ...] = ()
    start_rate: float = 0.0
    concurrency: int = 0
    agents: int = 10
    seed: int | None = None
    mix: dict[str, float] = field(default_factory=lambda: parse_mix(DEFAULT_MIX))
    ts2000: float = 0.2
    per_user: float = 0.3
    clients: dict[str, float] = field(
        default_factory=lambda: {ClientOS.XP_PRO.value: 0.7, ClientOS.W2000_PRO.value: 0.3}
    )
    connect_rate: float = 200.0  # agents connecting per second, per run
    timeout: float = 10.0  # seconds a request may take before it counts as failed
    max_lag: float = 0.050  # generator lateness bound at p99 (seconds)
    cpu_limit: float | None = 0.95  # CPU share of wall time that marks a generator saturated
    domain: str = "LOAD"
    site: str = DEFAULT_SITE
    devices_kept: int = 64  # licensed devices remembered per agent (per RDP driver: x32)
    rdp_agents: tuple[str, ...] = ()  # full-stack mode: addresses of terminal-server agents
    clock: ClockSource = field(default_factory=ClockSource)  # the deployment's (runtime.args)

    def schedule(self) -> Schedule:
        """The workload model."""
        if self.model == "closed":
            return ClosedSchedule(self.concurrency, self.duration)
        return OpenSchedule(self.stages, start_rate=self.start_rate)

    def describe_model(self) -> str:
        if self.model == "closed":
            return (
                f"closed model: {self.concurrency} concurrent loops "
                "(subject to coordinated omission)"
            )
        if len(self.stages) == 1 and self.start_rate == self.stages[0].target:
            return f"open model: constant arrival rate {self.stages[0].target:g}/s"
        parts = ",".join(f"{s.duration:g}s:{s.target:g}" for s in self.stages)
        return f"open model: ramping arrival rate {parts}"
