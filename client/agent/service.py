"""The agent daemon: the RDP listener and the background discovery and grace loops.

Contract:
- `Agent.serve(host, port, task_status=...)` binds, reports the bound "host:port", accepts RDP
  clients (Conversation.RDP, the server speaks first: LicenseRequest), and runs until
  `shutdown()` or cancellation. The listener is `runtime.service.Server`, as for every daemon:
  one replay guard for all connections (a frame replayed on another connection is refused
  REPLAYED_MESSAGE, ENV-11), the `Limits` (default `AGENT_LIMITS`: a 60 s idle timeout and
  1,000 connections), accept pacing, per-peer rate limits, the file-descriptor ceiling, and
  graceful shutdown (stop accepting, Goodbye to clients in a session, the others get the
  shutdown grace). Each connection runs `Licensing.converse`; a client's protocol error or
  timeout gets a fatal Error with its code; a failure of ours gets INTERNAL_ERROR (logged).
- Background: discovery at start, then again every `retry_when_none_found` while no server is
  usable, every `rediscovery` otherwise, and a liveness probe of the server in use every
  `liveness_check` (failing over when it stops answering, KB 232520, JSI Tip 8634); grace
  events are checked
  every virtual hour. A StorageError in the background is logged and retried, not fatal.
- The connections to license servers (client/agent/upstream.py) are kept for the agent's
  lifetime and closed with a Goodbye once the listener has drained.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import trio
from tslic.protocol import Conversation
from tslic.protocol.clock import MS_PER_DAY
from tslic.protocol.domain import Connectivity, LicensingMode
from tslic.protocol.errors import StorageError
from tslic.runtime.clock import Clock
from tslic.runtime.service import Limits, Server
from tslic.runtime.session import Session

from .config import AGENT_LIMITS as AGENT_LIMITS
from .config import AgentConfig
from .discovery import LicenseServers
from .events import EventId, EventLog
from .licensing import Licensing
from .state import AgentState

log = logging.getLogger(__name__)

GRACE_CHECK_MS = MS_PER_DAY // 24


def _ms(interval: timedelta) -> int:
    return int(interval.total_seconds() * 1000)


class Agent:
    """One emulated terminal server."""

    conversation = Conversation.RDP

    def __init__(
        self, config: AgentConfig, data_dir: Path, clock: Clock, *, limits: Limits | None = None
    ) -> None:
        self.config = config
        self.clock = clock
        self.state = AgentState.load(
            data_dir,
            name=config.name,
            version=config.version,
            mode=config.mode,
            grace_end=config.grace_end,
        )
        self.events = EventLog(data_dir)
        self.servers = LicenseServers(config, self.state, self.events, clock, on_found=self._found)
        self.licensing = Licensing(config, self.state, self.events, self.servers, clock)
        self.key = self.state.key()
        self.server = Server(self, key=self.key, clock=clock, limits=limits or AGENT_LIMITS)
        if config.mode is LicensingMode.PER_USER and not self.state.per_user_noted:
            self.events.log(EventId.CONVERTED_TO_PER_USER, clock.now())
            self.state.per_user_noted = True
        self.state.mode = config.mode
        self.state.save()

    def _found(self) -> None:
        self.licensing.on_server_found()

    @property
    def errors(self) -> dict[int, int]:
        """Errors sent to RDP clients, by code."""
        return self.server.counters.errors

    def shutdown(self) -> None:
        self.server.shutdown()

    async def converse(self, session: Session) -> None:
        """One RDP client's conversation (the listener's `Conversant`)."""
        await self.licensing.converse(session)

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Bind, report "host:port", serve until shutdown (see the module docstring)."""
        try:
            async with trio.open_nursery() as background:
                background.start_soon(self._discovery_loop)
                background.start_soon(self._grace_loop)
                async with trio.open_nursery() as listener:
                    address = await listener.start(self.server.serve, host, port)
                    task_status.started(address)
                # The listener has drained (shutdown): clients no longer need the loops.
                background.cancel_scope.cancel()
        finally:
            await self.servers.aclose()

    # ---- background -------------------------------------------------------------------------

    async def _discovery_loop(self) -> None:
        intervals = self.config.intervals
        while True:
            try:
                if self.servers.current() is None:
                    if await self.servers.discover() is None:
                        self.licensing.note_no_server()
                    last_full = self.clock.now()
                else:
                    last_full = self.state.last_discovery or self.clock.now()
                while (entry := self.servers.current()) is not None:
                    next_live = self.clock.now() + _ms(intervals.liveness_check)
                    next_full = last_full + _ms(intervals.rediscovery)
                    await self.clock.sleep_until(min(next_live, next_full))
                    if self.clock.now() >= next_full:
                        await self.servers.discover()
                        last_full = self.clock.now()
                    else:
                        await self.servers.probe(entry)
                        if entry.connectivity is not Connectivity.VALID_LS:
                            # Fail over at once (KB 232520, DISC-8), not after the retry interval.
                            self.servers.drop(entry)
                            failed = frozenset({entry.name.casefold()})
                            if await self.servers.discover(exclude=failed) is None:
                                self.licensing.note_no_server()
                            last_full = self.clock.now()
                        self.state.save()
                await self.clock.sleep_until(
                    self.clock.now() + _ms(intervals.retry_when_none_found)
                )
            except StorageError as exc:
                log.error("discovery: %s", exc)
                await self.clock.sleep_until(
                    self.clock.now() + _ms(intervals.retry_when_none_found)
                )

    async def _grace_loop(self) -> None:
        while True:
            try:
                self.licensing.check_grace()
            except StorageError as exc:
                log.error("grace period: %s", exc)
            await self.clock.sleep_until(self.clock.now() + GRACE_CHECK_MS)
