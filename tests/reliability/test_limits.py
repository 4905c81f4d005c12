"""Limits of a live license-server process: connections, handshake and idle timeouts, frame
size, per-peer rate, and a well-behaved client served correctly under a flood of abusive
connections, with a newcomer getting in although slow senders queue for every slot.

The daemon is a real process (zygote.py) started with small `runtime.service.Limits` so the
limits bite quickly; the defaults are documented in docs/RELIABILITY.md. Every assertion is
about behaviour (codes, counts); how fast the honest client is served under the flood, as a
ratio to the quiet case, is a benchmark: bench/flood_latency.py. Wall-clock bounds here are
hang guards (rs.HANG_GUARD).
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
from tslic.runtime.peer import PeerStream, connect
from tslic.runtime.stream import MessageStream

from tests.reliability import support as rs
from tests.reliability.conftest import Zygote
from tools.reliability_report import Figures

REQUESTS = 40  # honest requests during the flood, each answered with the right code
PACE = 0.06  # seconds between them: 16/s, below the per-peer rate whatever the machine's speed
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
    handshake_timeout=1.0,
    idle_timeout=1.5,
    max_frame=4096,
    # 20/s: a burst of 120 requests is refused beyond 30 + 20/s unless each one took more
    # than 37 ms (far above a loaded machine's round trip); the paced client stays below it.
    rate_per_second=20.0,
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


async def paced_requests(s: MessageStream, n: int) -> int:
    """`n` cheap requests on an honest connection, each refused LICENSE_NOT_FOUND (its
    documented answer): the service still judges them. Returns how many were answered."""
    for i in range(n):
        with pytest.raises(ServiceError) as info:
            await s.request(ReturnLicense(license_id=10**9 + i, hwid=bytes(32)))
        assert info.value.code is ErrorCode.LICENSE_NOT_FOUND
        await trio.sleep(PACE)  # a paced client, as real terminal servers are
    return n


async def join_despite_flood(
    stack: contextlib.AsyncExitStack[bool | None], address: str, ts: rs.TermServ
) -> tuple[PeerStream, int]:
    """A newcomer retries SERVER_BUSY every 20 ms until it is in; returns (stream, refusals).
    Any other refusal fails the test; rs.HANG_GUARD bounds the wait."""
    busy = 0
    with trio.fail_after(rs.HANG_GUARD):
        while True:
            try:
                return await stack.enter_async_context(rs.ts_stream(address, ts, WallClock())), busy
            except RemoteProtocolError as exc:
                if exc.code is not ErrorCode.SERVER_BUSY:
                    raise
                busy += 1
                await trio.sleep(0.02)


async def test_limits_and_service_under_flood(
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
        holders = [await connect(address) for _ in range(int(LIMITS["max_connections"]))]
        await trio.sleep(0.05)
        busy = raw(await connect(address))
        assert await fatal_code(busy) is ErrorCode.SERVER_BUSY
        await busy.aclose()
        for holder in holders:
            await holder.aclose()
        # Their handshake timeouts free the slots (server side); the honest client waits for
        # that as any newcomer does, retrying SERVER_BUSY.
        steady, _ = await join_despite_flood(stack, address, honest)
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

        # Under a flood of slow senders and spammers (its own process, sharing nothing with
        # the client here) the honest connection keeps being served, every answer right.
        await start_flood("spam", SPAMMERS)
        await trio.sleep(0.2)
        served = await paced_requests(steady, REQUESTS)
        await stop_flood()
        # Slow senders cannot hold slots: a newcomer gets in although more of them queue than
        # there are slots (without the handshake timeout it never would).
        await start_flood("slow", 0)
        await trio.sleep(0.2)
        newcomer, refusals = await join_despite_flood(stack, address, other)
        assert await paced_requests(newcomer, 1) == 1
        await stop_flood()
        os.kill(pid, 0)
    finally:
        await stack.aclose()
        os.kill(pid, signal.SIGTERM)
        await zygote.call(op="wait", pid=pid)
    figures.add("honest_requests_served_under_flood", served)
    figures.add("newcomer_busy_refusals", refusals)
    for kind, code in (
        ("slow sender (handshake timeout)", "HANDSHAKE_TIMEOUT"),
        ("oversized frame", "FRAME_TOO_LARGE"),
        ("idle connection", "IDLE_TIMEOUT"),
        ("request flood from one peer", "RATE_LIMITED"),
        ("connection flood", "SERVER_BUSY"),
    ):
        figures.attack(kind, code=code, refused=1, counted=True)
