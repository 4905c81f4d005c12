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
import itertools
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

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


# Each test worker takes display numbers from its own range, and never the one it took
# last: with `-displayfd` alone every Xvfb took the lowest free number, so one worker's
# Xvfb could start on a number another worker's Xvfb was still giving up, and that one's
# exit then took the new display's name with it ("failed to open display" in a client run
# in the middle of a test, beside other work).
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
_FIRST_DISPLAY = 100 + 50 * (int(_WORKER[2:]) if _WORKER[2:].isdigit() else os.getpid() % 64)
_displays = itertools.cycle(range(_FIRST_DISPLAY, _FIRST_DISPLAY + 50))  # 50 a worker


@asynccontextmanager
async def xvfb() -> AsyncIterator[str]:
    """A private X display: the next free number of this worker's range (one taken by
    another X server makes Xvfb exit at once: the number after it is tried)."""
    for _ in range(20):
        # -noreset: by default the server resets when its last client leaves, and a client
        # connecting meanwhile is refused ("unable to open display"). The paint poll's xwd
        # runs come and go while the RDP client starts: beside two CPU burners, 4 of 900
        # connections right after a disconnection failed so, none of 900 with -noreset.
        screen = ["-screen", "0", "1024x768x24", "-nolisten", "tcp", "-noreset"]
        process = await trio.lowlevel.open_process(
            ["Xvfb", f":{next(_displays)}", "-displayfd", "1", *screen],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert process.stdout is not None
            said = b""
            with trio.fail_after(LIMIT):
                while not said.endswith(b"\n"):
                    chunk = await process.stdout.receive_some(16)
                    if not chunk:
                        break  # exited: the number is taken
                    said += chunk
            if said.endswith(b"\n"):
                yield f":{said.decode().strip()}"
                return
        finally:
            process.terminate()
            with trio.move_on_after(5):
                await process.wait()
    raise AssertionError("Xvfb found no free display in 20 tries")


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


async def wait_for_outcome(
    display: str, folder: Path, name: str, *, ran: list[tuple[int, str]] | None = None
) -> Screen:
    """Grab the display until the outcome bitmap's title shows; keep it as `name`.png.

    `ran` is where the caller's client run puts (exit status, output) when the client exits:
    a client that exits before anything is painted fails at once with its own output, rather
    than at the hang guard with none.
    """
    with trio.fail_after(LIMIT):
        while True:
            if ran:
                code, output = ran[0]
                raise AssertionError(f"the client exited ({code}) before painting: {output}")
            screen = await grab(display)
            if screen.count_where(amber) > 200:
                (folder / f"{name}.png").write_bytes(screen.png())
                return screen
            await trio.sleep(0.2)  # polling for paint, bounded by the hang guard above


# ---- a real deployment as separate processes (as tests/admin/test_cli_end_to_end.py) ------

TSLIC = [sys.executable, "-m", "tslic.cli.main"]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore::DeprecationWarning"}


def tslic(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*TSLIC, *args], capture_output=True, text=True, timeout=120, env=ENV, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"tslic {' '.join(args)} failed: {done.stderr}{done.stdout}")
    return done


class Deployment:
    """Clearinghouse, license servers and agents, each a `tslic` process."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.procs: list[subprocess.Popen[str]] = []
        self.info: dict[str, dict[str, Any]] = {}

    def start(self, name: str, *args: str) -> dict[str, Any]:
        ready = self.root / f"{name}.ready"
        log = (self.root / f"{name}.log").open("w")
        proc = subprocess.Popen(
            [*TSLIC, *args, "--ready-file", str(ready)],
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
            env=ENV,
        )
        log.close()
        self.procs.append(proc)
        deadline = time.monotonic() + LIMIT
        while not ready.exists():  # waiting for another process, not for time to pass
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited: {(self.root / f'{name}.log').read_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} did not become ready")
            time.sleep(0.05)
        info: dict[str, Any] = json.loads(ready.read_text())
        self.info[name] = info
        return info

    def admin(self, server: str, *args: str) -> Any:
        info = self.info[server]
        done = tslic(
            "admin", "--server", info["address"], "--credential", info["admin_credential"],
            "--json", *args,
        )  # fmt: skip
        return json.loads(done.stdout)

    def license_server(self, name: str, version: str, *extra: str) -> dict[str, Any]:
        ch = self.info["ch"]
        return self.start(
            name, "server", "--data", str(self.root / name), "--version", version,
            "--name", name, "--clearinghouse", ch["address"],
            "--trust-root", str(self.root / "root.pem"), *extra,
        )  # fmt: skip

    def activate_with_cals(self, name: str, product: str, count: int = 5) -> None:
        self.admin(
            name, "properties", "--first-name", "Ada", "--last-name", "Admin",
            "--company", "Contoso", "--country", "US",
        )  # fmt: skip
        self.admin(name, "activate", "--method", "automatic")
        bought = tslic(
            "clearinghouse", "add-retail", "--data", str(self.root / "ch"),
            "--product", product, "--count", str(count), "--json",
        )  # fmt: skip
        code = str(json.loads(bought.stdout)["reference"])
        self.admin(
            name, "install", "--program", "retail", "--product", product,
            "--count", str(count), "--code", code,
        )  # fmt: skip

    def clearinghouse(self) -> None:
        self.start("ch", "clearinghouse", "serve", "--data", str(self.root / "ch"))
        tslic(
            "clearinghouse", "export-root", "--data", str(self.root / "ch"),
            "--out", str(self.root / "root.pem"),
        )  # fmt: skip

    def stop(self) -> list[int]:
        codes = []
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                codes.append(proc.wait(timeout=30))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(proc.wait())
        return codes


async def run_until_outcome(
    argv: list[str], env: dict[str, str], display: str, folder: Path, name: str
) -> tuple[Screen, str]:
    """Run a client until the outcome bitmap shows (kept as `name`.png), then close it as a
    user closes the window (SIGTERM); returns the screenshot and the client's output."""
    out_path = folder / f"{name}.out"
    with out_path.open("wb") as out:
        process = await trio.lowlevel.open_process(
            argv, env=env, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT
        )
    ran: list[tuple[int, str]] = []  # a client that exits first fails at once, with its output

    async def watch() -> None:
        code = await process.wait()
        ran.append((code, out_path.read_text(errors="replace")))

    try:
        assert process.stdin is not None
        await process.stdin.send_all(b"yes\n")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            screen = await wait_for_outcome(display, folder, name, ran=ran)
            nursery.cancel_scope.cancel()
    finally:
        process.terminate()
        with trio.fail_after(LIMIT):
            await process.wait()
    return screen, out_path.read_text(errors="replace")
