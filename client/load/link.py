"""The generator's hot path: one emulated terminal server's held connection, kept lean.

Contract:
- `Link(tcp)` wraps a connected `trio.SocketStream` (`runtime.peer.connect`), which carries
  the Hello and the Goodbye like any peer's (`runtime.peer.open_peer(tcp=...)`). The same
  socket then carries the measured requests without trio's stream layer: `send(frame)`
  writes a frame with one non-blocking `send` (no scheduler round trip; a partial write is
  finished by `flush`), and `receive(conn, now)` waits with `trio.lowlevel.wait_readable`
  and returns the next verified message of `conn`.
- Why: a load generator's own cost per request must stay close to the protocol's (sign the
  request, verify the reply). trio's `send_all`/`receive_some` each yield to the scheduler
  even when the kernel could answer at once, and a task, a lock and cancel scopes per request
  cost as much again; here a request is one `send` call from the dispatcher and a reply wakes
  one long-lived reader task. The protocol work is the same `Connection` as every peer's.
- Errors: a broken or closed socket is `ConnectionLost`; the peer's protocol errors are the
  `Connection`'s (`RemoteProtocolError`). Only the task that owns the link may call
  `receive`; timeouts are the caller's (cancel scopes around `receive`).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import trio
from tslic.protocol import Connection, ConnectionLost, Message
from tslic.protocol.connection import NEED_DATA, PEER_CLOSED

RECEIVE_CHUNK = 65536


class Link:
    """A connected socket: the trio stream for the conversation's edges, raw for the rest."""

    def __init__(self, tcp: trio.SocketStream) -> None:
        self.tcp = tcp
        # The descriptor itself (trio keeps sockets non-blocking): os.write and os.read are
        # the same send and recv system calls, without trio's per-call scheduling.
        self._fd = tcp.socket.fileno()
        self._unsent = b""  # the tail of a frame the kernel did not take at once

    @property
    def blocked(self) -> bool:
        """A frame is still partly unwritten (`flush` must finish it)."""
        return bool(self._unsent)

    def send(self, frame: bytes) -> None:
        """Write `frame` now if the kernel takes it; else keep the rest for `flush`.

        Raises:
            ConnectionLost: the connection is broken.
        """
        if self._unsent:
            self._unsent += frame
            return
        try:
            sent = os.write(self._fd, frame)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            raise ConnectionLost(f"connection lost while sending: {exc.strerror or exc}") from None
        if sent < len(frame):
            self._unsent = frame[sent:]

    async def flush(self) -> None:
        """Finish writing what `send` could not (rare: the socket buffer was full)."""
        while self._unsent:
            await trio.lowlevel.wait_writable(self._fd)
            try:
                sent = os.write(self._fd, self._unsent)
            except BlockingIOError:
                continue
            except OSError as exc:
                text = exc.strerror or exc
                raise ConnectionLost(f"connection lost while sending: {text}") from None
            self._unsent = self._unsent[sent:]

    async def receive(self, conn: Connection, now: Callable[[], int]) -> Message:
        """The next message `conn` decodes from this socket.

        Raises:
            ConnectionLost: the peer closed or the socket broke.
            RemoteProtocolError: the peer broke the protocol.
        """
        while True:
            event = conn.next_event(now=now())
            if event is NEED_DATA:
                await trio.lowlevel.wait_readable(self._fd)
                try:
                    data = os.read(self._fd, RECEIVE_CHUNK)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    raise ConnectionLost(
                        f"connection lost while receiving: {exc.strerror or exc}"
                    ) from None
                conn.receive_data(data)
                continue
            if event is PEER_CLOSED:
                raise ConnectionLost("the peer closed the connection")
            assert isinstance(event, Message)
            return event
