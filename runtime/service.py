"""Serving a conversation over TCP, with limits and graceful shutdown.

Contract:
- Two shapes of service: a `Service` answers a Hello and then requests (every request/reply
  conversation); a `Conversant` (runtime/session.py) opens the conversation itself and
  drives it (the agent's RDP licensing: the server speaks first). Both get the same replay
  guard shared by all connections, limits, accept pacing, per-peer rate limits, descriptor
  ceiling and graceful shutdown; the Limits themselves are runtime/limits.py.
- `serve(service, limits, ...)` is Trio-shaped: run it with `nursery.start`; it binds, calls
  `task_status.started(address)` and serves until cancelled or until `shutdown` is set.
- Each connection: a Hello within `handshake_timeout` (else HANDSHAKE_TIMEOUT), then requests,
  each within `idle_timeout` of the last (else IDLE_TIMEOUT). `service.on_hello` returns the
  Welcome or raises `ServiceError` (sent as an Error; the conversation ends). Each request goes
  to `service.handle`; a `ServiceError` becomes an Error refusal and the conversation goes on.
- A peer's protocol error gets a fatal Error naming its code, then the connection is closed;
  other connections are unaffected. An unexpected exception in a handler is logged and
  answered with INTERNAL_ERROR: the daemon stays up.
- Limits: at most `max_connections` at once, capped by the open-files limit less a reserve
  (`fdlimit.connection_ceiling`; the next is told SERVER_BUSY and closed at once, so nothing
  waits in the accept queue and accept() does not run out of descriptors); new connections
  accepted at most `accept_rate` a second (a flood waits in the kernel's backlog, not in our
  event loop); per-peer-key request rate (token bucket; RATE_LIMITED refusal); frame size.
- Graceful shutdown (the hypercorn pattern): on `shutdown`, stop accepting, tell idle peers
  Goodbye, and give busy handlers `grace` seconds before they are cancelled; a peer whose
  request is cancelled that way is told SHUTTING_DOWN (fatal) before the connection closes.
This module is the listener (binding, accepting, pacing, admitting, shutting down); each
connection's conversation is runtime/conversing.py, which `Server` inherits; `Peer`,
`Service` and `Counters` are runtime/service_types.py, and all three are importable from here.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Callable, Mapping

import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.protocol import (
    Connection,
    ConnectionLost,
    Conversation,
    Direction,
    ErrorCode,
    ProtocolError,
)
from tslic.protocol.envelope import ReplayGuard

from .clock import Clock, clock_view
from .conversing import Conversing
from .fdlimit import connection_ceiling
from .limits import Limits as Limits
from .limits import RateLimiter
from .listen import open_listeners
from .service_types import Counters as Counters
from .service_types import Peer as Peer
from .service_types import Service as Service
from .session import Conversant
from .stream import MessageStream

log = logging.getLogger(__name__)

# accept() errors that mean "out of resources for now", not a broken listener (as in trio).
_ACCEPT_CAPACITY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}


class Server(Conversing):
    """One listening conversation. `serve` runs it; `shutdown()` winds it down."""

    def __init__(
        self,
        service: Service | Conversant,
        *,
        key: Ed25519PrivateKey,
        clock: Clock,
        limits: Limits | None = None,
        on_error: Callable[[ErrorCode], None] | None = None,
        more_services: Mapping[Conversation, Service] | None = None,
    ) -> None:
        self.service = service
        # A server-first conversation (the agent's RDP licensing) or request/reply.
        self._conversant = service if isinstance(service, Conversant) else None
        # Other conversations served on the same port, chosen by the Hello's `conversation`.
        # Every request/reply conversation has the same START -> HELLO_SENT step, so the
        # Hello decodes under the default service's conversation and the connection then
        # switches to the one it names (see _service_for).
        self.more_services: dict[Conversation, Service] = dict(more_services or {})
        self.key = key
        self.clock = clock
        self.limits = limits or Limits()
        self.counters = Counters()
        self._on_error = on_error
        window = int(self.limits.window_real_seconds * 1000 * max(1.0, clock.speed))
        self.guard = ReplayGuard(window=window)
        self._window = window
        self._shutdown = trio.Event()
        self.rate = RateLimiter(self.limits.rate_per_second, self.limits.rate_burst)
        self._accept_tokens = max(1.0, self.limits.accept_burst)
        self._accept_stamp = 0.0
        # Idle connections' receive scopes: shutdown cancels them, and each handler then
        # says Goodbye itself (only the task that reads a stream may drain it).
        self._idle: dict[MessageStream, trio.CancelScope] = {}
        # Each connection holds a descriptor: past the process's limit accept() would fail
        # (EMFILE) and peers would wait in the kernel's queue; refuse them ourselves first.
        self.max_connections = connection_ceiling(self.limits.max_connections)
        if self.max_connections < self.limits.max_connections:
            log.warning(
                "serving at most %d connections (max_connections %d does not fit the"
                " open-files limit)",
                self.max_connections,
                self.limits.max_connections,
            )

    def shutdown(self) -> None:
        self._shutdown.set()

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Bind, report the bound "host:port", serve until shutdown or cancellation."""
        listeners = await open_listeners(host, port)
        sockname = listeners[0].socket.getsockname()
        address = f"{sockname[0]}:{sockname[1]}"
        async with trio.open_nursery() as handlers:
            async with trio.open_nursery() as acceptors:
                acceptors.start_soon(self._accept, listeners, handlers)
                task_status.started(address)
                await self._shutdown.wait()
                acceptors.cancel_scope.cancel()  # stop accepting; listeners close
            for scope in list(self._idle.values()):  # idle peers hear Goodbye now
                scope.cancel()
            handlers.cancel_scope.deadline = trio.current_time() + self.limits.shutdown_grace

    async def _accept(self, listeners: list[trio.SocketListener], handlers: trio.Nursery) -> None:
        async with trio.open_nursery() as nursery:
            for listener in listeners:
                nursery.start_soon(self._accept_from, listener, handlers)

    async def _accept_from(self, listener: trio.SocketListener, handlers: trio.Nursery) -> None:
        """trio.serve_listeners, paced: at most `accept_rate` new connections a second (burst
        `accept_burst`). Under a connection flood the excess waits in the kernel's backlog
        instead of taking the event loop from the peers already being served."""
        async with listener:
            while True:
                try:
                    tcp = await listener.accept()
                except OSError as exc:
                    if exc.errno not in _ACCEPT_CAPACITY_ERRNOS:
                        raise
                    # Out of file descriptors or memory: wait for connections to close.
                    log.error("accept failed (%s); pausing 100 ms", exc)
                    await trio.sleep(0.1)
                    continue
                handlers.start_soon(self._run_handler, tcp)
                await self._pace_accepts()

    async def _run_handler(self, tcp: trio.SocketStream) -> None:
        try:
            await self._handle_tcp(tcp)
        finally:
            await trio.aclose_forcefully(tcp)  # every path closes, refusals included

    async def _pace_accepts(self) -> None:
        rate = self.limits.accept_rate
        if rate <= 0:
            return
        now = trio.current_time()
        burst = max(1.0, self.limits.accept_burst)
        self._accept_tokens = min(burst, self._accept_tokens + (now - self._accept_stamp) * rate)
        self._accept_stamp = now
        if self._accept_tokens < 1:
            await trio.sleep((1 - self._accept_tokens) / rate)
            self._accept_tokens = 1.0
            self._accept_stamp = trio.current_time()
        self._accept_tokens -= 1

    async def _handle_tcp(self, tcp: trio.abc.HalfCloseableStream) -> None:
        # A trio.SocketStream, or a wrapper of one that keeps its `socket` (tests watch the
        # bytes that way).
        sock: object = getattr(tcp, "socket", None)
        peer_addr = "?"
        if isinstance(sock, trio.socket.SocketType):
            with contextlib.suppress(OSError):  # the peer is gone: the handshake finds out
                peer_addr = "{}:{}".format(*sock.getpeername()[:2])
        conn = Connection(
            conversation=self.service.conversation,
            our_role=Direction.SERVER,
            key=self.key,
            nonce_source=lambda: os.urandom(16),
            replay_guard=self.guard,
            window=self._window,
            max_frame=self.limits.max_frame,
            clock_view=clock_view(self.clock),
        )
        stream = MessageStream(tcp, conn, self.clock.now)
        if self.counters.active >= self.max_connections or self._shutdown.is_set():
            self.counters.refused_busy += 1
            self._count(ErrorCode.SERVER_BUSY)
            await self._refuse(stream, ErrorCode.SERVER_BUSY, "too many connections; try later")
            return
        self.counters.accepted += 1
        self.counters.active += 1
        try:
            if self._conversant is not None:
                await self._converse_first(self._conversant, stream, peer_addr)
            else:
                await self._converse(stream, peer_addr)
        except ConnectionLost:
            pass
        except ProtocolError as exc:
            self._count(exc.code)
            log.info("peer %s: %s", peer_addr, exc)
            await self._refuse(stream, exc.code, exc.message, exc.detail)
        except trio.Cancelled:
            # The shutdown grace ran out with this peer's request still in hand: tell it so
            # (a documented, fatal SHUTTING_DOWN) rather than resetting the connection.
            if self._shutdown.is_set():
                self._count(ErrorCode.SHUTTING_DOWN)
                await self._refuse(
                    stream, ErrorCode.SHUTTING_DOWN, "the service is shutting down; retry later"
                )
            raise
        finally:
            self.counters.active -= 1
            self._idle.pop(stream, None)
            await stream.aclose()
