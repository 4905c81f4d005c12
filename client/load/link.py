"""The generator's hot path: one emulated terminal server's held connection, kept lean.

Contract:
- `open_link(address)` opens TCP and returns a `Link` whose `tcp` (a `trio.SocketStream`) is
  used for the Hello and the Goodbye, like any peer's (`runtime.peer.open_peer(tcp=...)`).
  The same socket then carries the measured requests without trio's stream layer:
  `send(frame)` writes a frame with one non-blocking `send` (no scheduler round trip; a
  partial write is finished by `flush`), and `receive(conn, now)` waits with
  `trio.lowlevel.wait_readable` and returns the next verified message of `conn`.
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

import socket
from collections.abc import Callable

import trio
from tslic.protocol import Connection, ConnectionLost, Message
from tslic.protocol.connection import NEED_DATA, PEER_CLOSED
from tslic.runtime.peer import split_address

RECEIVE_CHUNK = 65536


class Link:
    """A connected socket: the trio stream for the conversation's edges, raw for the rest."""

    def __init__(self, sock: socket.socket, tcp: trio.SocketStream) -> None:
        self.sock = sock
        self.tcp = tcp
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
            sent = self.sock.send(frame)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            raise ConnectionLost(f"connection lost while sending: {exc.strerror or exc}") from None
        if sent < len(frame):
            self._unsent = frame[sent:]

    async def flush(self) -> None:
        """Finish writing what `send` could not (rare: the socket buffer was full)."""
        while self._unsent:
            await trio.lowlevel.wait_writable(self.sock)
            try:
                sent = self.sock.send(self._unsent)
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
                await trio.lowlevel.wait_readable(self.sock)
                try:
                    data = self.sock.recv(RECEIVE_CHUNK)
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


async def open_link(address: str) -> Link:
    """Connect to `address` ('host:port').

    Raises:
        ConnectionLost: the address cannot be resolved or does not accept the connection.
        ServiceError: the address is not HOST:PORT.
    """
    host, port = split_address(address)
    try:
        infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, type_, proto, _, sockaddr = infos[0]
        sock = socket.socket(family, type_, proto)
    except OSError as exc:
        raise ConnectionLost(f"cannot connect to {address}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    trio_sock = trio.socket.from_stdlib_socket(sock)
    try:
        await trio_sock.connect(sockaddr)
    except BaseException as exc:
        trio_sock.close()
        if isinstance(exc, OSError):
            raise ConnectionLost(f"cannot connect to {address}: {exc.strerror or exc}") from None
        raise
    return Link(sock, trio.SocketStream(trio_sock))
