"""The web port's limits (server/clearinghouse/http.py), in-process over loopback sockets on a
MockClock (pytest-trio's `autojump_clock`): time limits are virtual seconds, so these tests do
not depend on this machine's speed. 300 stalled clients do not hold the port, a
well-behaved browser is served meanwhile, and every status line has its reason phrase.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import trio
import trio.testing
from tslic.runtime.clock import TrioClock
from tslic.runtime.peer import split_address
from tslic.server.clearinghouse.core import Clearinghouse
from tslic.server.clearinghouse.http import WebLimits
from tslic.server.clearinghouse.web import WebApp, serve_web

LIMITS = WebLimits(
    head_timeout=10, body_timeout=10, idle_timeout=5, max_connections=32, max_body=4096
)
GET = b"GET / HTTP/1.1\r\nHost: ch\r\n\r\n"
STALLED_POST = (
    b"POST /activate HTTP/1.1\r\nHost: ch\r\nContent-Type: application/x-www-form-urlencoded"
    b"\r\nContent-Length: 500\r\n\r\nproduct_id=1"
)


@asynccontextmanager
async def web(tmp_path: Path, limits: WebLimits | None = None) -> AsyncIterator[str]:
    ch = Clearinghouse(tmp_path / "ch")
    stop = trio.Event()
    try:
        async with trio.open_nursery() as nursery:
            app = WebApp(ch, TrioClock(0))
            serve = partial(serve_web, limits=limits) if limits else serve_web
            address = await nursery.start(serve, app, "127.0.0.1", 0, stop.wait)
            yield address
            stop.set()
    finally:
        ch.close()


async def connect(address: str) -> trio.SocketStream:
    host, port = split_address(address)
    return await trio.open_tcp_stream(host, port)


async def read_all(stream: trio.SocketStream) -> bytes:
    """Everything until the server closes (or resets) the connection."""
    data = b""
    try:
        while chunk := await stream.receive_some(65536):
            data += chunk
    except trio.BrokenResourceError:
        pass
    return data


async def exchange(address: str, request: bytes) -> bytes:
    stream = await connect(address)
    async with stream:
        await stream.send_all(request)
        data = b""
        while b"</html>" not in data:
            chunk = await stream.receive_some(65536)
            if not chunk:
                break
            data += chunk
        return data


async def test_status_lines_carry_their_reason_phrase(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with web(tmp_path) as address:
        assert (await exchange(address, GET)).startswith(b"HTTP/1.1 200 OK\r\n")
        missing = await exchange(address, b"GET /nope HTTP/1.1\r\nHost: ch\r\n\r\n")
        assert missing.startswith(b"HTTP/1.1 404 Not Found\r\n")
        put = b"PUT /activate HTTP/1.1\r\nHost: ch\r\nContent-Length: 0\r\n\r\n"
        assert (await exchange(address, put)).startswith(b"HTTP/1.1 405 Method Not Allowed\r\n")
        garbage = await exchange(address, b"\x16\x03\x01\x00\xa5garbage\r\n\r\n")
        assert garbage.startswith(b"HTTP/1.1 400 Bad Request\r\n")


async def test_stalled_body_gets_408_after_the_body_limit(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with web(tmp_path, LIMITS) as address:
        stream = await connect(address)
        async with stream:
            await stream.send_all(STALLED_POST)
            started = trio.current_time()
            answer = await read_all(stream)
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        assert trio.current_time() - started <= LIMITS.body_timeout + 1


async def test_a_head_dribbled_byte_by_byte_gets_408(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with web(tmp_path, LIMITS) as address:
        stream = await connect(address)
        started = trio.current_time()
        answer = b""
        async with stream:
            try:
                for byte in b"GET / HTTP/1.1\r\nX-Slow: " + b"a" * 1000:
                    await stream.send_all(bytes([byte]))
                    await trio.sleep(1)
            except trio.BrokenResourceError:
                pass
            answer = await read_all(stream)
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        assert trio.current_time() - started <= LIMITS.head_timeout + 2


async def test_a_body_over_the_limit_is_refused_before_it_is_read(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with web(tmp_path, LIMITS) as address:
        big = b"POST /activate HTTP/1.1\r\nHost: ch\r\nContent-Length: 10000000\r\n\r\n"
        answer = await exchange(address, big)
        assert answer.startswith(b"HTTP/1.1 413 Content Too Large\r\n") or answer.startswith(
            b"HTTP/1.1 413 Request Entity Too Large\r\n"
        )
        head = b"GET / HTTP/1.1\r\nHost: ch\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n"
        assert (await exchange(address, head)).startswith(b"HTTP/1.1 431 ")


async def test_an_idle_kept_alive_connection_is_closed(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with web(tmp_path, LIMITS) as address:
        stream = await connect(address)
        async with stream:
            await stream.send_all(GET)
            first = await stream.receive_some(65536)
            assert first.startswith(b"HTTP/1.1 200 OK\r\n")
            started = trio.current_time()
            rest = await read_all(stream)  # the server closes after the idle limit
        assert b"HTTP/1.1" not in rest
        assert trio.current_time() - started <= LIMITS.idle_timeout + 1


async def test_300_stalled_clients_do_not_hold_the_port(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with web(tmp_path, LIMITS) as address:
        stalled = [await connect(address) for _ in range(300)]
        try:
            for stream in stalled:
                await stream.send_all(STALLED_POST)
            await trio.sleep(0.5)  # virtual: let the server accept them all
            # A well-behaved browser is served at once, not after the stalled ones time out.
            started = trio.current_time()
            page = await exchange(address, GET)
            assert page.startswith(b"HTTP/1.1 200 OK\r\n")
            assert trio.current_time() - started < 1
            # Every stalled connection is closed: most at once (evicted to make room), the
            # rest by the body limit, none later.
            async with trio.open_nursery() as nursery:
                for stream in stalled:
                    nursery.start_soon(read_all, stream)
            assert trio.current_time() - started <= LIMITS.body_timeout + 1
        finally:
            for stream in stalled:
                await trio.aclose_forcefully(stream)
