"""Limits of a live license-server process: connections, handshake and idle timeouts, frame
size, per-peer rate, and a well-behaved client's p99 latency under a flood of abusive
connections (within 3x of its unloaded value, both measured in this run).

The daemon is a real process (zygote.py) started with small `runtime.service.Limits` so the
limits bite quickly; the defaults are documented in docs/RELIABILITY.md.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import TypedDict

import pytest
import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.protocol import Connection, Conversation, Direction, ErrorCode
from tslic.protocol.errors import RemoteProtocolError, ServiceError
from tslic.protocol.framing import PREFIX
from tslic.protocol.messages.licensing import ReturnLicense
from tslic.runtime.clock import WallClock
from tslic.runtime.peer import connect
from tslic.runtime.stream import MessageStream

from tests.reliability import support as rs
from tests.reliability.conftest import Zygote
from tools.reliability_report import Figures

# Latency samples per condition. The p99 of 300 was the 3rd worst sample, so two scheduling
# hiccups on a shared machine decided it (the ratio failed about one full run in seven);
# with 600 it is the 6th worst.
SAMPLES = 600
ROUNDS = 3
SLOW_SENDERS = 50  # more than max_connections: they fill the server and are cut off
SPAMMERS = 4  # connections sending garbage or oversized prefixes back to back


class LimitArgs(TypedDict):
    max_connections: int
    handshake_timeout: float
    idle_timeout: float
    max_frame: int
    rate_per_second: float
    rate_burst: float
    accept_rate: float
    accept_burst: float


LIMITS = LimitArgs(
    max_connections=40,
    handshake_timeout=0.5,
    idle_timeout=0.8,
    max_frame=4096,
    rate_per_second=300.0,
    rate_burst=30.0,
    accept_rate=300.0,
    accept_burst=60.0,
)


async def fatal_code(stream: MessageStream) -> ErrorCode:
    with pytest.raises(RemoteProtocolError) as info:
        await stream.receive()
    return info.value.code


def raw(tcp: trio.SocketStream) -> MessageStream:
    conn = Connection(
        conversation=Conversation.LICENSING,
        our_role=Direction.CLIENT,
        key=Ed25519PrivateKey.generate(),
        nonce_source=lambda: os.urandom(16),
    )
    return MessageStream(tcp, conn, WallClock().now)


async def timed_requests(s: MessageStream, n: int) -> list[float]:
    """Latencies (s) of `n` cheap refused requests on an honest connection."""
    out = []
    for i in range(n):
        start = trio.current_time()
        with pytest.raises(ServiceError) as info:
            await s.request(ReturnLicense(license_id=10**9 + i, hwid=bytes(32)))
        assert info.value.code is ErrorCode.LICENSE_NOT_FOUND
        out.append(trio.current_time() - start)
        await trio.sleep(0.005)  # a paced client, as real terminal servers are
    return out


async def join_despite_flood(address: str, ts: rs.TermServ) -> tuple[float, int]:
    """A newcomer retries SERVER_BUSY every 20 ms; returns (seconds to get in, refusals)."""
    start, busy = trio.current_time(), 0
    while True:
        try:
            async with rs.ts_stream(address, ts, WallClock()) as s:
                await timed_requests(s, 1)
                return trio.current_time() - start, busy
        except RemoteProtocolError as exc:
            if exc.code is not ErrorCode.SERVER_BUSY:
                raise
            busy += 1
            await trio.sleep(0.02)


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


async def test_limits_and_latency_under_flood(
    tmp_path: Path, zygote: Zygote, figures: Figures
) -> None:
    site = await rs.prepare(tmp_path, pack=10, terminal_servers=2)
    honest, other = site.terminal_servers
    pid, address = await rs.spawn(zygote, site.data_dir, tmp_path, "limits", **LIMITS)
    stack = contextlib.AsyncExitStack()
    try:
        # Handshake timeout: a slow sender (half a prefix) loses its slot.
        slow = raw(await connect(address))
        await slow.stream.send_all(b"\x00\x00")
        assert await fatal_code(slow) is ErrorCode.HANDSHAKE_TIMEOUT
        await slow.aclose()
        # Maximum frame size: refused from the prefix alone.
        big = raw(await connect(address))
        await big.stream.send_all(PREFIX.pack(LIMITS["max_frame"] + 1) + b"x" * 16)
        assert await fatal_code(big) is ErrorCode.FRAME_TOO_LARGE
        await big.aclose()
        # Idle timeout after the Welcome.
        async with rs.ts_stream(address, other, WallClock()) as idle:
            assert await fatal_code(idle) is ErrorCode.IDLE_TIMEOUT
        # Per-peer rate: a burst beyond 30 is refused (the connection goes on), then recovers.
        codes = []
        async with rs.ts_stream(address, other, WallClock()) as s:
            for i in range(120):
                try:
                    await s.request(ReturnLicense(license_id=10**9 + i, hwid=bytes(32)))
                except ServiceError as exc:
                    codes.append(exc.code)
            assert ErrorCode.RATE_LIMITED in codes
            await trio.sleep(0.5)
            with pytest.raises(ServiceError) as info:
                await s.request(ReturnLicense(license_id=1, hwid=bytes(32)))
            assert info.value.code is ErrorCode.LICENSE_NOT_FOUND
        # Maximum connections: 40 silent sockets fill the server; the next is told busy.
        holders = [await connect(address) for _ in range(LIMITS["max_connections"])]
        await trio.sleep(0.05)
        busy = raw(await connect(address))
        assert await fatal_code(busy) is ErrorCode.SERVER_BUSY
        await busy.aclose()
        for holder in holders:
            await holder.aclose()
        await trio.sleep(0.6)  # their handshake timeouts free the slots (server side)

        steady = await stack.enter_async_context(rs.ts_stream(address, honest, WallClock()))
        unloaded: list[float] = []
        loaded: list[float] = []
        flood_pids: list[int] = []

        async def start_flood(tag: str, spammers: int) -> None:
            fpid, _ = await rs.spawn(
                zygote, tmp_path, tmp_path, f"flood-{tag}", role="flood", target=address,
                seed=99, slow_senders=SLOW_SENDERS, spammers=spammers,
            )  # fmt: skip
            flood_pids.append(fpid)

        async def stop_flood() -> None:
            fpid = flood_pids.pop()
            os.kill(fpid, signal.SIGKILL)
            await zygote.call(op="wait", pid=fpid)

        # Quiet and flooded phases alternate, so whatever else the machine is doing falls on
        # both alike; each condition's samples are pooled before taking the p99. The flood
        # runs in its own process: the client measured here shares nothing with it.
        for round_ in range(ROUNDS):
            unloaded += await timed_requests(steady, SAMPLES // ROUNDS)
            await start_flood(str(round_), SPAMMERS)
            await trio.sleep(0.2)
            loaded += await timed_requests(steady, SAMPLES // ROUNDS)
            await stop_flood()
            # Let the daemon finish with the flood (held slots time out) before a quiet phase.
            await trio.sleep(LIMITS["handshake_timeout"] + 0.1)
        # Slow senders cannot hold slots: a newcomer gets in within about one handshake
        # timeout, however many of them are queueing.
        await start_flood("slow", 0)
        await trio.sleep(0.2)
        with trio.fail_after(3 * LIMITS["handshake_timeout"]):
            joined, refusals = await join_despite_flood(address, other)
        await stop_flood()
        ratio = p99(loaded) / p99(unloaded)
        assert ratio <= 3.0, f"p99 {p99(unloaded) * 1e3:.2f} ms -> {p99(loaded) * 1e3:.2f} ms"
        os.kill(pid, 0)
    finally:
        await stack.aclose()
        os.kill(pid, signal.SIGTERM)
        await zygote.call(op="wait", pid=pid)
    figures.set("p99_unloaded_ms", round(p99(unloaded) * 1e3, 3))
    figures.set("p99_flooded_ms", round(p99(loaded) * 1e3, 3))
    figures.set("p99_ratio", round(ratio, 2))
    figures.set("newcomer_join_seconds_under_flood", round(joined, 3))
    figures.add("newcomer_busy_refusals", refusals)
    for kind, code in (
        ("slow sender (handshake timeout)", "HANDSHAKE_TIMEOUT"),
        ("oversized frame", "FRAME_TOO_LARGE"),
        ("idle connection", "IDLE_TIMEOUT"),
        ("request flood from one peer", "RATE_LIMITED"),
        ("connection flood", "SERVER_BUSY"),
    ):
        figures.attack(kind, code=code, refused=1, counted=True)
