"""A raw client for black-box probes: arbitrary bytes out, classified replies in.

Contract:
- `RawClient` opens TCP to the target, sends any bytes (well-formed or deliberately wrong),
  and records every chunk both ways with a monotonic timestamp in a `Transcript`.
- `RawClient.observe(timeout)` reads until the target closes or the budget runs out and
  returns an `Observation`: the reply frames (each decoded when possible: type, name, body,
  the Error code), and how the connection ended: "clean-close" (FIN), "reset" (RST or
  another transport failure) or "open" (silence until the budget ran out). Time is measured
  from the last byte we sent, so a negative case can report its time-to-reject.
- The frames a probe sends, right or deliberately wrong, are built by `crafter.Crafter`.
- Transport errors never escape as trio or OS exceptions: connecting raises `ConnectionLost`,
  everything after that is recorded as part of the observation.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from dataclasses import dataclass, field

import trio
from tslic.protocol import ConnectionLost, ErrorCode, RemoteProtocolError
from tslic.protocol.codec import Unvalidated
from tslic.protocol.envelope import open_envelope
from tslic.protocol.framing import FrameDecoder
from tslic.protocol.messages import REGISTRY
from tslic.runtime.peer import split_address

OUT, IN = "out", "in"


@dataclass(frozen=True, slots=True)
class Chunk:
    at: float  # seconds since the transcript began
    direction: str  # "out" (suite to target), "in", or "event"
    data: bytes
    note: str = ""


@dataclass(slots=True)
class Transcript:
    """Every byte both ways, with timestamps, for evidence bundles."""

    origin: float = field(default_factory=time.monotonic)
    chunks: list[Chunk] = field(default_factory=list)

    def add(self, direction: str, data: bytes, note: str = "") -> None:
        self.chunks.append(Chunk(time.monotonic() - self.origin, direction, data, note))

    def event(self, note: str) -> None:
        self.add("event", b"", note)

    def extend(self, other: Transcript, label: str) -> None:
        """Append another connection's transcript (cases may open several)."""
        shift = other.origin - self.origin
        self.event(f"--- connection {label} ---")
        for c in other.chunks:
            self.chunks.append(Chunk(c.at + shift, c.direction, c.data, c.note))

    def to_json(self) -> list[dict[str, object]]:
        return [
            {"at_ms": round(c.at * 1000, 3), "direction": c.direction, "hex": c.data.hex(),
             "note": c.note}
            for c in self.chunks
        ]  # fmt: skip

    def render(self) -> str:
        """Hex and decoded frames of both directions, in time order."""
        lines = []
        for c in self.chunks:
            head = f"{c.at * 1000:10.3f} ms  {c.direction:>5}"
            if c.direction == "event":
                lines.append(f"{head}  {c.note}")
                continue
            lines.append(f"{head}  {len(c.data)} bytes {c.note}".rstrip())
            lines.extend(f"      {line}" for line in hexdump(c.data))
        lines.append("")
        lines.append("decoded frames:")
        for direction in (OUT, IN):
            data = b"".join(c.data for c in self.chunks if c.direction == direction)
            lines.append(f"  {direction}:")
            lines.extend(f"    {d}" for d in describe_stream(data))
        return "\n".join(lines)


def hexdump(data: bytes, width: int = 16) -> list[str]:
    out = []
    for i in range(0, len(data), width):
        part = data[i : i + width]
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in part)
        out.append(f"{i:06x}  {part.hex(' '):<{width * 3}} {text}")
    return out or ["(empty)"]


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame the target sent, decoded as far as it goes."""

    raw: bytes
    type: int | None = None
    name: str = "?"
    body: dict[str, Unvalidated] | None = None  # as the target sent it: the cases judge it
    problem: str = ""  # why it could not be decoded or verified

    @property
    def error_code(self) -> int | None:
        if self.name == "Error" and self.body is not None:
            code = self.body.get("code")
            return code if isinstance(code, int) else None
        return None

    def label(self) -> str:
        code = self.error_code
        if code is not None:
            try:
                return f"Error {ErrorCode(code).name} ({code})"
            except ValueError:
                return f"Error {code}"
        if self.problem:
            return f"undecodable frame ({self.problem})"
        return self.name


def decode_frame(body: bytes) -> Frame:
    try:
        sealed = open_envelope(body)
    except RemoteProtocolError as exc:
        return Frame(body, problem=exc.message)
    cls = REGISTRY.get(sealed.type)
    name = cls.__name__ if cls else f"unknown type 0x{sealed.type:03x}"
    return Frame(body, sealed.type, name, sealed.body)


def describe_stream(data: bytes) -> list[str]:
    decoder = FrameDecoder(max_frame=1 << 30)
    out = []
    try:
        decoder.feed(data)
        while (body := decoder.next_frame()) is not None:
            frame = decode_frame(body)
            out.append(f"{frame.label()}: {frame.body if frame.body is not None else ''}"[:400])
        if decoder.buffered:
            out.append(f"({decoder.buffered} bytes of an incomplete or malformed frame)")
    except RemoteProtocolError as exc:
        out.append(f"(not a frame stream: {exc.message})")
    return out or ["(nothing)"]


@dataclass(slots=True)
class Observation:
    """What the target did after our last bytes."""

    frames: list[Frame]
    end: str  # "clean-close", "reset" or "open"
    elapsed: float  # seconds until the end (or the budget)
    first_reply: float | None  # seconds until the first frame or close
    garbage: int = 0  # bytes that did not form a frame

    @property
    def first_error(self) -> Frame | None:
        return next((f for f in self.frames if f.error_code is not None), None)

    def summary(self) -> str:
        parts = [f.label() for f in self.frames]
        if self.garbage:
            parts.append(f"{self.garbage} stray bytes")
        ending = {"clean-close": "connection closed", "reset": "connection reset",
                  "open": f"silence for {self.elapsed:.2f} s"}[self.end]  # fmt: skip
        return ", then ".join([*parts, ending])


class RawClient:
    """One TCP connection to the target, recorded."""

    def __init__(self, stream: trio.SocketStream, transcript: Transcript) -> None:
        self.stream = stream
        self.transcript = transcript
        self._decoder = FrameDecoder(max_frame=1 << 24)
        self._last_sent = time.monotonic()
        self.closed = False
        self.pending: list[Frame] = []

    @classmethod
    async def connect(cls, address: str, transcript: Transcript | None = None) -> RawClient:
        host, port = split_address(address)
        try:
            stream = await trio.open_tcp_stream(host, port)
        except OSError as exc:
            raise ConnectionLost(f"cannot connect to {address}: {exc.strerror or exc}") from None
        client = cls(stream, transcript or Transcript())
        client.transcript.event(f"connected to {address}")
        return client

    async def send(self, data: bytes, note: str = "") -> bool:
        """Write bytes; False if the target already closed (recorded, not raised)."""
        self.transcript.add(OUT, data, note)
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self.transcript.event(f"send failed: {exc or type(exc).__name__}")
            return False
        self._last_sent = time.monotonic()
        return True

    async def send_slowly(
        self, data: bytes, delay: float, *, budget: float = 0.0, until: float | None = None
    ) -> int:
        """Write `data` in pieces, `delay` seconds apart (a slow sender); returns the number of
        pieces written, 0 if the connection broke.

        One byte at a time when the `budget` (seconds) allows a pause per byte; otherwise small
        pieces, at most one pause per 2 ms of the budget (a timer's granularity is about a
        millisecond). `until` (Trio time) is when the last byte must be out, however late the
        pauses end on a busy machine: a pause that would end past it is not taken, and the
        rest goes in one write. The slow sender thus stays inside the target's Hello
        deadline at any load, and the frame is still written in pieces with pauses between.
        """
        step = 1
        if budget > 0:
            pauses = max(1, int(budget / 0.002))
            step = max(1, -(-len(data) // pauses))
            delay = min(delay, budget / max(1, -(-len(data) // step)) / 2)
        pieces = 0
        i = 0
        while i < len(data):
            late = until is not None and trio.current_time() + delay >= until
            end = len(data) if late and pieces else i + step
            if not await self.send(data[i:end]):
                return 0
            pieces += 1
            i = end
            if i < len(data):
                await trio.sleep(delay)
        return pieces

    async def half_close(self) -> None:
        try:
            await self.stream.send_eof()
            self.transcript.event("sent EOF (half close)")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async def read_frame(self, budget: float) -> Frame | None:
        """The next whole frame, or None if the connection ended or stayed silent for
        `budget` seconds."""
        obs = await self._read(budget, stop_after_frame=True)
        return obs.frames[0] if obs.frames else None

    async def observe(self, budget: float) -> Observation:
        """Read until the target closes or `budget` seconds have passed since our last send."""
        return await self._read(budget, stop_after_frame=False)

    async def _read(self, budget: float, *, stop_after_frame: bool) -> Observation:
        start = self._last_sent
        frames: list[Frame] = []
        first: float | None = None
        end = "open"
        with trio.move_on_after(max(0.0, start + budget - time.monotonic())):
            while True:
                while self.pending:
                    frames.append(self.pending.pop(0))
                    if stop_after_frame:
                        return Observation(frames, "open", time.monotonic() - start, first)
                if self.closed:
                    end = "clean-close"
                    break
                try:
                    data = await self.stream.receive_some(65536)
                except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                    self.transcript.event(f"connection reset: {exc or type(exc).__name__}")
                    self.closed = True
                    end = "reset"
                    first = first if first is not None else time.monotonic() - start
                    break
                if first is None:
                    first = time.monotonic() - start
                if not data:
                    self.transcript.event("target closed the connection")
                    self.closed = True
                    end = "clean-close"
                    break
                self.transcript.add(IN, bytes(data))
                self._absorb(bytes(data))
        garbage = self._decoder.buffered if end != "open" else 0
        return Observation(frames, end, time.monotonic() - start, first, garbage)

    def _absorb(self, data: bytes) -> None:
        try:
            self._decoder.feed(data)
            while (body := self._decoder.next_frame()) is not None:
                self.pending.append(decode_frame(body))
        except RemoteProtocolError as exc:
            self.pending.append(Frame(data, problem=f"bad framing from the target: {exc}"))
            self._decoder = FrameDecoder(max_frame=1 << 24)

    async def abort(self) -> None:
        """Close with a TCP reset (SO_LINGER 0): an abrupt close, not a FIN."""
        self.transcript.event("aborting (RST)")
        with contextlib.suppress(OSError):
            self.stream.socket.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
        await self.aclose()

    async def aclose(self) -> None:
        self.closed = True
        with trio.CancelScope(shield=True):
            await self.stream.aclose()
