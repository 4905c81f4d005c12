"""The lab's deployment-wide virtual clock.

Contract: every lab daemon runs with `--clock-file` (runtime.clock.FileClock). `LabClock`
writes that file: at start a spec beginning at the chosen date and running at `speed`; `jump`
moves the whole deployment forward (never back) in one atomic write, then waits long enough
for every daemon's poll to see it. Scenarios read the same time with `now()`.
"""

from __future__ import annotations

import time
from pathlib import Path

import trio
from tslic.protocol.clock import MS_PER_DAY, ClockSpec, format_date
from tslic.runtime.clock import write_clock_file

PROPAGATION = 0.2  # real seconds for FileClock pollers (50 ms) to pick up a new spec


class LabClock:
    def __init__(self, path: Path, *, start_ms: int, speed: float) -> None:
        self.path = path
        self.speed = speed
        self.spec = ClockSpec(start=start_ms, anchor=time.time(), speed=speed)
        write_clock_file(str(path), self.spec)

    def now(self) -> int:
        return self.spec.at(time.time())

    async def sleep_until(self, virtual_ms: int) -> None:
        """Part of the `Clock` protocol: wait (in real time) until the lab clock reads it."""
        while (left := virtual_ms - self.now()) > 0:  # noqa: ASYNC110 - the spec may jump
            await trio.sleep(min(PROPAGATION, left / 1000 / self.speed))

    def today(self) -> str:
        return format_date(self.now())

    async def jump(self, *, days: float = 0, ms: int = 0) -> None:
        """Move every daemon's clock forward by the given span."""
        target = self.now() + ms + int(days * MS_PER_DAY)
        self.spec = ClockSpec(start=target, anchor=time.time(), speed=self.speed)
        write_clock_file(str(self.path), self.spec)
        await trio.sleep(PROPAGATION)

    async def jump_to(self, when_ms: int) -> None:
        """Move forward to an absolute date (no-op if it is already past)."""
        if when_ms > self.now():
            await self.jump(ms=when_ms - self.now())
