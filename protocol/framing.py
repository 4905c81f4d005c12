"""Length-prefixed frames: a 4-byte big-endian length, then that many bytes of body.

Contract (docs/PROTOCOL.md §2):
- A frame body is 1 to `max_frame` bytes. Length zero is malformed; a length above `max_frame`
  is refused as soon as the 4 prefix bytes have arrived, before any of the body is buffered.
- `FrameDecoder` accepts bytes in any chunking and yields whole bodies in order. Bytes after a
  complete frame stay buffered for the next frame.
- End of stream is `feed(b"")`, as with `recv()`. EOF between frames is clean; EOF inside a
  frame is a `RemoteProtocolError` (MALFORMED_FRAME).
"""

from __future__ import annotations

import struct

from .errors import ErrorCode, LocalProtocolError, RemoteProtocolError

PREFIX = struct.Struct(">I")
DEFAULT_MAX_FRAME = 64 * 1024
"""Largest frame body accepted by default; a daemon may configure another (§10 of the spec)."""


def encode_frame(body: bytes, *, max_frame: int = DEFAULT_MAX_FRAME) -> bytes:
    """Prefix `body` with its length.

    Raises:
        LocalProtocolError: FRAME_TOO_LARGE if the body is empty or longer than `max_frame`.
    """
    if not 0 < len(body) <= max_frame:
        raise LocalProtocolError(
            f"frame body of {len(body)} bytes is outside 1..{max_frame}",
            code=ErrorCode.FRAME_TOO_LARGE,
        )
    return PREFIX.pack(len(body)) + body


class FrameDecoder:
    """Incremental decoder of length-prefixed frames (sans-IO: bytes in, bodies out)."""

    __slots__ = ("_buf", "_eof", "_need", "max_frame")

    def __init__(self, *, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self._need: int | None = None  # body length once the prefix has been read
        self._eof = False

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned in a frame."""
        return len(self._buf)

    @property
    def at_eof(self) -> bool:
        return self._eof

    def feed(self, data: bytes) -> None:
        """Add received bytes; `b""` marks end of stream.

        Raises:
            RemoteProtocolError: FRAME_TOO_LARGE or MALFORMED_FRAME as soon as a prefix is
                known to be bad (so a huge length never makes us buffer its body).
        """
        if self._eof:
            if data:
                raise LocalProtocolError(
                    "data fed after end of stream", code=ErrorCode.ILLEGAL_STATE
                )
            return
        if not data:
            self._eof = True
            return
        self._buf += data
        self._check_prefix()

    def _check_prefix(self) -> None:
        if self._need is None and len(self._buf) >= PREFIX.size:
            (length,) = PREFIX.unpack_from(self._buf)
            if length == 0:
                raise RemoteProtocolError("frame of length zero", code=ErrorCode.MALFORMED_FRAME)
            if length > self.max_frame:
                raise RemoteProtocolError(
                    f"frame of {length} bytes exceeds the maximum of {self.max_frame}",
                    code=ErrorCode.FRAME_TOO_LARGE,
                )
            self._need = length

    def next_frame(self) -> bytes | None:
        """Return the next whole frame body, or None if more bytes are needed.

        Returns None at a clean end of stream too; check `at_eof` to tell the two apart.

        Raises:
            RemoteProtocolError: MALFORMED_FRAME if the stream ended inside a frame.
        """
        self._check_prefix()
        need = self._need
        if need is not None and len(self._buf) >= PREFIX.size + need:
            body = bytes(self._buf[PREFIX.size : PREFIX.size + need])
            del self._buf[: PREFIX.size + need]
            self._need = None
            # The next prefix is judged on the next call, so a bad frame after a good one
            # never costs the good one.
            return body
        if self._eof and self._buf:
            raise RemoteProtocolError(
                f"connection closed inside a frame ({len(self._buf)} bytes pending)",
                code=ErrorCode.MALFORMED_FRAME,
            )
        return None
