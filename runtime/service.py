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
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import ParamSpec, Protocol, TypeVar, cast

import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.protocol import (
    Connection,
    ConnectionLost,
    Conversation,
    Direction,
    ErrorCode,
    Message,
    ProtocolError,
    ServiceError,
    TslicError,
)
from tslic.protocol.envelope import ReplayGuard
from tslic.protocol.messages import Error, Goodbye, Hello, Welcome, describe
from tslic.protocol.states import next_state

from .clock import Clock, clock_view
from .fdlimit import connection_ceiling
from .limits import Limits as Limits
from .limits import RateLimiter
from .listen import open_listeners
from .session import Closing, Conversant, Session
from .stream import MessageStream

log = logging.getLogger(__name__)

_P = ParamSpec("_P")
_R = TypeVar("_R")

# accept() errors that mean "out of resources for now", not a broken listener (as in trio).
_ACCEPT_CAPACITY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}


@dataclass(slots=True)
class Peer:
    """What a handler knows about the other end of one connection."""

    address: str
    key: bytes
    hello: Hello
    state: dict[str, object] = field(default_factory=dict)  # the service's, per connection


class Service(Protocol):
    """A daemon's request handlers for one conversation."""

    conversation: Conversation

    async def on_hello(self, peer: Peer) -> Welcome: ...

    async def handle(self, peer: Peer, request: Message) -> Message: ...


@dataclass(slots=True)
class Counters:
    """Connection-level counts for status pages and metrics."""

    accepted: int = 0
    refused_busy: int = 0
    active: int = 0
    errors: dict[int, int] = field(default_factory=dict)

    def error(self, code: ErrorCode) -> None:
        self.errors[int(code)] = self.errors.get(int(code), 0) + 1


class Server:
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

    @property
    def shutting_down(self) -> bool:
        return self._shutdown.is_set()

    def count(self, code: ErrorCode) -> None:
        """Count an Error sent (status pages and metrics)."""
        self.counters.error(code)
        if self._on_error is not None:
            self._on_error(code)

    _count = count

    def idle_while(self, stream: MessageStream, scope: trio.CancelScope) -> None:
        """`stream` waits for nothing but its peer: a shutdown cancels `scope` (at once if
        it has begun), and the conversation's handler then says Goodbye itself."""
        self._idle[stream] = scope
        if self._shutdown.is_set():
            scope.cancel()

    def busy_again(self, stream: MessageStream) -> None:
        self._idle.pop(stream, None)

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

    async def _refuse(
        self,
        stream: MessageStream,
        code: ErrorCode,
        text: str,
        detail: Mapping[str, object] | None = None,
    ) -> None:
        # The detail travels too (MSG-1: an INVALID_FIELD names its field in detail.field).
        with trio.move_on_after(1, shield=True):
            await stream.send_error(code, text, **{k: str(v) for k, v in (detail or {}).items()})

    async def _converse(self, stream: MessageStream, peer_addr: str) -> None:
        with trio.move_on_after(self.limits.handshake_timeout) as scope:
            first = await stream.receive()
        if scope.cancelled_caught:
            self._count(ErrorCode.HANDSHAKE_TIMEOUT)
            await self._refuse(stream, ErrorCode.HANDSHAKE_TIMEOUT, "no Hello in time")
            return
        assert isinstance(first, Hello)  # the state table admits nothing else first
        assert stream.conn.peer_key is not None
        peer = Peer(address=peer_addr, key=stream.conn.peer_key, hello=first)
        service = self._service_for(stream, first)
        if service is None:  # §5.1, MSG-11: the Hello names a conversation not served here
            served = ", ".join(sorted({self.service.conversation, *self.more_services}))
            self._count(ErrorCode.UNSUPPORTED_CONVERSATION)
            await self._refuse(
                stream,
                ErrorCode.UNSUPPORTED_CONVERSATION,
                f"this port serves {served}, not {first.conversation}; connect to the"
                f" daemon that serves {first.conversation}",
                {"served": served},
            )
            return
        try:
            welcome = await self._call(service.on_hello, peer)
        except ServiceError as exc:
            self._count(exc.code)
            await self._refuse(stream, exc.code, exc.message, exc.detail)
            return
        await stream.send(welcome)
        while True:
            with trio.move_on_after(self.limits.idle_timeout) as scope:
                self._idle[stream] = scope
                if self._shutdown.is_set():
                    scope.cancel()
                request = await stream.receive()
            self._idle.pop(stream, None)
            if scope.cancelled_caught and self._shutdown.is_set():
                await stream.aclose(goodbye="the service is shutting down")
                return
            if scope.cancelled_caught:
                self._count(ErrorCode.IDLE_TIMEOUT)
                await self._refuse(stream, ErrorCode.IDLE_TIMEOUT, "idle for too long")
                return
            if isinstance(request, Goodbye):
                return
            if not self._take_token(peer.key):
                self._count(ErrorCode.RATE_LIMITED)
                await stream.send(_refusal(ErrorCode.RATE_LIMITED, "too many requests; slow down"))
                continue
            try:
                with trio.fail_after(self.limits.request_timeout):
                    reply = await self._call(service.handle, peer, request)
            except ServiceError as exc:
                self._count(exc.code)
                reply = _refusal(_refusal_code(exc.code), exc.message, exc.detail)
            except trio.TooSlowError:
                self._count(ErrorCode.INTERNAL_ERROR)
                reply = _refusal(ErrorCode.INTERNAL_ERROR, "the request took too long")
            if not _may_answer(stream, reply):
                # A handler bug (a reply the state table does not allow here) is ours, not
                # the peer's: log it and answer INTERNAL_ERROR instead of an ILLEGAL_STATE
                # that would blame the client.
                log.error("handler answered %s with %s", describe(request), describe(reply))
                self._count(ErrorCode.INTERNAL_ERROR)
                reply = _refusal(ErrorCode.INTERNAL_ERROR, "internal error in the service (logged)")
            await stream.send(reply)
            if isinstance(reply, Error) and reply.fatal:
                return
            if self._shutdown.is_set():
                await stream.aclose(goodbye="the service is shutting down")
                return

    async def _converse_first(
        self, conversant: Conversant, stream: MessageStream, peer_addr: str
    ) -> None:
        """Run a server-first conversation (runtime/session.py); translate its endings."""
        try:
            await conversant.converse(Session(self, stream, peer_addr))
        except Closing:
            await stream.aclose(goodbye="the service is shutting down")
            return
        except (ProtocolError, ConnectionLost):
            raise  # the peer's fault or gone: _handle_tcp answers or just closes
        except TslicError as exc:
            if exc.code.closes_connection:  # a timeout, or a limit that ends the conversation
                self._count(exc.code)
                await self._refuse(stream, exc.code, exc.message, exc.detail)
                return
            log.error("peer %s: %s", peer_addr, exc)
            await self._failed(stream, "the service failed (logged)")
            return
        except Exception:
            # A bug must not take the daemon down or leave the peer hanging.
            log.exception("conversation with %s failed", peer_addr)
            await self._failed(stream, "internal error (logged)")
            return
        # Over: a Goodbye where the state allows one (after an abort, or before a logon).
        await stream.aclose(goodbye="done")

    async def _failed(self, stream: MessageStream, text: str) -> None:
        """Our failure in a server-first conversation: INTERNAL_ERROR where its state table
        allows a refusal; the RDP table has only fatal Errors, so there the connection just
        closes (the peer sees the conversation end; the log says why)."""
        refusal = _refusal(ErrorCode.INTERNAL_ERROR, text)
        if _may_answer(stream, refusal):
            self._count(ErrorCode.INTERNAL_ERROR)
            await self._refuse(stream, ErrorCode.INTERNAL_ERROR, text)

    def _service_for(self, stream: MessageStream, hello: Hello) -> Service | None:
        """The service for the conversation a Hello names (None if this port serves none)."""
        if hello.conversation == self.service.conversation:
            return cast(Service, self.service)  # a Conversant never gets a Hello here
        service = self.more_services.get(hello.conversation)
        if service is None:
            return None
        stream.conn.conversation = service.conversation
        return service

    async def _call(self, fn: Callable[_P, Awaitable[_R]], *args: _P.args, **kw: _P.kwargs) -> _R:
        try:
            return await fn(*args, **kw)
        except (ServiceError, ProtocolError, ConnectionLost):
            raise
        except Exception:
            # A bug must not take the daemon down or leave the peer hanging.
            log.exception("handler failed")
            raise ServiceError(
                "internal error in the service (logged)", code=ErrorCode.INTERNAL_ERROR
            ) from None

    def _take_token(self, key: bytes) -> bool:
        return self.rate.take(key)


def _may_answer(stream: MessageStream, reply: Message) -> bool:
    """Whether the state table lets the server send `reply` now."""
    conn = stream.conn
    return conn.conversation in reply.CONVERSATIONS and (
        next_state(conn.conversation, conn.state, conn.our_role, reply.TYPE, reply.variant())
        is not None
    )


def _refusal_code(code: ErrorCode) -> ErrorCode:
    """A handler's refusal never ends the conversation: a 1xxx code (which would) from a
    handler judging a request's values becomes INVALID_REQUEST, with the same message."""
    return ErrorCode.INVALID_REQUEST if code.closes_connection else code


def _refusal(code: ErrorCode, text: str, detail: Mapping[str, object] | None = None) -> Error:
    return Error(
        code=int(code), message=text, detail={k: str(v) for k, v in (detail or {}).items()}
    )
