"""Bounded byte reading and writing shared by every RDP codec in this package.

Contract:
- `Reader` never slices past its buffer and never allocates more than the bytes it was given:
  a length field that points past the end raises `RemoteProtocolError` (MALFORMED_FRAME) with
  the structure and field named, before anything is copied. So a 4 GB length costs nothing.
- `malformed`, `invalid` and `too_large` build the receive-side errors every parser raises;
  `local` builds the `LocalProtocolError` a builder raises when asked to encode a bad value.
- Integers: `u16le`/`u32le` for RDP structures (little-endian), `u16be` for TPKT, X.224 and
  MCS PER fields (big-endian), as MS-RDPBCGR §2.2.1 and T.123/T.125 specify.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import ErrorCode, LocalProtocolError, RemoteProtocolError

_U16LE = struct.Struct("<H")
_U32LE = struct.Struct("<I")
_U16BE = struct.Struct(">H")


def malformed(what: str, message: str) -> RemoteProtocolError:
    """A structure that does not parse (truncated, inconsistent lengths)."""
    return RemoteProtocolError(f"{what}: {message}", code=ErrorCode.MALFORMED_FRAME)


def invalid(what: str, message: str) -> RemoteProtocolError:
    """A structure that parses but carries a value the protocol forbids."""
    return RemoteProtocolError(f"{what}: {message}", code=ErrorCode.INVALID_FIELD)


def too_large(what: str, message: str) -> RemoteProtocolError:
    """A length field above this implementation's documented limit."""
    return RemoteProtocolError(f"{what}: {message}", code=ErrorCode.FRAME_TOO_LARGE)


def local(what: str, message: str) -> LocalProtocolError:
    """We were asked to build something the protocol forbids."""
    return LocalProtocolError(f"{what}: {message}", code=ErrorCode.INVALID_FIELD)


@contextmanager
def as_remote(what: str) -> Iterator[None]:
    """Inside a parser: a value our own constructors reject came from the peer, so report it
    as a `RemoteProtocolError` (INVALID_FIELD) rather than a local one."""
    try:
        yield
    except LocalProtocolError as exc:
        raise invalid(what, exc.message) from None


def u16le(value: int) -> bytes:
    return _U16LE.pack(value)


def u32le(value: int) -> bytes:
    return _U32LE.pack(value)


def u16be(value: int) -> bytes:
    return _U16BE.pack(value)


class Reader:
    """A cursor over one received structure; every read is bounds-checked."""

    __slots__ = ("_data", "_pos", "what")

    def __init__(self, data: bytes, what: str) -> None:
        self._data = bytes(data)
        self._pos = 0
        self.what = what

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    @property
    def position(self) -> int:
        return self._pos

    def take(self, n: int, field: str) -> bytes:
        if n < 0 or n > self.remaining:
            raise malformed(self.what, f"{field} needs {n} bytes but {self.remaining} remain")
        start = self._pos
        self._pos += n
        return self._data[start : self._pos]

    def peek(self, n: int) -> bytes:
        return self._data[self._pos : self._pos + n]

    def skip(self, n: int, field: str) -> None:
        self.take(n, field)

    def u8(self, field: str) -> int:
        return self.take(1, field)[0]

    def u16le(self, field: str) -> int:
        value: int = _U16LE.unpack(self.take(2, field))[0]
        return value

    def u32le(self, field: str) -> int:
        value: int = _U32LE.unpack(self.take(4, field))[0]
        return value

    def u16be(self, field: str) -> int:
        value: int = _U16BE.unpack(self.take(2, field))[0]
        return value

    def rest(self) -> bytes:
        return self.take(self.remaining, "rest")

    def end(self) -> None:
        """Require that the structure was consumed exactly."""
        if self.remaining:
            raise malformed(self.what, f"{self.remaining} unexpected trailing bytes")


def utf16z(raw: bytes) -> str:
    """Decode a UTF-16LE string that may end in (or be padded with) NULs.

    Raises:
        ValueError: never; undecodable code units become U+FFFD (names are informational).
    """
    text = raw.decode("utf-16-le", errors="replace") if len(raw) % 2 == 0 else ""
    if len(raw) % 2:
        text = raw[:-1].decode("utf-16-le", errors="replace")
    return text.split("\x00", 1)[0]


def encode_utf16z(text: str, size: int | None = None, *, what: str = "string") -> bytes:
    """UTF-16LE with a terminating NUL; zero-padded to `size` bytes when given."""
    raw = text.encode("utf-16-le") + b"\x00\x00"
    if size is not None:
        if len(raw) > size:
            raise local(what, f"{text!r} needs {len(raw)} bytes, the field holds {size}")
        raw = raw.ljust(size, b"\x00")
    return raw
