"""The per-connection half of `runtime.service.Server`: one conversation, start to end.

Contract:
- `Conversing` is a mixin `Server` inherits; it holds no state of its own and uses the
  server's (declared below). `Server._handle_tcp` admits a connection and hands it to
  `_converse` (request/reply) or `_converse_first` (a server-first `Conversant`), and answers
  the `ProtocolError` either lets out.
- `_converse`: a Hello within `handshake_timeout` (else HANDSHAKE_TIMEOUT); a Hello naming a
  conversation this port does not serve is refused UNSUPPORTED_CONVERSATION (fatal);
  `service.on_hello` returns the Welcome or raises `ServiceError` (sent as an Error; the
  conversation ends). Then requests, each within `idle_timeout` of the last (else
  IDLE_TIMEOUT), each taking a token of the peer key's rate (else RATE_LIMITED, and the
  conversation goes on), each answered by `service.handle` within `request_timeout` (else
  INTERNAL_ERROR). A handler's `ServiceError` becomes a non-fatal refusal; a handler's bug,
  or a reply the state table does not allow, is logged and answered INTERNAL_ERROR. A
  shutdown says Goodbye to an idle peer at once and to a busy one after its reply.
- `_converse_first` runs a `Conversant` through a `Session` (runtime/session.py), which
  reaches back here for the limits, the rate limiter and the idle/shutdown bookkeeping
  (`session.Host`), and translates the conversation's endings into Goodbye or an Error.
- `_refuse` sends one Error (shielded, at most 1 s), so every refusal reaches a peer that
  still reads, and none waits on one that does not.
The request loop is the daemon's hot path: it calls nothing more per request than it did
when it was part of service.py (a mixin's method costs what the class's own does).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import ParamSpec, TypeVar, cast

import trio
from tslic.protocol import (
    ConnectionLost,
    Conversation,
    ErrorCode,
    Message,
    ProtocolError,
    ServiceError,
    TslicError,
)
from tslic.protocol.messages import Error, Goodbye, Hello, describe
from tslic.protocol.states import next_state

from .limits import Limits, RateLimiter
from .service_types import Counters, Peer, Service
from .session import Closing, Conversant, Session
from .stream import MessageStream

# The listener's logger: daemon logs print the logger's name, and Server's lines keep theirs.
log = logging.getLogger("tslic.runtime.service")

_P = ParamSpec("_P")
_R = TypeVar("_R")


class Conversing:
    """The conversations of one listener's connections (`Server` is the listener)."""

    # The server's state this half reads and updates; `Server.__init__` sets every one.
    service: Service | Conversant
    more_services: dict[Conversation, Service]
    limits: Limits
    rate: RateLimiter
    counters: Counters
    _on_error: Callable[[ErrorCode], None] | None
    _shutdown: trio.Event
    _idle: dict[MessageStream, trio.CancelScope]  # idle connections' receive scopes

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
