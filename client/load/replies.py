"""The reading half of a load worker: replies, timeouts and dropped connections.

Contract:
- `Replies` is a mixin `Worker` (worker.py) inherits; it keeps no state of its own and
  works on the worker's (declared below). The worker's dispatcher sends request k on an idle
  agent and leaves an `InFlight` record in `agent.pending` and in `_deadlines`; this half
  completes it exactly once: with the reply or refusal read from the agent's socket
  (`_read`), or with the error that ended the connection (`_drop_connection`: a fatal Error,
  a Goodbye, a broken socket, or a request over `timeout` found by `_sweep_timeouts`).
- Completing hands the outcome to `Operations.settle`, records it (`Worker._record`), gives a
  still-usable agent back to the fleet, and tells the schedule (`Worker._finished`). A
  dropped agent is never read or sent on again; its serving task is cancelled and the fleet
  reconnects it.
- Reading: one reader task for every agent (`_read_replies` over a `link.ReadySet`) where
  epoll exists, else a task per agent waiting on its own socket (`_serve_agent`).
This is the generator's hot path with the dispatcher: the split from worker.py moved code
only, so a reply costs the same calls as before.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import trio
from tslic.protocol import ConnectionLost, Message, ServiceError
from tslic.protocol.errors import RemoteProtocolError, Timeout, TslicError
from tslic.protocol.messages import Error, Goodbye

from .config import LoadConfig
from .fleet import Agent, Fleet
from .link import ReadySet
from .operations import Operations, Planned


@dataclass(slots=True)
class InFlight:
    """One request sent and not yet answered."""

    planned: Planned
    intended: float
    dispatched: float
    sent: float
    loop: tuple[int, int] | None  # (closed loop, its request number), or None (open model)
    done: bool = False


class Replies:
    """How a worker's requests end (`Worker` is the worker)."""

    # The worker's state and methods this half uses; `Worker` sets and defines every one.
    config: LoadConfig
    fleet: Fleet
    ops: Operations
    _now: Callable[[], int]
    _ready: ReadySet[Agent] | None
    _in_flight: int
    _deadlines: deque[tuple[float, Agent, InFlight]]
    _record: Callable[[str, float, float, float, float, int | None], None]
    _finished: Callable[[tuple[int, int] | None], None]

    async def _sweep_timeouts(self) -> None:
        """Every tenth of `timeout`, end the connections whose request is overdue, which
        records a Timeout for it. One periodic check instead of a cancel scope
        deadline per request, which costs the generator more than the check (so a request
        times out between 1.0 and 1.1 times `timeout` after it was sent)."""
        period = self.config.timeout / 10
        deadlines = self._deadlines
        while True:
            await trio.sleep(period)
            now = trio.current_time()
            while deadlines and (deadlines[0][2].done or deadlines[0][0] <= now):
                _, agent, flight = deadlines.popleft()
                if not flight.done and agent.pending is flight:
                    self._drop_connection(agent, Timeout("no reply in time"))

    async def _serve_agent(self, agent: Agent) -> None:
        """Keep one connected agent's socket read until the connection must be replaced
        (`_drop_connection`: broken, closed, timed out): by the shared reader
        (`_read_replies`) where there is a `ReadySet`, else by waiting on this socket."""
        assert agent.link is not None
        link, ready = agent.link, self._ready
        with trio.CancelScope() as scope:
            agent.scope = scope
            if ready is not None:
                ready.add(link.fd, agent)
                try:
                    await trio.sleep_forever()
                finally:
                    ready.discard(link.fd)
            else:
                while True:
                    await link.wait_readable()
                    self._read(agent)

    async def _read_replies(self, ready: ReadySet[Agent]) -> None:
        """The one reader of every agent's replies: each wake-up serves all that came."""
        while True:
            for fd in await ready.wait():
                agent = ready.get(fd)
                if agent is not None:
                    self._read(agent)

    def _read(self, agent: Agent) -> None:
        """Complete the requests whose replies wait on `agent`'s socket."""
        if agent.link is None or agent.stream is None:
            return  # dropped in this same scheduler pass (its reader is being cancelled)
        replies, error = agent.link.read_available(agent.stream.conn, self._now)
        for reply in replies:
            if agent.pending is None:
                # Unasked for (a Goodbye, a fatal Error): the server is closing.
                self._drop_connection(agent, None)
                return
            if isinstance(reply, Error):
                if reply.fatal:  # the server ends the conversation (MessageStream's rule)
                    text = f"peer reported: {reply.message}"
                    code, detail = reply.error_code, reply.detail
                    self._drop_connection(
                        agent, RemoteProtocolError(text, code=code, detail=detail)
                    )
                    return
                refusal = ServiceError(reply.message, code=reply.error_code, detail=reply.detail)
                self._complete(agent, None, refusal, usable=True)
            elif isinstance(reply, Goodbye):
                self._drop_connection(agent, ConnectionLost("the server said Goodbye"))
                return
            else:
                self._complete(agent, reply, None, usable=True)
        if error is not None:
            self._drop_connection(agent, error)

    def _drop_connection(self, agent: Agent, error: TslicError | None) -> None:
        """`agent`'s connection must be replaced: its request in flight fails with `error`,
        nothing more is read or sent on it, and the fleet reconnects it."""
        if agent.pending is not None:
            self._complete(agent, None, error or ConnectionLost("connection closed"), False)
        if agent.link is not None and self._ready is not None:
            self._ready.discard(agent.link.fd)
        agent.link = None  # the pool skips it from now on (Fleet._take)
        if agent.scope is not None:
            agent.scope.cancel()

    def _complete(
        self, agent: Agent, reply: Message | None, error: TslicError | None, usable: bool
    ) -> None:
        flight = agent.pending
        assert isinstance(flight, InFlight)  # set by the send this reply answers
        flight.done = True
        agent.pending = None
        self._in_flight -= 1
        done = trio.current_time()
        outcome = self.ops.settle(flight.planned, reply, error)
        code = None if error is None else int(error.code)
        self._record(outcome, flight.intended, flight.dispatched, flight.sent, done, code)
        if usable:
            self.fleet.release(agent)
        self._finished(flight.loop)
