"""Screenshots of an Xvfb display for the real-client tests: `xwd -root` read in Python.

Contract: `grab(display)` runs `xwd -root -silent` on the display and returns a `Screen`
(width, height, RGB rows); `Screen.png()` encodes it as a PNG (zlib, no imaging library);
`Screen.count(rgb)` counts pixels of one colour, which is how a test sees the outcome
bitmap. Only the ZPixmap, 24/32-bit TrueColor dumps Xvfb writes are read.
"""

from __future__ import annotations

import dataclasses
import struct
import subprocess
import zlib

import trio


@dataclasses.dataclass(frozen=True)
class Screen:
    width: int
    height: int
    rgb: bytes  # width * height * 3

    def count(self, colour: tuple[int, int, int]) -> int:
        needle = bytes(colour)
        return sum(1 for i in range(0, len(self.rgb), 3) if self.rgb[i : i + 3] == needle)

    def png(self) -> bytes:
        def chunk(kind: bytes, data: bytes) -> bytes:
            body = kind + data
            return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

        stride = self.width * 3
        raw = b"".join(
            b"\x00" + self.rgb[y * stride : (y + 1) * stride] for y in range(self.height)
        )
        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 6))
            + chunk(b"IEND", b"")
        )


def parse_xwd(data: bytes) -> Screen:
    fields = struct.unpack(">25I", data[:100])
    header_size, version, pixmap_format = fields[0], fields[1], fields[2]
    width, height = fields[4], fields[5]
    byte_order, bits_per_pixel, bytes_per_line = fields[7], fields[11], fields[12]
    ncolors = fields[19]
    if version != 7 or pixmap_format != 2 or bits_per_pixel != 32:
        raise ValueError(f"unsupported xwd dump: version {version}, {bits_per_pixel} bpp")
    offset = header_size + 12 * ncolors
    out = bytearray()
    for y in range(height):
        row = data[offset + y * bytes_per_line : offset + y * bytes_per_line + 4 * width]
        if byte_order == 0:  # LSBFirst: B G R X
            out += b"".join(bytes((row[i + 2], row[i + 1], row[i])) for i in range(0, len(row), 4))
        else:  # MSBFirst: X R G B
            out += b"".join(row[i + 1 : i + 4] for i in range(0, len(row), 4))
    return Screen(width=width, height=height, rgb=bytes(out))


async def grab(display: str) -> Screen:
    result = await trio.run_process(
        ["xwd", "-root", "-silent", "-display", display],
        capture_stdout=True,
        stderr=subprocess.DEVNULL,
    )
    return parse_xwd(result.stdout)
