"""The generator's hot path: one emulated terminal server's held connection, kept lean.

Contract:
- `Link(tcp)` wraps a connected `trio.SocketStream` (`runtime.peer.connect`), which carries
  the Hello and the Goodbye like any peer's (`runtime.peer.open_peer(tcp=...)`). The same
  socket then carries the measured requests without trio's stream layer: `send(frame)`
  writes a frame with one non-blocking `send` (no scheduler round trip; a partial write is
  finished by `flush`), and `read_available(conn, now)` reads what the socket holds
  without waiting and returns the verified messages of `conn` it completes. The waiting is
  the caller's: a `ReadySet` for all of a generator's links at once (Linux's epoll), else
  `Link.wait_readable` per link.
- Why: a load generator's own cost per request must stay close to the protocol's (sign the
  request, verify the reply). trio's `send_all`/`receive_some` each yield to the scheduler
  even when the kernel could answer at once, and a task, a lock and cancel scopes per request
  cost as much again; here a request is one `send` call from the dispatcher, and a burst of
  replies wakes one reader. The protocol work is the same `Connection` as every peer's.
- Errors: a broken or closed socket is `ConnectionLost`; the peer's protocol errors are the
  `Connection`'s (`RemoteProtocolError`). `read_available` returns them rather than raising,
  after the messages that came before them. Timeouts are the caller's.
"""

from __future__ import annotations

import contextlib
import os
import select
from collections.abc import Callable
from typing import Generic, TypeVar

import trio
from tslic.protocol import Connection, ConnectionLost, Message
from tslic.protocol.connection import NEED_DATA, PEER_CLOSED
from tslic.protocol.errors import RemoteProtocolError, TslicError

T = TypeVar("T")

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

    @property
    def fd(self) -> int:
        return self._fd

    async def wait_readable(self) -> None:
        await trio.lowlevel.wait_readable(self._fd)

    def read_available(
        self, conn: Connection, now: Callable[[], int]
    ) -> tuple[list[Message], TslicError | None]:
        """Read what the socket holds now (one `recv`, never waiting) and return the
        messages `conn` completes from it, in order, and the error that ends the connection
        after them (None: it goes on; nothing there yet is ([], None)).

        The error is `ConnectionLost` (the peer closed, the socket broke) or the
        `RemoteProtocolError` of the `Connection`; messages decoded before it are kept.
        """
        try:
            data = os.read(self._fd, RECEIVE_CHUNK)
        except BlockingIOError:
            return [], None
        except OSError as exc:
            return [], ConnectionLost(f"connection lost while receiving: {exc.strerror or exc}")
        conn.receive_data(data)
        messages: list[Message] = []
        try:
            while True:
                event = conn.next_event(now=now())
                if event is NEED_DATA:
                    return messages, None
                if event is PEER_CLOSED:
                    return messages, ConnectionLost("the peer closed the connection")
                assert isinstance(event, Message)
                messages.append(event)
        except RemoteProtocolError as exc:
            return messages, exc


class ReadySet(Generic[T]):
    """Many sockets awaited as one: a private epoll set (Linux), each socket registered
    once for its connection's life, the set awaited through trio as a single descriptor.

    Why: a reply read through `trio.lowlevel.wait_readable` per socket costs an `epoll_ctl`
    per wait and a task switch per reply; here a burst of replies costs one trio wake-up.
    `wait()` returns the descriptors that are readable (level-triggered: one whose data was
    left unread is returned again), after one trio checkpoint each time, so the reader never
    starves the generator's other tasks. `available()` is False where there is no epoll;
    the caller then waits per socket (`Link.wait_readable`).
    """

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._items: dict[int, T] = {}

    @staticmethod
    def available() -> bool:
        return hasattr(select, "epoll")

    def add(self, fd: int, item: T) -> None:
        self._epoll.register(fd, select.EPOLLIN)
        self._items[fd] = item

    def discard(self, fd: int) -> None:
        """Forget `fd` (before it is closed: its number may be reused at once)."""
        if self._items.pop(fd, None) is not None:
            with contextlib.suppress(OSError):
                self._epoll.unregister(fd)

    def get(self, fd: int) -> T | None:
        """The item of `fd`, or None once discarded (even within one `wait()`'s batch)."""
        return self._items.get(fd)

    async def wait(self) -> list[int]:
        await trio.lowlevel.wait_readable(self._epoll.fileno())
        return [fd for fd, _ in self._epoll.poll(0)]

    def close(self) -> None:
        self._epoll.close()
