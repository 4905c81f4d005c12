"""One generator: its share of the fleet and of the schedule, measured per second.

Contract:
- `Worker.run()` connects its agents (at its share of the connect rate), calls `on_ready`,
  waits for `start_at` (a trio time, so every worker of a run starts together), runs its share
  of the schedule and returns a `WorkerSummary`. Each finished second is handed to `sink` as
  an `Interval` (bucketed by completion time); `status` gets the connected-agent count.
- Every operation records service time (actual send to reply), schedule lag (intended to
  actual send, including the wait for a free agent), response time (intended to reply) and the
  generator's own dispatch lateness. A refusal counts under its wire code
  (`ServiceError.code`), and so does a broken connection or protocol error
  (`RemoteProtocolError.code`, CONNECTION_LOST) or a request over `timeout` (IDLE_TIMEOUT);
  the run goes on.
- Self-check: the run is *inconclusive* when the generator's dispatch lateness exceeds
  `max_lag` at p99, or when its CPU time reached `cpu_limit` of the wall time (it was
  saturated, so the latencies are partly its own).
- Times come from `trio.current_time()`, so under pytest-trio's autojump clock the whole
  worker runs in virtual time.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio
from tslic.protocol import ConnectionLost, Message, ProtocolError, ServiceError
from tslic.protocol.errors import Timeout, TslicError
from tslic.runtime.clock import Clock

from .config import LoadConfig
from .fleet import Fleet, Operations
from .histograms import Interval, new_histogram
from .rdp_driver import RdpDriver
from .schedule import ClosedSchedule, OpenSchedule, Share


@dataclass(slots=True)
class WorkerSummary:
    """What a generator says about itself at the end."""

    worker: int
    agents: int
    connected: int  # at the start of the schedule; at the end, the most at once
    connect_errors: Counter[int] = field(default_factory=Counter)
    cpu_share: float = 0.0
    cpu_seconds: float = 0.0  # CPU time of the load phase (for the cost per request)
    cpu_system_seconds: float = 0.0  # of which in the kernel (socket calls)
    dispatch_p99_ms: float = 0.0
    inconclusive: list[str] = field(default_factory=list)

    def to_wire(self) -> dict[str, Any]:
        return {
            "worker": self.worker,
            "agents": self.agents,
            "connected": self.connected,
            "connect_errors": {str(k): v for k, v in sorted(self.connect_errors.items())},
            "cpu_share": round(self.cpu_share, 4),
            "cpu_seconds": round(self.cpu_seconds, 4),
            "cpu_system_seconds": round(self.cpu_system_seconds, 4),
            "dispatch_p99_ms": round(self.dispatch_p99_ms, 3),
            "inconclusive": list(self.inconclusive),
        }


async def _start_now() -> float:
    return trio.current_time()


class Worker:
    """One generator process's share of a run."""

    def __init__(
        self,
        config: LoadConfig,
        share: Share,
        clock: Clock,
        *,
        worker_id: int = 0,
        sink: Callable[[Interval], None],
        status: Callable[[int], None] | None = None,
        on_ready: Callable[[int, Counter[int]], None] | None = None,
        start_at: Callable[[], Awaitable[float]] = _start_now,
        connect_rate: float | None = None,
    ) -> None:
        self.config = config
        self.share = share
        self.worker_id = worker_id
        self.schedule = config.schedule()
        self.fleet = Fleet(config, share, clock, connect_rate=connect_rate or config.connect_rate)
        self.ops = Operations(config)
        self.rdp = RdpDriver(config, clock) if config.rdp_agents else None
        self._sink = sink
        self._status = status
        self._on_ready = on_ready
        self._start_at = start_at
        self._current = Interval(0)
        self._dispatch = new_histogram()
        self._start = 0.0

    async def run(self) -> WorkerSummary:
        """Connect, wait for the start, run the schedule, and report."""
        summary = WorkerSummary(self.worker_id, len(self.fleet.profiles), 0)
        async with trio.open_nursery() as outer:
            await outer.start(self.fleet.run)
            # Connecting is bounded: agents still trying when it ends join the run later.
            patience = 30.0 + 3 * len(self.fleet.profiles) / self.fleet.connect_rate
            with trio.move_on_after(patience):
                await self.fleet.wait_tried()
            summary.connected = self.fleet.stats.connected
            if self._on_ready is not None:
                self._on_ready(self.fleet.stats.connected, self.fleet.stats.connect_errors)
            if summary.connected == 0 and self.fleet.profiles:
                outer.cancel_scope.cancel()  # nothing to measure: the caller reports why
                summary.connect_errors = Counter(self.fleet.stats.connect_errors)
                return summary
            self._start = await self._start_at()
            await trio.sleep_until(self._start)
            cpu0, sys0, wall0 = time.process_time(), os.times().system, time.monotonic()
            async with trio.open_nursery() as timing:
                timing.start_soon(self._tick)
                await self._load()
                timing.cancel_scope.cancel()
            wall = time.monotonic() - wall0
            summary.cpu_seconds = time.process_time() - cpu0
            summary.cpu_system_seconds = os.times().system - sys0
            summary.cpu_share = summary.cpu_seconds / wall if wall > 0 else 0.0
            self._flush()
            outer.cancel_scope.cancel()  # disconnect the fleet
        summary.connect_errors = Counter(self.fleet.stats.connect_errors)
        summary.connected = self.fleet.stats.peak
        count = self._dispatch.get_total_count()
        p99 = self._dispatch.get_value_at_percentile(99.0) / 1e6 if count else 0.0
        summary.dispatch_p99_ms = p99 * 1000
        if p99 > self.config.max_lag:
            summary.inconclusive.append(
                f"worker {self.worker_id} fell behind its schedule: dispatch lateness p99 "
                f"{p99 * 1000:.1f} ms > --max-lag {self.config.max_lag * 1000:.0f} ms"
            )
        limit = self.config.cpu_limit
        if limit is not None and summary.cpu_share >= limit:
            summary.inconclusive.append(
                f"worker {self.worker_id} was CPU-saturated ({summary.cpu_share:.0%} of a core "
                f">= {limit:.0%}); add --workers or lower the rate"
            )
        return summary

    # ---- per-second intervals ------------------------------------------------------------

    async def _tick(self) -> None:
        second = 0
        while True:
            await trio.sleep_until(self._start + second + 1)
            if self._status is not None:
                self._status(self.fleet.stats.connected)
            self._emit()
            second += 1
            self._current = Interval(second)

    def _emit(self) -> None:
        if not self._current.is_empty():
            self._sink(self._current)

    def _flush(self) -> None:
        self._emit()
        self._current = Interval(self._current.second + 1)

    # ---- the schedule --------------------------------------------------------------------

    async def _load(self) -> None:
        schedule = self.schedule
        async with trio.open_nursery() as ops:
            if isinstance(schedule, OpenSchedule):
                for k, t in schedule.times(self.share):
                    intended = self._start + t
                    if trio.current_time() < intended:
                        await trio.sleep_until(intended)
                    self._current.scheduled += 1
                    ops.start_soon(self._operate, k, intended, trio.current_time())
            else:
                assert isinstance(schedule, ClosedSchedule)
                for loop in schedule.loops(self.share):
                    ops.start_soon(self._closed_loop, loop)

    async def _closed_loop(self, loop: int) -> None:
        end = self._start + self.config.duration
        n = 0
        while trio.current_time() < end:
            now = trio.current_time()
            self._current.scheduled += 1
            # In a closed loop the next request is intended when the previous one finished.
            await self._operate(loop + n * self.config.concurrency, now, now)
            n += 1

    async def _operate(self, k: int, intended: float, dispatched: float) -> None:
        timeout = self.config.timeout
        reply: Message | None = None
        error: TslicError | None = None
        if self.rdp is not None:
            sent = trio.current_time()
            op, code = await self.rdp.logon(k)
            self._record(op, intended, dispatched, sent, trio.current_time(), code)
            return
        agent = self.fleet.try_acquire()  # the common case, without a cancel scope
        if agent is None:
            with trio.move_on_after(timeout):
                agent = await self.fleet.acquire()
        sent = trio.current_time()
        if agent is None:
            self._record("new", intended, dispatched, sent, sent, int(Timeout.code))
            return
        planned = self.ops.plan(k, agent)
        usable = True
        try:
            with trio.fail_after(timeout):
                reply = await agent.request(planned.message)
        except ServiceError as exc:
            error = exc  # a refusal: the conversation goes on
        except (ProtocolError, ConnectionLost) as exc:
            error, usable = exc, False
        except trio.TooSlowError:
            error, usable = Timeout("no reply in time"), False
        done = trio.current_time()
        outcome = self.ops.settle(planned, reply, error)
        if usable:
            self.fleet.release(agent)
        else:
            agent.mark_broken()
        code = None if error is None else int(error.code)
        self._record(outcome, intended, dispatched, sent, done, code)

    def _record(
        self,
        op: str,
        intended: float,
        dispatched: float,
        sent: float,
        done: float,
        error: int | None,
    ) -> None:
        dispatch = max(0.0, dispatched - intended)
        self._dispatch.record_value(max(1, round(dispatch * 1e6)))
        self._current.record(
            op,
            service=max(0.0, done - sent),
            lag=max(0.0, sent - intended),
            response=max(0.0, done - intended),
            dispatch=dispatch,
            error=error,
        )
