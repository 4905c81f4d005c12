"""Conversations the server opens (MS-RDPELE licensing: the terminal server speaks first).

Contract:
- A `Conversant` is the other shape of service `runtime.service.Server` runs: instead of
  answering a Hello and then one request at a time (`Service`), it drives the whole
  conversation itself through a `Session`: `converse(session)` sends and receives as its
  state table allows and returns when the conversation is over (the server then says Goodbye
  if the state allows one, and closes).
- `Session.receive()` applies the listener's limits: the peer's first message must arrive
  within `handshake_timeout`, each later one within `idle_timeout` (else `Timeout` with
  HANDSHAKE_TIMEOUT / IDLE_TIMEOUT, answered by the server as a fatal Error); every message
  takes a token of the peer key's rate (the excess ends the conversation with SERVER_BUSY,
  since a server-first conversation has no refusal to carry RATE_LIMITED). A receive marked
  `idle=True` (the conversation is waiting for nothing but the peer's Goodbye) is where a
  graceful shutdown says Goodbye at once; elsewhere a handler gets the shutdown grace.
- Every frame goes through the listener's one `Connection` machinery, so the shared replay
  guard, the freshness window and the frame limit apply exactly as for request/reply.
- A conversant's own failure (a `StorageError`, a bug) is logged and the conversation ends
  (with INTERNAL_ERROR where its state table allows a refusal; RDP's allows none, so the
  connection closes); nothing a peer does stops the daemon.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import trio
from tslic.protocol import Conversation, ErrorCode, Message, TslicError
from tslic.protocol.errors import Timeout

from .limits import Limits, RateLimiter
from .stream import MessageStream


class Host(Protocol):
    """What a session needs of the listener that runs it (runtime.service.Server): its
    limits, its rate limiter and its idle/shutdown bookkeeping. A protocol, so this module
    does not import the server (which imports it)."""

    limits: Limits
    rate: RateLimiter

    @property
    def shutting_down(self) -> bool: ...

    def idle_while(self, stream: MessageStream, scope: trio.CancelScope) -> None: ...

    def busy_again(self, stream: MessageStream) -> None: ...


class Closing(TslicError):
    """The listener is shutting down while the conversation was idle: say Goodbye."""

    code = ErrorCode.SHUTTING_DOWN


class Ended(TslicError):
    """The listener ends the conversation with a fatal Error of this code (rate limit)."""


@runtime_checkable
class Conversant(Protocol):
    """A daemon's side of a conversation it opens (the server speaks first)."""

    conversation: Conversation

    async def converse(self, session: Session) -> None: ...


class Session:
    """One accepted connection of a server-first conversation."""

    def __init__(self, server: Host, stream: MessageStream, address: str) -> None:
        self._server = server
        self._stream = stream
        self.address = address

    @property
    def peer_key(self) -> bytes | None:
        """The key that signs the peer's frames (None before its first frame)."""
        return self._stream.conn.peer_key

    @property
    def state(self) -> str:
        return self._stream.conn.state

    async def send(self, message: Message) -> None:
        await self._stream.send(message)

    async def receive(self, *, idle: bool = False) -> Message:
        """The peer's next message, within the handshake or idle timeout.

        Raises:
            Timeout: HANDSHAKE_TIMEOUT or IDLE_TIMEOUT.
            RemoteProtocolError, ConnectionLost: as `MessageStream.receive`.
        """
        server, stream = self._server, self._stream
        first = stream.conn.frames_in == 0
        limits = server.limits
        with trio.move_on_after(
            limits.handshake_timeout if first else limits.idle_timeout
        ) as scope:
            if idle:
                server.idle_while(stream, scope)
            try:
                message = await stream.receive()
            finally:
                server.busy_again(stream)
        if scope.cancelled_caught:
            if idle and server.shutting_down:
                raise Closing("the service is shutting down")
            if first:
                raise Timeout("no message in time", code=ErrorCode.HANDSHAKE_TIMEOUT)
            raise Timeout("idle for too long", code=ErrorCode.IDLE_TIMEOUT)
        assert stream.conn.peer_key is not None
        if not server.rate.take(stream.conn.peer_key):
            raise Ended("too many messages from this key; slow down", code=ErrorCode.SERVER_BUSY)
        return message
