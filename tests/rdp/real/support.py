"""Support for the real-client tests: Xvfb displays, client runs, screenshots.

Contract: `xvfb()` yields a private display; `run_client(argv, env)` runs rdesktop or
xfreerdp to its exit under a hang guard and returns (status, output); `grab(display)` runs
`xwd -root -silent` and returns a `Screen` (width, height, RGB rows); `Screen.png()` encodes
it as a PNG (zlib, no imaging library); `wait_for_outcome` grabs until the outcome bitmap's
amber title shows and keeps the PNG in the test's folder. Only the ZPixmap, 32-bit TrueColor
dumps Xvfb writes are read.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import struct
import subprocess
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import trio


@dataclasses.dataclass(frozen=True)
class Screen:
    width: int
    height: int
    rgb: bytes  # width * height * 3

    def count_where(self, test: Callable[[bytes], bool]) -> int:
        return sum(1 for i in range(0, len(self.rgb), 3) if test(self.rgb[i : i + 3]))

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


MISSING = [b for b in ("rdesktop", "xfreerdp", "Xvfb", "xwd") if shutil.which(b) is None]
LIMIT = 90  # seconds for one whole client run: a hang guard, not a timing assumption


def amber(rgb: bytes) -> bool:
    """The outcome bitmap's title colour (RGB565 amber), however a client widens it."""
    return rgb[0] >= 0xE0 and 0xC0 <= rgb[1] <= 0xF0 and rgb[2] <= 0x20


@asynccontextmanager
async def xvfb() -> AsyncIterator[str]:
    """A private X display; Xvfb picks a free number and writes it to stdout."""
    process = await trio.lowlevel.open_process(
        ["Xvfb", "-displayfd", "1", "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        number = b""
        with trio.fail_after(LIMIT):
            while not number.endswith(b"\n"):
                chunk = await process.stdout.receive_some(16)
                if not chunk:
                    raise AssertionError("Xvfb exited before reporting its display")
                number += chunk
        yield f":{number.decode().strip()}"
    finally:
        process.terminate()
        with trio.move_on_after(5):
            await process.wait()


def client_env(home: Path, display: str) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    env["DISPLAY"] = display
    return env


def client_argv(client: str, address: str, *, user: str, name: str, tls: bool) -> list[str]:
    """The command a person would type (docs/RDP.md); xfreerdp picks TLS or Standard RDP
    Security with /sec:, rdesktop takes what the server selects."""
    if client == "rdesktop":
        return ["rdesktop", "-u", user, "-p", "pw", "-n", name, address]
    security = ["/sec:tls", "/cert:ignore"] if tls else ["/sec:rdp"]
    return [
        "xfreerdp",
        f"/v:{address}",
        *security,
        f"/u:{user}",
        "/p:pw",
        f"/client-hostname:{name}",
    ]


async def run_client(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run a client to its exit; rdesktop's certificate question is answered "yes"."""
    with trio.fail_after(LIMIT):
        result = await trio.run_process(
            argv,
            env=env,
            check=False,
            stdin=b"yes\n",
            capture_stdout=True,
            capture_stderr=True,
        )
    return result.returncode, (result.stdout + result.stderr).decode(errors="replace")


async def wait_for_outcome(display: str, folder: Path, name: str) -> Screen:
    """Grab the display until the outcome bitmap's title shows; keep it as `name`.png."""
    with trio.fail_after(LIMIT):
        while True:
            screen = await grab(display)
            if screen.count_where(amber) > 200:
                (folder / f"{name}.png").write_bytes(screen.png())
                return screen
            await trio.sleep(0.2)  # polling for paint, bounded by the hang guard above
