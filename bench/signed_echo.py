"""Baseline: how many signed round trips a second a bare Trio server manages, against unsigned.

Contract: `python bench/signed_echo.py [--seconds S] [--connections C] [--json]` runs two
servers in a child process each (so the server has a core to itself, as a license server
would) and drives them from this process with C connections in closed loops for S seconds:
- signed: `runtime.service.Server` with a trivial echo Service (MarkLicense -> LicenseMarked):
  every frame is an Ed25519-signed envelope, verified before decoding, and every reply signed,
  both inline on the event loop. It must stay that plain server: it is the bound "a bare Trio
  server that verifies and signs each message" that issue 7's ratios are taken against;
- unsigned: a raw Trio TCP echo of length-prefixed frames of the same size.
It prints round trips per second for both and their ratio. `measure_signed()` is what
bench/load_vs_baseline.py calls to get the bound in the same run. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.protocol import Conversation
from tslic.protocol.domain import PeerRole
from tslic.protocol.messages import Welcome
from tslic.protocol.messages.licensing import LicenseMarked, MarkLicense
from tslic.runtime.clock import WallClock
from tslic.runtime.peer import open_peer
from tslic.runtime.service import Limits, Peer, Server

# Run as a script (`python bench/NAME.py`): the repository root makes `bench` importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.procstat import process_cpu


class EchoService:
    """Answers every MarkLicense with LicenseMarked: signing and verifying, nothing else."""

    conversation = Conversation.LICENSING

    async def on_hello(self, peer: Peer) -> Welcome:
        return Welcome(role=PeerRole.LICENSE_SERVER, name="ECHO", version=2003)

    async def handle(self, peer: Peer, request: Any) -> Any:
        return LicenseMarked(license_id=request.license_id, validated=True)


def _serve_signed(conn: Any) -> None:
    async def main() -> None:
        limits = Limits(rate_per_second=1e9, rate_burst=1e9)
        server = Server(
            EchoService(), key=Ed25519PrivateKey.generate(), clock=WallClock(), limits=limits
        )
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server.serve)
            conn.send(address)
            await trio.to_thread.run_sync(conn.recv, abandon_on_cancel=True)
            server.shutdown()

    trio.run(main)


def _serve_unsigned(conn: Any) -> None:
    async def echo(stream: trio.SocketStream) -> None:
        buffer = b""
        try:
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    return
                buffer += data
                while len(buffer) >= 4:
                    (size,) = struct.unpack(">I", buffer[:4])
                    if len(buffer) < 4 + size:
                        break
                    frame, buffer = buffer[: 4 + size], buffer[4 + size :]
                    await stream.send_all(frame)
        except trio.BrokenResourceError:
            return

    async def main() -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        conn.send(f"127.0.0.1:{listeners[0].socket.getsockname()[1]}")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, echo, listeners)
            await trio.to_thread.run_sync(conn.recv, abandon_on_cancel=True)
            nursery.cancel_scope.cancel()

    trio.run(main)


async def _drive_signed(address: str, connections: int, seconds: float) -> int:
    done = 0
    clock = WallClock()
    hwid = bytes(32)

    async def loop() -> None:
        nonlocal done
        async with open_peer(
            address,
            conversation=Conversation.LICENSING,
            key=Ed25519PrivateKey.generate(),
            clock=clock,
            role=PeerRole.TERMINAL_SERVER,
            name="BENCH",
            version=2003,
        ) as stream:
            end = trio.current_time() + seconds
            n = 0
            while trio.current_time() < end:
                await stream.request(MarkLicense(license_id=n, hwid=hwid))
                done += 1
                n += 1

    async with trio.open_nursery() as nursery:
        for _ in range(connections):
            nursery.start_soon(loop)
    return done


async def _drive_unsigned(address: str, connections: int, seconds: float) -> int:
    done = 0
    host, port = address.rsplit(":", 1)
    frame = struct.pack(">I", 157) + os.urandom(157)  # about the size of a signed request

    async def loop() -> None:
        nonlocal done
        stream = await trio.open_tcp_stream(host, int(port))
        async with stream:
            end = trio.current_time() + seconds
            while trio.current_time() < end:
                await stream.send_all(frame)
                got = 0
                while got < len(frame):
                    got += len(await stream.receive_some(65536))
                done += 1

    async with trio.open_nursery() as nursery:
        for _ in range(connections):
            nursery.start_soon(loop)
    return done


@dataclass(frozen=True)
class EchoRun:
    """One measured echo: round trips per second, and the CPU microseconds per round trip
    spent by the server process and by this (the driving) process."""

    per_second: float
    server_cpu_us: float
    client_cpu_us: float


def _measure(target: Any, driver: Any, connections: int, seconds: float) -> EchoRun:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=target, args=(child,), daemon=True)
    proc.start()
    try:
        address = parent.recv()
        server_before, client_before = process_cpu(proc.pid or 0), time.process_time()
        count: int = trio.run(driver, address, connections, seconds)
        n = max(1, count)
        return EchoRun(
            per_second=count / seconds,
            server_cpu_us=(process_cpu(proc.pid or 0) - server_before) / n * 1e6,
            client_cpu_us=(time.process_time() - client_before) / n * 1e6,
        )
    finally:
        parent.send("stop")
        proc.join(timeout=10)
        if proc.is_alive():
            proc.terminate()


def measure_signed(connections: int = 16, seconds: float = 5.0) -> EchoRun:
    """The bare signed-echo server: round trips per second (the bound) and CPU per trip."""
    return _measure(_serve_signed, _drive_signed, connections, seconds)


def measure_unsigned(connections: int = 16, seconds: float = 5.0) -> float:
    """Round trips per second of the unsigned framed echo server."""
    return _measure(_serve_unsigned, _drive_unsigned, connections, seconds).per_second


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    started = time.time()
    signed = measure_signed(args.connections, args.seconds).per_second
    unsigned = measure_unsigned(args.connections, args.seconds)
    result = {
        "signed_round_trips_per_s": round(signed, 1),
        "unsigned_round_trips_per_s": round(unsigned, 1),
        "unsigned_over_signed": round(unsigned / signed, 2) if signed else None,
        "connections": args.connections,
        "seconds": args.seconds,
        "cpus": os.cpu_count(),
        "started_at": started,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"signed echo:   {signed:10.0f} round trips/s")
        print(f"unsigned echo: {unsigned:10.0f} round trips/s  ({unsigned / signed:.1f}x signed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
