"""Drivers that leave a pinned server the only bound: requests signed before the clock starts.

Contract: a `Driver(address, kind, connections, per_loop)` drives a license server
(`kind` "issuance": IssueLicense for new devices) or the signed echo ("echo": MarkLicense)
with C closed loops, in measured slices (`await driver.slice(seconds)`), and `drive(...)` is
one slice against a fresh set of loops. Each loop opens its conversation the usual way
(Hello, and for issuance the terminal-server certificate first), then signs all of its
requests before any slice starts (each with its own nonce, the message ids and reply ids the
connection would use, the timestamp of now: the freshness window is 300 s), and while
measured only writes frames and splits the replies into frames, reading each reply's type
from its envelope without verifying its signature. So the driver spends tens of
microseconds per request where a full client spends a sign and a verify (~250-500 us here),
and a server pinned to a core of its own, with the driver on the other, is bound by its own
CPU per request: the ratio of two servers' rates is then the inverse of their CPU ratio
(issue 19's pinned form). A reply of any other type than expected (an Error) ends the run
with that type named. A loop that runs out of sealed requests stops for that slice;
`exhausted` counts them (size `per_loop` for all the slices, so that none does). A
benchmark's driver: figures, never assertions.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import msgpack
import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.protocol import Conversation, Message
from tslic.protocol.codec import to_wire
from tslic.protocol.domain import ClientOS, LicensingMode, PeerRole
from tslic.protocol.envelope import seal
from tslic.protocol.framing import FrameDecoder, encode_frame
from tslic.protocol.messages.licensing import (
    IssueLicense,
    LicenseGranted,
    LicenseMarked,
    MarkLicense,
)
from tslic.protocol.pki import raw_public_key
from tslic.runtime.clock import WallClock
from tslic.runtime.peer import PeerStream, open_peer

from bench.issuance import enrol


@dataclass
class Driven:
    """What a presealed slice (or run) did."""

    answered: int = 0
    exhausted: int = 0  # loops that ran out of sealed requests before the time was up
    sealing_seconds: float = 0.0  # spent before the measured seconds (all loops)
    measured_seconds: float = 0.0  # from the start to the last reply

    @property
    def per_second(self) -> float:
        return self.answered / self.measured_seconds if self.measured_seconds else 0.0


class UnexpectedReply(Exception):
    """The server answered a presealed request with another message than the expected one."""


def seal_ahead(stream: PeerStream, key: Ed25519PrivateKey, messages: list[Message]) -> list[bytes]:
    """The frames `stream` would send for `messages`, each answered before the next: message
    ids continue the connection's own, and each names as its reply-to the server's reply to
    the one before (the server numbers its messages from its Welcome on, one per reply)."""
    conn = stream.conn
    first_id = conn.frames_out + 1
    assert conn.last_received is not None  # the Welcome
    welcome_id = conn.last_received.msg_id
    now = WallClock().now()
    frames = []
    for k, msg in enumerate(messages):
        body = seal(
            key,
            conn.our_key,
            type_=int(msg.TYPE),
            msg_id=first_id + k,
            reply_to=welcome_id + k,
            nonce=os.urandom(16),
            timestamp=now,
            body=to_wire(msg),
        )
        frames.append(encode_frame(body))
    return frames


class Driver:
    """Presealed closed loops against one server, run in measured slices.

    `open` (under a nursery) connects every loop and seals its requests; each `await
    slice(seconds)` then lets all loops send for that long and returns what they did, the
    loops keeping their connections and their place in their sealed requests between slices
    (so two servers can be driven in alternation, each slice seeing the same host as the
    other server's neighbouring slices).
    """

    def __init__(self, address: str, kind: str, connections: int, per_loop: int) -> None:
        self.address = address
        self.kind = kind
        self.connections = connections
        self.per_loop = per_loop
        self.sealing_seconds = 0.0
        self._go = trio.Event()
        self._stop = 0.0
        self._start = 0.0
        self._slice = Driven()
        self._running = 0
        self._all_stopped = trio.Event()

    async def open(self, nursery: trio.Nursery) -> None:
        sealing = time.perf_counter()
        for i in range(self.connections):
            await nursery.start(self._loop, i)
        self.sealing_seconds = time.perf_counter() - sealing

    async def slice(self, seconds: float) -> Driven:
        go, self._go = self._go, trio.Event()
        self._slice = Driven(sealing_seconds=self.sealing_seconds)
        self._all_stopped = trio.Event()
        self._running = self.connections
        self._start = trio.current_time()
        self._stop = self._start + seconds
        go.set()
        await self._all_stopped.wait()
        return self._slice

    def _hello(
        self, key: Ed25519PrivateKey, i: int, cert_chain: tuple[bytes, ...] = ()
    ) -> AbstractAsyncContextManager[PeerStream]:
        return open_peer(
            self.address,
            conversation=Conversation.LICENSING,
            key=key,
            clock=WallClock(),
            role=PeerRole.TERMINAL_SERVER,
            name=f"TS{i}",
            version=2003,
            cert_chain=cert_chain,
        )

    def _requests(self, i: int, key: Ed25519PrivateKey) -> tuple[list[Message], int]:
        if self.kind == "echo":
            hwid = raw_public_key(key)
            mark: list[Message] = [
                MarkLicense(license_id=i + 1, hwid=hwid) for _ in range(self.per_loop)
            ]
            return mark, int(LicenseMarked.TYPE)
        issue: list[Message] = [
            IssueLicense(
                hwid=os.urandom(32),
                machine=f"PC{i}-{n}",
                user="u",
                client_os=ClientOS.XP_PRO,
                mode=LicensingMode.PER_DEVICE,
            )
            for n in range(self.per_loop)
        ]
        return issue, int(LicenseGranted.TYPE)

    async def _loop(self, i: int, *, task_status: trio.TaskStatus[None]) -> None:
        key = Ed25519PrivateKey.generate()
        chain: tuple[bytes, ...] = ()
        if self.kind == "issuance":
            chain = await enrol(self.address, key, i, WallClock())
        async with self._hello(key, i, chain) as stream:
            messages, expected = self._requests(i, key)
            frames = iter(seal_ahead(stream, key, messages))
            decoder = FrameDecoder()
            task_status.started()
            while True:
                await self._go.wait()
                try:
                    await self._replay(stream, frames, decoder, expected)
                finally:
                    self._running -= 1
                    if self._running == 0:
                        self._all_stopped.set()

    async def _replay(
        self, stream: PeerStream, frames: Iterator[bytes], decoder: FrameDecoder, expected: int
    ) -> None:
        """Send frames and wait for each reply, until the slice's stop or the frames run out."""
        tcp = stream.stream
        driven = self._slice
        while trio.current_time() < self._stop:
            frame = next(frames, None)
            if frame is None:
                driven.exhausted += 1
                return
            await tcp.send_all(frame)
            reply = decoder.next_frame()
            while reply is None:
                data = await tcp.receive_some(65536)
                if not data:
                    raise UnexpectedReply("the server closed the connection")
                decoder.feed(bytes(data))
                reply = decoder.next_frame()
            # The envelope is [sender, inner, signature]; inner is [version, type, ...].
            kind = msgpack.unpackb(msgpack.unpackb(reply)[1])[1]
            if kind != expected:
                raise UnexpectedReply(f"message type 0x{kind:03x}, not 0x{expected:03x}")
            driven.answered += 1
            driven.measured_seconds = trio.current_time() - self._start


async def drive(address: str, kind: str, connections: int, seconds: float, per_loop: int) -> Driven:
    """One slice of `seconds` against one server: `kind` "issuance" (a license server) or
    "echo" (bench/signed_echo.py's server)."""
    async with trio.open_nursery() as nursery:
        driver = Driver(address, kind, connections, per_loop)
        await driver.open(nursery)
        driven = await driver.slice(seconds)
        nursery.cancel_scope.cancel()
    return driven
