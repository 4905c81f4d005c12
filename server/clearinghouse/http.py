"""A small HTTP/1.1 server (h11 on Trio) for the Clearinghouse pages, with the limits a web
port open to anybody needs.

Contract:
- `HttpServer(handler, limits)` serves `handler(method, path, body) -> (status, html)`; the
  handler sees only whole requests: the server reads the head and the body itself, within
  `WebLimits`: the head must arrive within `head_timeout` seconds and `max_head` bytes (else
  408 / 431), the body within `body_timeout` seconds and `max_body` bytes (else 408 / 413,
  refused from Content-Length before any of it is read). A kept-alive connection waits
  `idle_timeout` seconds for its next request. Malformed requests get 400. Every status line
  carries its reason phrase; responses are text/html with Content-Length and no-store.
- At most `max_connections` connections are open. A new one arriving at the limit evicts the
  connection that has been waiting longest for its request (a stalled client is the one that
  waits; a request being answered is never cut); when every connection is being answered
  the newcomer gets 503 and is closed. So stalled clients cannot hold the port, and a
  well-behaved browser is served meanwhile.
- `serve(host, port, task_status=...)` opens the listener (`runtime.listen.open_listeners`,
  option "--web": a busy port is one line) and reports "host:port"; `shutdown()` stops
  accepting, closes waiting connections and gives requests being answered `shutdown_grace`
  seconds. All time is Trio time, so tests drive the limits with a MockClock.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import unquote

import h11
import trio
from tslic.runtime.listen import open_listeners

log = logging.getLogger(__name__)

Handler = Callable[[str, str, bytes], Awaitable[tuple[int, str]]]


@dataclass(frozen=True, slots=True, kw_only=True)
class WebLimits:
    head_timeout: float = 10.0  # seconds for a whole request head
    body_timeout: float = 10.0  # seconds for a whole request body
    idle_timeout: float = 5.0  # seconds a kept-alive connection waits for its next request
    send_timeout: float = 10.0  # seconds to hand a response to a slow reader
    max_connections: int = 64
    max_head: int = 16 * 1024
    max_body: int = 64 * 1024
    shutdown_grace: float = 2.0


class _Refuse(Exception):
    """End the exchange with this status (and close), or silently when status is 0."""

    def __init__(self, status: int, text: str = "") -> None:
        super().__init__(status)
        self.status, self.text = status, text


class _Conn:
    """One connection's bookkeeping: is it waiting for a request (evictable) and since when."""

    def __init__(self, serial: int, scope: trio.CancelScope) -> None:
        self.serial = serial
        self.scope = scope
        self.waiting = True
        self.received = 0  # bytes of the request being read


def reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


class HttpServer:
    """The web port's server (see the module docstring)."""

    def __init__(
        self,
        handler: Handler,
        limits: WebLimits | None = None,
        *,
        error_page: Callable[[int, str], str] | None = None,
    ) -> None:
        self.handler = handler
        self.limits = limits or WebLimits()
        self.error_page = error_page or _plain_page
        self._conns: dict[int, _Conn] = {}
        self._serial = itertools.count()
        self._shutdown = trio.Event()
        self.evicted = 0  # connections closed to make room (for tests and logs)

    @property
    def open_connections(self) -> int:
        return len(self._conns)

    def shutdown(self) -> None:
        self._shutdown.set()

    async def serve(
        self, host: str, port: int, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
    ) -> None:
        listeners = await open_listeners(host, port, option="--web")
        name = listeners[0].socket.getsockname()
        address = f"[{name[0]}]:{name[1]}" if ":" in name[0] else f"{name[0]}:{name[1]}"
        async with trio.open_nursery() as handlers:
            async with trio.open_nursery() as acceptors:
                for listener in listeners:
                    acceptors.start_soon(self._accept, listener, handlers)
                task_status.started(address)
                await self._shutdown.wait()
                acceptors.cancel_scope.cancel()
            for conn in list(self._conns.values()):
                if conn.waiting:
                    conn.scope.cancel()
            handlers.cancel_scope.deadline = trio.current_time() + self.limits.shutdown_grace

    async def _accept(self, listener: trio.SocketListener, handlers: trio.Nursery) -> None:
        async with listener:
            while True:
                try:
                    stream = await listener.accept()
                except OSError as exc:  # EMFILE and friends: wait a moment, keep serving
                    log.warning("web: accept failed: %s", exc)
                    await trio.sleep(0.1)
                    continue
                if len(self._conns) >= self.limits.max_connections and not self._evict():
                    handlers.start_soon(self._busy, stream)
                    continue
                handlers.start_soon(self._connection, stream)

    def _evict(self) -> bool:
        """Close the connection waiting longest for its request; False if none waits."""
        for conn in self._conns.values():  # insertion order: the oldest first
            if conn.waiting:
                conn.waiting = False
                conn.scope.cancel()
                del self._conns[conn.serial]
                self.evicted += 1
                return True
        return False

    async def _busy(self, stream: trio.SocketStream) -> None:
        with trio.move_on_after(self.limits.send_timeout):
            await self._send_raw(stream, 503, "The server is busy; try again in a moment.")
        await trio.aclose_forcefully(stream)

    async def _connection(self, stream: trio.SocketStream) -> None:
        serial = next(self._serial)
        with trio.CancelScope() as scope:
            conn = self._conns[serial] = _Conn(serial, scope)
            try:
                await self._exchanges(stream, conn)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the client went away
            except Exception:
                log.exception("web: connection failed")
            finally:
                self._conns.pop(serial, None)
        await trio.aclose_forcefully(stream)

    async def _exchanges(self, stream: trio.SocketStream, conn: _Conn) -> None:
        h = h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.max_head)
        first = True
        while True:
            conn.waiting = True
            try:
                request, body = await self._read_request(stream, h, conn, first)
            except _Refuse as refusal:
                if refusal.status and h.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    await self._respond(stream, h, refusal.status, refusal.text, close=True)
                return
            conn.waiting = False
            method = request.method.decode("ascii", "replace")
            target = request.target.decode("ascii", "replace")
            path = unquote(target.split("?", 1)[0].split("#", 1)[0]) or "/"
            status, html = await self.handler(method, path, body)
            close = self._shutdown.is_set()
            await self._respond(stream, h, status, html, close=close, head=method == "HEAD")
            if h.our_state is h11.MUST_CLOSE or h.their_state is h11.MUST_CLOSE or close:
                return
            try:
                h.start_next_cycle()
            except h11.LocalProtocolError:
                return
            first = False

    async def _read_request(
        self, stream: trio.SocketStream, h: h11.Connection, conn: _Conn, first: bool
    ) -> tuple[h11.Request, bytes]:
        limits = self.limits
        conn.received = len(h.trailing_data[0])
        request: h11.Request | None = None
        with trio.move_on_after(limits.head_timeout if first else limits.idle_timeout):
            event = await self._next_event(stream, h, conn, (h11.Request,))
            assert isinstance(event, h11.Request)
            request = event
        if request is None:
            # Part of a head, or a first request that never came: 408. A kept-alive
            # connection with nothing more to ask is simply closed.
            raise _Refuse(
                408 if first or conn.received else 0, "The request did not arrive in time."
            )
        # h11 bounds only a head that arrives in pieces; one that arrives whole is measured.
        size = len(request.target) + sum(len(n) + len(v) + 4 for n, v in request.headers)
        if size > limits.max_head:
            raise _Refuse(431, "The request head is too large.")
        length = _content_length(request)
        if length is not None and length > limits.max_body:
            raise _Refuse(413, "The form is too large.")
        chunks: list[bytes] = []
        size = 0
        with trio.move_on_after(limits.body_timeout) as body_scope:
            while True:
                event = await self._next_event(stream, h, conn, (h11.Data, h11.EndOfMessage))
                if isinstance(event, h11.EndOfMessage):
                    break
                assert isinstance(event, h11.Data)
                size += len(event.data)
                if size > limits.max_body:
                    raise _Refuse(413, "The form is too large.")
                chunks.append(bytes(event.data))
        if body_scope.cancelled_caught:
            raise _Refuse(408, "The form did not arrive in time.")
        return request, b"".join(chunks)

    async def _next_event(
        self, stream: trio.SocketStream, h: h11.Connection, conn: _Conn, wanted: tuple[type, ...]
    ) -> object:
        while True:
            try:
                event = h.next_event()
            except h11.RemoteProtocolError as exc:
                status = exc.error_status_hint
                raise _Refuse(status, "The request is not valid HTTP.") from None
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                if not data:
                    raise _Refuse(0)  # the client closed
                conn.received += len(data)
                try:
                    h.receive_data(data)
                except h11.RemoteProtocolError:
                    raise _Refuse(400, "The request is not valid HTTP.") from None
                continue
            if isinstance(event, wanted):
                return event
            if isinstance(event, h11.ConnectionClosed):
                raise _Refuse(0)
            # Anything else here (a second Request, PAUSED) means the peer misbehaves.
            raise _Refuse(400, "The request is not valid HTTP.")

    async def _respond(
        self,
        stream: trio.SocketStream,
        h: h11.Connection,
        status: int,
        html: str,
        *,
        close: bool,
        head: bool = False,
    ) -> None:
        if status >= 400 and not html.lstrip().startswith("<!DOCTYPE"):
            html = self.error_page(status, html)
        data = html.encode()
        headers = [
            ("content-type", "text/html; charset=utf-8"),
            ("content-length", str(len(data))),
            ("cache-control", "no-store"),
        ]
        if close:
            headers.append(("connection", "close"))
        with trio.move_on_after(self.limits.send_timeout) as scope:
            out = h.send(h11.Response(status_code=status, headers=headers, reason=reason(status)))
            if not head:
                out = (out or b"") + (h.send(h11.Data(data=data)) or b"")
            out = (out or b"") + (h.send(h11.EndOfMessage()) or b"")
            await stream.send_all(out)
        if scope.cancelled_caught:
            raise trio.BrokenResourceError("the client does not read its response")

    async def _send_raw(self, stream: trio.SocketStream, status: int, text: str) -> None:
        data = self.error_page(status, text).encode()
        head = (
            f"HTTP/1.1 {status} {reason(status)}\r\ncontent-type: text/html; charset=utf-8\r\n"
            f"content-length: {len(data)}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n"
        ).encode()
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await stream.send_all(head + data)


def _content_length(request: h11.Request) -> int | None:
    for name, value in request.headers:
        if name == b"content-length":
            return int(value)  # h11 has checked it is a number
    return None


def _plain_page(status: int, text: str) -> str:
    from html import escape

    title = f"{status} {reason(status)}"
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}'
        f"</title></head><body><h1>{title}</h1><p>{escape(text)}</p></body></html>\n"
    )
