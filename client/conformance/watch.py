"""Watching the target as a client: does it send a request before the last one was answered?

Contract: `WatchedServer` is runtime.Server serving one of the suite's doubles (peers.py) with
every accepted TCP stream wrapped in `_Watched`, which counts the frames that arrive and the
frames the double sends. Just before the double sends its n-th frame (the answer to the
client's n-th frame: Welcome to Hello, then reply to request), the wrapper waits `HOLD`
seconds and looks whether more bytes than those n frames have arrived (already read, or still
waiting in the socket): a client that sent them could not have seen the answer, so it
pipelined (STATE-4). `Watch.pipelined` lists what was seen, per double name, `Watch.frames`
counts the client frames observed. A correct client is never counted: it sends nothing while
it waits (a close, EOF, is not counted). Only runtime/ and protocol/ are used.
"""

from __future__ import annotations

import contextlib
import socket
from collections import Counter
from dataclasses import dataclass, field

import trio
from tslic.protocol import RemoteProtocolError
from tslic.protocol.framing import FrameDecoder
from tslic.runtime.service import Server

HOLD = 0.02  # seconds a reply is held so that a pipelining client's bytes have arrived


@dataclass(slots=True)
class Watch:
    """What the doubles saw of the target's requests."""

    pipelined: list[str] = field(default_factory=list)  # "DOUBLE: frame n before answer n-1"
    frames: Counter[str] = field(default_factory=Counter)  # double name -> client frames


class _Watched(trio.abc.HalfCloseableStream):
    def __init__(self, tcp: trio.SocketStream, watch: Watch, name: str) -> None:
        self.tcp = tcp
        self.socket = tcp.socket
        self.watch = watch
        self.name = name
        self._in = FrameDecoder(max_frame=1 << 24)
        self.frames_in = 0
        self.frames_out = 0

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        data = await self.tcp.receive_some(max_bytes)
        with contextlib.suppress(RemoteProtocolError):  # the Server reports bad framing
            self._in.feed(bytes(data))
            while self._in.next_frame() is not None:
                self.frames_in += 1
                self.watch.frames[self.name] += 1
        return data

    def _waiting(self) -> bool:
        """Bytes not yet read from the socket (a peek; EOF and errors count as none)."""
        try:
            with socket.fromfd(self.socket.fileno(), socket.AF_INET, socket.SOCK_STREAM) as s:
                return bool(s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
        except OSError:
            return False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        answering = self.frames_out + 1
        if self.frames_in >= answering:  # a reply, not an unsolicited Error
            await trio.sleep(HOLD)
            if self.frames_in > answering or self._in.buffered or self._waiting():
                self.watch.pipelined.append(
                    f"{self.name}: client frame {answering + 1} arrived before the answer to"
                    f" frame {answering}"
                )  # fmt: skip
        self.frames_out += 1
        await self.tcp.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.tcp.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self.tcp.send_eof()

    async def aclose(self) -> None:
        await self.tcp.aclose()


class WatchedServer(Server):
    """runtime.Server whose connections are watched for pipelined requests."""

    def watch_as(self, watch: Watch, name: str) -> WatchedServer:
        self._watch, self._watch_name = watch, name
        return self

    async def _handle_tcp(self, tcp: trio.abc.HalfCloseableStream) -> None:
        assert isinstance(tcp, trio.SocketStream)  # as the listener accepted it
        wrapped = _Watched(tcp, self._watch, self._watch_name)
        await super()._handle_tcp(wrapped)
