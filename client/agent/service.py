"""The agent daemon: the RDP listener and the background discovery and grace loops.

Contract:
- `Agent.serve(host, port, task_status=...)` binds, reports the bound "host:port", accepts RDP
  clients (Conversation.RDP, the server speaks first: LicenseRequest), and runs until
  `shutdown()` or cancellation. Each connection gets `Licensing.converse`; the client's first
  answer must come within the handshake timeout and each later one within the idle timeout
  (else HANDSHAKE_TIMEOUT / IDLE_TIMEOUT, as a fatal Error). A client's protocol error gets a
  fatal Error with its code; a handler bug is logged and answered INTERNAL_ERROR. Nothing a
  client does stops the daemon; at most `max_connections` are served at once (SERVER_BUSY).
- Background: discovery at start, then again every `retry_when_none_found` while no server is
  usable, every `rediscovery` otherwise, and a liveness probe of the server in use every
  `liveness_check` (failing over when it stops answering, §2.3, §2.5); grace events are checked
  every virtual hour. A StorageError in the background is logged and retried, not fatal.
- Graceful shutdown: stop accepting, say Goodbye to clients, give handlers a grace period.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from functools import partial
from pathlib import Path

import trio
from tslic.protocol import (
    Connection,
    ConnectionLost,
    Conversation,
    Direction,
    ErrorCode,
    ProtocolError,
)
from tslic.protocol.clock import MS_PER_DAY
from tslic.protocol.domain import Connectivity, LicensingMode
from tslic.protocol.errors import StorageError, TslicError
from tslic.protocol.states import SESSION
from tslic.protocol.trio_stream import MessageStream
from tslic.runtime.clock import Clock

from .config import AgentConfig
from .discovery import LicenseServers
from .events import EventId, EventLog
from .licensing import Licensing
from .state import AgentState

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 5.0
GRACE_CHECK_MS = MS_PER_DAY // 24


def _ms(interval: timedelta) -> int:
    return int(interval.total_seconds() * 1000)


class Agent:
    """One emulated terminal server."""

    def __init__(self, config: AgentConfig, data_dir: Path, clock: Clock) -> None:
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
        self._shutdown = trio.Event()
        self._active = 0
        self._streams: set[MessageStream] = set()
        self.errors: dict[int, int] = {}
        if config.mode is LicensingMode.PER_USER and not self.state.per_user_noted:
            self.events.log(EventId.CONVERTED_TO_PER_USER, clock.now())
            self.state.per_user_noted = True
        self.state.mode = config.mode
        self.state.save()

    def _found(self) -> None:
        self.licensing.on_server_found()

    def shutdown(self) -> None:
        self._shutdown.set()

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Bind, report "host:port", serve until shutdown (see the module docstring)."""
        listeners = await trio.open_tcp_listeners(port, host=host)
        sockname = listeners[0].socket.getsockname()
        address = f"{sockname[0]}:{sockname[1]}"
        async with trio.open_nursery() as handlers:
            async with trio.open_nursery() as background:
                background.start_soon(self._discovery_loop)
                background.start_soon(self._grace_loop)
                background.start_soon(
                    partial(trio.serve_listeners, handler_nursery=handlers),
                    self._handle_tcp,
                    listeners,
                )
                task_status.started(address)
                await self._shutdown.wait()
                background.cancel_scope.cancel()  # stop accepting; listeners close
            # Clients in a session are idle (waiting to log off): they hear Goodbye now; those
            # in the middle of licensing get SHUTDOWN_GRACE seconds to finish.
            for stream in list(self._streams):
                if stream.conn.state == SESSION:
                    await stream.aclose(goodbye="the terminal server is shutting down")
            handlers.cancel_scope.deadline = trio.current_time() + SHUTDOWN_GRACE

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
                            # Fail over at once (§2.3, DISC-8), not after the retry interval.
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

    # ---- connections ------------------------------------------------------------------------

    def _count(self, code: ErrorCode) -> None:
        self.errors[int(code)] = self.errors.get(int(code), 0) + 1

    async def _handle_tcp(self, tcp: trio.SocketStream) -> None:
        window = int(300_000 * max(1.0, self.clock.speed))
        conn = Connection(
            conversation=Conversation.RDP,
            our_role=Direction.SERVER,
            key=self.key,
            nonce_source=lambda: os.urandom(16),
            window=window,
        )
        stream = MessageStream(tcp, conn, self.clock.now)
        if self._active >= self.config.max_connections or self._shutdown.is_set():
            self._count(ErrorCode.SERVER_BUSY)
            await self._refuse(stream, ErrorCode.SERVER_BUSY, "too many connections; try later")
            await stream.aclose()
            return
        self._active += 1
        self._streams.add(stream)
        try:
            await self.licensing.converse(stream)
        except ConnectionLost:
            pass
        except trio.TooSlowError:
            code = ErrorCode.HANDSHAKE_TIMEOUT if conn.frames_in == 0 else ErrorCode.IDLE_TIMEOUT
            self._count(code)
            await self._refuse(stream, code, "the client did not answer in time")
        except ProtocolError as exc:
            self._count(exc.code)
            log.info("RDP client: %s", exc)
            await self._refuse(stream, exc.code, exc.message)
        except StorageError as exc:
            self._count(exc.code)
            log.error("RDP client: %s", exc)
            await self._refuse(stream, ErrorCode.INTERNAL_ERROR, "the terminal server failed")
        except TslicError as exc:
            self._count(exc.code)
            log.warning("RDP client: %s", exc)
            await self._refuse(stream, ErrorCode.INTERNAL_ERROR, "the terminal server failed")
        except Exception:
            # A bug must not take the daemon down or leave the client hanging.
            self._count(ErrorCode.INTERNAL_ERROR)
            log.exception("RDP conversation failed")
            await self._refuse(stream, ErrorCode.INTERNAL_ERROR, "internal error (logged)")
        finally:
            self._active -= 1
            self._streams.discard(stream)
            await stream.aclose(goodbye="done")

    async def _refuse(self, stream: MessageStream, code: ErrorCode, text: str) -> None:
        # A fatal Error is legal in any state, including after a protocol error.
        with trio.move_on_after(1, shield=True):
            await stream.send_error(code, text)
