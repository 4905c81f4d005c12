"""The one Trio adapter: a message stream over a `trio.abc.Stream`.

Contract:
- `MessageStream` owns a `Connection` and a Trio stream. `send` serialises writes with a lock
  and shields the write so a cancelled task never leaves half a frame on the wire; if the
  write fails, the connection learns it (`send_failed`).
- `receive` returns the next message; `request` sends one and returns the reply, raising
  `ServiceError` for a refusal (an Error reply with a non-1xxx code).
- Errors are translated once, here: trio's `BrokenResourceError` and `ClosedResourceError`
  become `ConnectionLost`; the peer's fatal Error becomes `RemoteProtocolError`. Callers never
  see a trio, msgpack or cryptography exception. Timeouts are the caller's: wrap calls in
  `trio.fail_after` (this module takes no timeout arguments).
- It lives in runtime/, beside the rest of the Trio glue, so that protocol/ stays sans-IO with
  no exception.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import trio
from tslic.protocol.connection import NEED_DATA, PEER_CLOSED, Connection
from tslic.protocol.errors import (
    ConnectionLost,
    ErrorCode,
    LocalProtocolError,
    RemoteProtocolError,
    ServiceError,
)
from tslic.protocol.messages.base import Message
from tslic.protocol.messages.common import Error, Goodbye

RECEIVE_CHUNK = 65536


class MessageStream:
    """Signed messages over a byte stream, one conversation per stream."""

    def __init__(self, stream: trio.abc.Stream, conn: Connection, now: Callable[[], int]) -> None:
        self.stream = stream
        self.conn = conn
        self._now = now
        self._send_lock = trio.Lock()
        self._closed = False

    async def send(self, msg: Message) -> None:
        """Sign and write one message.

        Raises:
            LocalProtocolError: the message is illegal now.
            ConnectionLost: the transport broke.
        """
        async with self._send_lock:
            frame = self.conn.send(msg, now=self._now())
            try:
                with trio.CancelScope(shield=True):
                    await self.stream.send_all(frame)
            except BaseException as exc:
                self.conn.send_failed()
                if isinstance(exc, trio.BrokenResourceError | trio.ClosedResourceError):
                    raise ConnectionLost("connection lost while sending") from None
                raise

    async def receive(self) -> Message:
        """Read until one whole message has been verified and decoded.

        Raises:
            RemoteProtocolError: the peer broke the protocol (the code says how), or sent a
                fatal Error.
            ConnectionLost: the peer closed or the transport broke.
        """
        while True:
            event = self.conn.next_event(now=self._now())
            if event is NEED_DATA:
                try:
                    data = await self.stream.receive_some(RECEIVE_CHUNK)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    raise ConnectionLost("connection lost while receiving") from None
                self.conn.receive_data(bytes(data))
                continue
            if event is PEER_CLOSED:
                raise ConnectionLost("the peer closed the connection")
            assert isinstance(event, Message)
            if isinstance(event, Error) and event.fatal:
                raise RemoteProtocolError(
                    f"peer reported: {event.message}", code=event.error_code, detail=event.detail
                )
            return event

    async def request(self, msg: Message) -> Message:
        """Send a request and return its reply.

        Raises:
            ServiceError: the peer refused the request (its code and message).
            RemoteProtocolError, ConnectionLost: as for `receive`.
        """
        await self.send(msg)
        reply = await self.receive()
        if isinstance(reply, Error):
            raise ServiceError(reply.message, code=reply.error_code, detail=reply.detail)
        return reply

    async def send_error(self, code: ErrorCode, message: str, **detail: str) -> None:
        """Best-effort Error to the peer; a broken transport is ignored (we are closing).

        So is a conversation that can no longer carry an Error: after the peer's own fatal
        Error it is CLOSED, and the LocalProtocolError of sending then must not escape into
        (and take down) the server that was only trying to say why it hangs up.
        """
        with contextlib.suppress(ConnectionLost, LocalProtocolError):
            await self.send(Error(code=int(code), message=message, detail=detail))

    async def _drain(self) -> None:
        """Half-close, then read (and drop) until the peer closes. Closing a socket that
        still has unread bytes makes the kernel send a reset, which can destroy the Goodbye
        in flight (h11's shutdown_and_clean_up). Only the task that reads this stream may
        call it; callers bound it in time."""
        if isinstance(self.stream, trio.abc.HalfCloseableStream):
            await self.stream.send_eof()
        while await self.stream.receive_some(RECEIVE_CHUNK):
            pass

    async def aclose(self, *, goodbye: str | None = None) -> None:
        """Optionally say Goodbye, then close the transport. Never raises for a broken peer."""
        if self._closed:
            return
        self._closed = True
        try:
            if goodbye is not None:
                with trio.move_on_after(1, shield=True):
                    await self.send(Goodbye(reason=goodbye))
                    await self._drain()
        except Exception:
            pass
        finally:
            with trio.move_on_after(1, shield=True):
                await self.stream.aclose()
