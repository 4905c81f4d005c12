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
- The hot path: the dispatcher signs request k and writes it on an idle agent's socket
  without yielding (`link.Link.send`); one reader (`_read_replies`, over a `link.ReadySet`
  of every agent's socket) reads the replies that came, records them and gives the agents
  back. Closed loops send their next request from there. Timeouts are swept every tenth of
  `timeout` (no cancel scope per request). The reading half (replies, timeouts, dropped
  connections) is client/load/replies.py, a mixin `Worker` inherits; this module runs the
  fleet, the schedule, the sending and the per-second intervals.
- Self-check (`summary.self_check`): dispatch lateness p99 over `max_lag`, or a saturated
  CPU, makes the run inconclusive.
- Times come from `trio.current_time()`, so under pytest-trio's autojump clock the whole
  worker runs in virtual time.
"""

from __future__ import annotations

import gc
import math
import os
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable

import trio
from tslic.protocol import ConnectionLost, ProtocolError
from tslic.protocol.errors import Timeout
from tslic.runtime.clock import Clock

from .config import LoadConfig
from .fleet import Agent, Fleet
from .histograms import Interval, new_histogram
from .link import ReadySet
from .operations import Operations
from .rdp_driver import RdpDriver
from .replies import InFlight, Replies
from .schedule import ClosedSchedule, OpenSchedule, Share
from .summary import WorkerSummary, self_check


async def _start_now() -> float:
    return trio.current_time()


class Worker(Replies):
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
        self.fleet = Fleet(
            config,
            share,
            clock,
            connect_rate=connect_rate or config.connect_rate,
            serve=self._serve_agent,
        )
        self._now = clock.now
        self.ops = Operations(config)
        self.rdp = RdpDriver(config, clock) if config.rdp_agents else None
        self._sink = sink
        self._status = status
        self._on_ready = on_ready
        self._start_at = start_at
        self._current = Interval(0)
        self._dispatch = new_histogram()  # the whole run's, for the self-check
        self._start = 0.0
        self._end = math.inf  # closed model: no request is sent after this instant
        self._in_flight = 0  # sent (or waiting for an agent) and not yet finished
        self._closing = False  # the schedule has sent everything; wait for the in-flight
        self._idle = trio.Event()
        self._waiters: trio.Nursery | None = None
        # (deadline, agent, request) in sending order: the timeout is the same for all, so
        # the oldest is first; `_sweep_timeouts` drops the connections of overdue requests.
        self._deadlines: deque[tuple[float, Agent, InFlight]] = deque()
        self._ready: ReadySet[Agent] | None = None  # set by `run` where epoll exists

    async def run(self) -> WorkerSummary:
        """Connect, wait for the start, run the schedule, and report."""
        summary = WorkerSummary(self.worker_id, len(self.fleet.profiles), 0)
        self._ready = ReadySet() if ReadySet.available() else None
        try:
            return await self._run(summary)
        finally:
            if self._ready is not None:
                self._ready.close()

    async def _run(self, summary: WorkerSummary) -> WorkerSummary:
        async with trio.open_nursery() as outer:
            if self._ready is not None:
                outer.start_soon(self._read_replies, self._ready)
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
            # The connected fleet is long-lived: keep the cyclic collector from rescanning it
            # during the measured phase (it cost the generator ~3% of its CPU).
            gc.freeze()
            cpu0, sys0, wall0 = time.process_time(), os.times().system, time.monotonic()
            async with trio.open_nursery() as timing:
                timing.start_soon(self._tick)
                timing.start_soon(self._sweep_timeouts)
                await self._load()
                timing.cancel_scope.cancel()
            wall = time.monotonic() - wall0
            gc.unfreeze()
            summary.cpu_seconds = time.process_time() - cpu0
            summary.cpu_system_seconds = os.times().system - sys0
            summary.cpu_share = summary.cpu_seconds / wall if wall > 0 else 0.0
            self._flush()
            outer.cancel_scope.cancel()  # disconnect the fleet
        summary.connect_errors = Counter(self.fleet.stats.connect_errors)
        summary.connected = self.fleet.stats.peak
        self_check(summary, self._dispatch, self.config)
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
            self._dispatch.add(self._current.hists["dispatch"])
            self._sink(self._current)

    def _flush(self) -> None:
        self._emit()
        self._current = Interval(self._current.second + 1)

    # ---- the schedule --------------------------------------------------------------------

    async def _load(self) -> None:
        schedule = self.schedule
        if self.rdp is not None:
            await self.rdp.run(
                schedule, self.share, self._start, self._count_scheduled, self._record
            )
            return
        self._closing = False
        async with trio.open_nursery() as waiters:
            self._waiters = waiters
            if isinstance(schedule, OpenSchedule):
                for k, t in schedule.times(self.share):
                    intended = self._start + t
                    if trio.current_time() < intended:
                        await trio.sleep_until(intended)
                    self._dispatch_request(k, intended, trio.current_time(), None)
            else:
                assert isinstance(schedule, ClosedSchedule)
                self._end = self._start + self.config.duration
                for loop in schedule.loops(self.share):
                    self._next_in_loop(loop, 0)
            self._wait_in_flight()
            await self._idle.wait()

    def _wait_in_flight(self) -> None:
        """The schedule is done: `_idle` is set once nothing is in flight."""
        self._closing = True
        if self._in_flight == 0:
            self._idle.set()

    def _next_in_loop(self, loop: int, n: int) -> None:
        """Closed model: loop `loop` sends its request number n, if time is left."""
        now = trio.current_time()
        if now >= self._end:
            return
        # In a closed loop the next request is intended when the previous one finished.
        self._dispatch_request(loop + n * self.config.concurrency, now, now, (loop, n))

    def _dispatch_request(
        self, k: int, intended: float, dispatched: float, loop: tuple[int, int] | None
    ) -> None:
        """Send request k on an idle agent now, or wait for one off the schedule."""
        self._current.scheduled += 1
        agent = self.fleet.try_acquire()
        if agent is not None:
            self._send(agent, k, intended, dispatched, loop=loop)
            return
        # Every agent is busy: the wait counts as schedule lag, and the run waits for it.
        assert self._waiters is not None
        self._in_flight += 1
        self._waiters.start_soon(self._wait_for_agent, k, intended, dispatched, loop)

    async def _wait_for_agent(
        self, k: int, intended: float, dispatched: float, loop: tuple[int, int] | None = None
    ) -> None:
        agent = None
        with trio.move_on_after(self.config.timeout):
            agent = await self.fleet.acquire()
        self._in_flight -= 1
        if agent is None:
            sent = trio.current_time()
            self._record("new", intended, dispatched, sent, sent, int(Timeout.code))
            self._finished(loop)
            return
        self._send(agent, k, intended, dispatched, loop=loop)

    def _send(
        self,
        agent: Agent,
        k: int,
        intended: float,
        dispatched: float,
        *,
        loop: tuple[int, int] | None,
    ) -> None:
        """Sign request k and write it on `agent`'s socket, without yielding: the reply is
        read by the agent's reader task (`_serve_agent`)."""
        planned = self.ops.plan(k, agent)
        sent = trio.current_time()
        flight = InFlight(planned, intended, dispatched, sent, loop)
        agent.pending = flight
        self._in_flight += 1
        assert agent.stream is not None
        assert agent.link is not None
        assert agent.scope is not None
        try:
            agent.link.send(agent.stream.conn.send(planned.message, now=self._now()))
        except (ProtocolError, ConnectionLost) as exc:
            self._drop_connection(agent, exc)
            return
        self._deadlines.append((sent + self.config.timeout, agent, flight))
        if agent.link.blocked:
            assert self._waiters is not None
            self._waiters.start_soon(self._flush_link, agent)

    async def _flush_link(self, agent: Agent) -> None:
        link = agent.link
        try:
            if link is not None:
                await link.flush()
        except ConnectionLost as exc:
            if agent.link is link:
                self._drop_connection(agent, exc)

    def _finished(self, loop: tuple[int, int] | None) -> None:
        if loop is not None:
            self._next_in_loop(loop[0], loop[1] + 1)
        if self._closing and self._in_flight == 0:
            self._idle.set()

    def _count_scheduled(self) -> None:
        self._current.scheduled += 1

    def _record(
        self,
        op: str,
        intended: float,
        dispatched: float,
        sent: float,
        done: float,
        error: int | None,
    ) -> None:
        self._current.record(
            op,
            service=max(0.0, done - sent),
            lag=max(0.0, sent - intended),
            response=max(0.0, done - intended),
            dispatch=max(0.0, dispatched - intended),
            error=error,
        )
