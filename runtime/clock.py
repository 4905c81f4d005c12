"""Clocks that every daemon and tool reads: the one place real time is read.

Contract: a `Clock` gives virtual milliseconds since the epoch (`now()`) and sleeps until a
virtual instant (`sleep_until`). Three kinds:
- `WallClock(spec)`: real time through a `ClockSpec` (start date, speed, real anchor). Separate
  processes given the same spec agree on the virtual date; this is what daemons use.
- `TrioClock(start, speed)`: follows `trio.current_time()`, so under pytest-trio's
  `autojump_clock` months pass instantly and deterministically; what in-process tests use.
- `ManualClock(start)`: moved only by `advance()`; for pure tests of timed logic.
"""

from __future__ import annotations

import time
from typing import Protocol

import trio
from tslic.protocol.clock import MS_PER_DAY, ClockSpec, ClockView
from tslic.protocol.errors import ServiceError


class Clock(Protocol):
    speed: float

    def now(self) -> int:
        """Virtual milliseconds since the Unix epoch."""
        ...

    async def sleep_until(self, virtual_ms: int) -> None:
        """Return once the virtual clock reads at least `virtual_ms`."""
        ...


def real_seconds_for(clock: Clock, virtual_ms: int) -> float:
    """Real seconds that `virtual_ms` of virtual time take on `clock`."""
    return max(0.0, virtual_ms / 1000 / clock.speed)


class WallClock:
    """Virtual time computed from the machine's real clock and a `ClockSpec`."""

    def __init__(self, spec: ClockSpec | None = None) -> None:
        self.spec = spec or ClockSpec()
        self.speed = self.spec.speed

    @classmethod
    def starting(cls, start_ms: int | None, speed: float = 1.0) -> WallClock:
        """A clock that reads `start_ms` now and runs at `speed` (None: real time)."""
        if start_ms is None:
            return cls(ClockSpec(speed=1.0))
        return cls(ClockSpec(start=start_ms, anchor=time.time(), speed=speed))

    def now(self) -> int:
        return self.spec.at(time.time())

    async def sleep_until(self, virtual_ms: int) -> None:
        # A loop, not one sleep: the conversion rounds, and we must not wake early.
        while (left := virtual_ms - self.now()) > 0:  # noqa: ASYNC110
            await trio.sleep(real_seconds_for(self, left))


class TrioClock:
    """Virtual time that follows Trio's clock (and so `MockClock`/`autojump_clock`)."""

    def __init__(self, start_ms: int, speed: float = 1.0) -> None:
        self.speed = speed
        self._start = start_ms
        self._origin = trio.current_time()

    def now(self) -> int:
        return self._start + int((trio.current_time() - self._origin) * self.speed * 1000)

    async def sleep_until(self, virtual_ms: int) -> None:
        # A loop, not one sleep: the conversion rounds, and we must not wake early.
        while (left := virtual_ms - self.now()) > 0:  # noqa: ASYNC110
            await trio.sleep(real_seconds_for(self, left))


class ManualClock:
    """A clock moved only by `advance()`. `sleep_until` parks until then."""

    def __init__(self, start_ms: int) -> None:
        self.speed = 1.0
        self._now = start_ms
        self._moved = trio.Event()

    def now(self) -> int:
        return self._now

    def advance(self, *, days: float = 0, ms: int = 0) -> None:
        self._now += ms + int(days * MS_PER_DAY)
        self._moved.set()
        self._moved = trio.Event()

    async def sleep_until(self, virtual_ms: int) -> None:
        while self._now < virtual_ms:
            await self._moved.wait()


SETTLE = 5.0
"""Real seconds a clock that follows a file still accepts timestamps under the spec it left
(CLOCK-3): long enough for every process of the deployment to poll the file (50 ms) and for
the frames in flight at the change to arrive."""


class FileClock(WallClock):
    """A `WallClock` whose spec can be moved forward by rewriting a shared file.

    The lab (and `tslic clock`) moves every daemon with one atomic write of a new spec
    (docs/CLOCK.md). Daemons poll the file (`watch`, run in their nursery) every `poll` real
    seconds. Virtual time never goes backwards: a spec that would make it is ignored, and so
    is a damaged file. A `FileClock` is also a `ClockView` (CLOCK-3): for `SETTLE` real seconds
    after adopting a new spec it reports readings under the old one (`recent`), and
    `reread` polls the file at once, so that processes that see a change a moment apart do
    not refuse each other's timestamps.

    Raises (constructor):
        ServiceError: the file holds no valid spec (INVALID_FIELD).
    """

    def __init__(self, path: str, *, poll: float = 0.05) -> None:
        self.path = path
        self.poll = poll
        self._stamp: tuple[int, int] = (-1, -1)
        self._left: list[tuple[ClockSpec, float]] = []  # (spec left, real time to forget it)
        self._watchers = 0  # `watch` tasks running: sleepers then wait for `_changed`
        self._changed: trio.Event | None = None  # set (and dropped) when a new spec is adopted
        super().__init__(self._read() or ClockSpec())
        self._next_poll = time.time() + poll

    def now(self) -> int:
        # Polled here too, at most every `poll` real seconds: a tool that runs no `watch`
        # task (tslic admin, load) still follows a change of the file within one poll.
        real = time.time()
        if real >= self._next_poll:
            self._next_poll = real + self.poll
            self.refresh()
        return self.spec.at(real)

    def _read(self) -> ClockSpec | None:
        import os

        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_ino)
            if stamp == self._stamp:
                return None
            with open(self.path, encoding="utf-8") as handle:
                text = handle.read().strip()
            self._stamp = stamp
            return ClockSpec.from_arg(text) if text else None
        except OSError:
            return None

    def refresh(self) -> None:
        """Adopt the file's spec if it changed and does not move time backwards."""
        try:
            spec = self._read()
        except ServiceError:
            return  # a damaged file (a hand edit in progress): keep the clock we have
        real = time.time()
        if spec is not None and spec != self.spec and spec.at(real) >= self.spec.at(real):
            self._left.append((self.spec, real + SETTLE))
            self.spec = spec
            self.speed = spec.speed
            if self._changed is not None:
                self._changed.set()
                self._changed = None

    def recent(self) -> tuple[int, ...]:
        if not self._left:
            return ()
        real = time.time()
        self._left = [(spec, until) for spec, until in self._left if until > real]
        return tuple(spec.at(real) for spec, _ in self._left)

    def reread(self) -> int:
        self.refresh()
        return self.now()

    async def watch(self, until: trio.Event | None = None) -> None:
        """Poll the clock file until `until` is set (forever without one)."""
        stop = until if until is not None else trio.Event()
        self._watchers += 1
        try:
            while not stop.is_set():
                with trio.move_on_after(self.poll):
                    await stop.wait()
                self.refresh()
        finally:
            self._watchers -= 1
            if not self._watchers and self._changed is not None:
                self._changed.set()  # parked sleepers go back to polling for themselves
                self._changed = None

    async def sleep_until(self, virtual_ms: int) -> None:
        # A jump of the shared clock must wake sleepers promptly. While a `watch` task polls
        # the file, a sleeper parks until its instant or until a new spec is adopted (one
        # poll loop per process, not one per sleeper: an idle daemon of the lab woke 40
        # times a second); without one it naps `poll` seconds and polls through `now()`.
        while (left := virtual_ms - self.now()) > 0:
            if self._watchers:
                if self._changed is None:
                    self._changed = trio.Event()
                with trio.move_on_after(real_seconds_for(self, left)):
                    await self._changed.wait()
            else:
                await trio.sleep(min(self.poll, real_seconds_for(self, left)))


def clock_view(clock: Clock) -> ClockView | None:
    """The `ClockView` to give a `Connection` on `clock` (None unless it follows a file)."""
    return clock if isinstance(clock, FileClock) else None


def write_clock_file(path: str, spec: ClockSpec) -> None:
    """Atomically publish a clock spec for `FileClock`s to pick up."""
    import os

    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(spec.to_arg() + "\n")
    os.replace(tmp, path)
