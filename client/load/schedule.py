"""Workload models: when each request is *meant* to be sent. Pure: no I/O, no clock.

Contract:
- Durations are written like k6's: `30s`, `500ms`, `2m`, `1h`, `1m30s`; a bare number is
  seconds. `parse_duration` and `parse_stages` raise `UsageError` with a readable message.
- `OpenSchedule` is the open model: requests arrive at a rate that follows `stages`, linear
  ramps between targets starting from `start_rate` (`--rate R` is one flat stage). Request k
  (k = 0, 1, ...) is intended at the instant t where the integral of the rate from 0 to t
  equals k. Intended times come from the schedule alone, never from when an earlier request
  finished: that is what keeps a stalling server from hiding (coordinated omission).
- `ClosedSchedule` is the closed model: `concurrency` loops, each sending its next request when
  its previous reply arrived, for `duration` seconds. It is subject to coordinated omission by
  construction; the report says so.
- `Share(offset, stride)` names the requests (and agents, and closed loops) one generator owns:
  the indices k with k % stride == offset. `split(n)` partitions a share exactly, so shards
  across machines and workers inside a shard together own each index exactly once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import UsageError

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Seconds in a duration such as `30s`, `500ms`, `1m30s` or `2.5` (seconds).

    Raises:
        UsageError: the text is not a positive duration.
    """
    cleaned = text.strip().lower()
    try:
        value = float(cleaned)
    except ValueError:
        pos, value = 0, 0.0
        for match in _PART.finditer(cleaned):
            if match.start() != pos:
                break
            value += float(match.group(1)) * _UNITS[match.group(2)]
            pos = match.end()
        if pos != len(cleaned) or not cleaned:
            raise UsageError(
                f"{text!r} is not a duration; write it like 30s, 500ms, 2m or 1m30s"
            ) from None
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"duration {text!r} must be zero or positive")
    return value


@dataclass(frozen=True, slots=True)
class Stage:
    """Ramp linearly to `target` requests per second over `duration` seconds."""

    duration: float
    target: float


def parse_stages(text: str) -> tuple[Stage, ...]:
    """`30s:100,60s:2000,30s:0` as stages.

    Raises:
        UsageError: a stage is not DURATION:RATE, a rate is negative, or the total is zero.
    """
    stages = []
    for part in text.split(","):
        duration, sep, rate = part.strip().partition(":")
        if not sep:
            raise UsageError(f"stage {part.strip()!r} is not DURATION:RATE (for example 30s:100)")
        try:
            target = float(rate)
        except ValueError:
            raise UsageError(f"stage {part.strip()!r}: {rate!r} is not a rate") from None
        if not math.isfinite(target) or target < 0:
            raise UsageError(f"stage {part.strip()!r}: the rate must be zero or positive")
        stages.append(Stage(parse_duration(duration), target))
    if sum(s.duration for s in stages) <= 0:
        raise UsageError("the stages add up to no time at all")
    return tuple(stages)


@dataclass(frozen=True, slots=True)
class Share:
    """The indices k with k % stride == offset."""

    offset: int = 0
    stride: int = 1

    def __post_init__(self) -> None:
        if self.stride < 1 or not 0 <= self.offset < self.stride:
            raise UsageError(f"share {self.offset}/{self.stride} is not a valid share")

    def owns(self, k: int) -> bool:
        return k % self.stride == self.offset

    def split(self, n: int) -> list[Share]:
        """n disjoint shares whose union is this one."""
        if n < 1:
            raise UsageError("cannot split a share into fewer than one part")
        return [Share(self.offset + w * self.stride, self.stride * n) for w in range(n)]

    def count_of(self, total: int) -> int:
        """How many of the indices 0..total-1 this share owns."""
        return max(0, (total - self.offset + self.stride - 1) // self.stride)


def parse_shard(text: str) -> Share:
    """`i/n` (0 <= i < n) as a share.

    Raises:
        UsageError: it is not i/n with 0 <= i < n.
    """
    index, sep, count = text.partition("/")
    if not sep or not index.strip().isdigit() or not count.strip().isdigit():
        raise UsageError(f"--shard {text!r} must be i/n, for example 0/2 for the first of two")
    i, n = int(index), int(count)
    if n < 1 or i >= n:
        raise UsageError(f"--shard {text!r}: i must be between 0 and n-1")
    return Share(i, n)


class OpenSchedule:
    """The open model: an arrival rate that follows linear ramps."""

    kind = "open"

    def __init__(self, stages: tuple[Stage, ...], *, start_rate: float = 0.0) -> None:
        if not stages:
            raise UsageError("an open schedule needs at least one stage")
        self.stages = stages
        self.start_rate = start_rate
        self.duration = sum(s.duration for s in stages)
        # (start time, start rate, end rate, duration, count before) for each stage
        self._segments: list[tuple[float, float, float, float, float]] = []
        t, rate, before = 0.0, start_rate, 0.0
        for stage in stages:
            self._segments.append((t, rate, stage.target, stage.duration, before))
            before += (rate + stage.target) / 2 * stage.duration
            t += stage.duration
            rate = stage.target
        self._expected = before

    @classmethod
    def constant(cls, rate: float, duration: float) -> OpenSchedule:
        """`--rate R --duration D`."""
        if not math.isfinite(rate) or rate <= 0:
            raise UsageError(f"--rate {rate} must be a positive number of requests per second")
        if duration <= 0:
            raise UsageError("--duration must be longer than zero")
        return cls((Stage(duration, rate),), start_rate=rate)

    def rate_at(self, t: float) -> float:
        """The target arrival rate at `t` seconds after the start."""
        for start, r0, r1, d, _ in self._segments:
            if start <= t < start + d:
                return r0 + (r1 - r0) * (t - start) / d
        return self._segments[-1][2] if t >= self.duration else self.start_rate

    def total(self) -> int:
        """How many requests the whole schedule sends (index k is sent iff k < integral)."""
        return max(0, math.ceil(self._expected - 1e-9))

    def target_in(self, second: int) -> float:
        """Expected requests intended in [second, second + 1): the target rate there."""
        return self._cumulative(min(second + 1, self.duration)) - self._cumulative(
            min(second, self.duration)
        )

    def _cumulative(self, t: float) -> float:
        for start, r0, r1, d, before in self._segments:
            if t <= start + d:
                s = max(0.0, t - start)
                slope = (r1 - r0) / d if d else 0.0
                return before + r0 * s + slope * s * s / 2
        return self._expected

    def times(self, share: Share = Share()) -> Iterator[tuple[int, float]]:
        """(k, intended seconds after the start) for each request k of `share`, in order."""
        total = self.total()
        k = share.offset
        segments = iter(self._segments)
        segment = next(segments, None)
        while k < total and segment is not None:
            start, r0, r1, d, before = segment
            if k >= before + (r0 + r1) / 2 * d - 1e-9 and d > 0:
                segment = next(segments, None)
                continue
            if d == 0:
                segment = next(segments, None)
                continue
            a = (r1 - r0) / (2 * d)
            dk = k - before
            root = r0 * r0 + 4 * a * dk
            denominator = r0 + math.sqrt(max(0.0, root))
            s = 2 * dk / denominator if denominator > 0 else 0.0
            yield k, start + min(s, d)
            k += share.stride


class ClosedSchedule:
    """The closed model: `concurrency` loops for `duration` seconds."""

    kind = "closed"

    def __init__(self, concurrency: int, duration: float) -> None:
        if concurrency < 1:
            raise UsageError("--concurrency must be at least 1")
        if duration <= 0:
            raise UsageError("--duration must be longer than zero")
        self.concurrency = concurrency
        self.duration = duration

    def loops(self, share: Share = Share()) -> list[int]:
        """The loop numbers `share` runs."""
        return [j for j in range(self.concurrency) if share.owns(j)]


Schedule = OpenSchedule | ClosedSchedule
