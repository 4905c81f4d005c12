"""The real `tslic server` command (`python -m tslic.cli server`) under the same faults: a
forged frame is refused and shows in its Prometheus endpoint (--metrics), SIGKILL under load
loses nothing acknowledged, and SIGTERM ends it with status 0. The long cycle counts run
against forked daemons (zygote.py) that execute the same code; this test proves the command
itself behaves the same way.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.protocol import Connection, Conversation, Direction, ErrorCode
from tslic.protocol.domain import PeerRole
from tslic.protocol.errors import ConnectionLost, ProtocolError, RemoteProtocolError
from tslic.protocol.messages import Hello
from tslic.runtime.clock import WallClock
from tslic.runtime.peer import connect, split_address
from tslic.runtime.stream import MessageStream

from tests.reliability import support as rs
from tools.reliability_report import Figures

CYCLES = 3


async def start(data: Path, tmp: Path, tag: str) -> tuple[trio.Process, dict[str, Any]]:
    ready = tmp / f"cli-ready-{tag}.json"
    log = (tmp / "cli.log").open("ab")
    try:
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "tslic.cli", "server", "--data", str(data), "--name",
             rs.LS_NAME, "--metrics", "127.0.0.1:0", "--ready-file", str(ready)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    finally:
        log.close()
    await rs.wait_ready(ready, limit=30)
    return process, json.loads(ready.read_text())


async def scrape(address: str) -> str:
    host, port = split_address(address)
    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        await stream.send_all(b"GET /metrics HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
    return data.decode()


def errors_of(text: str, code: ErrorCode) -> float:
    for line in text.splitlines():
        if line.startswith(f'tslic_errors_total{{code="{code.name}"}}'):
            return float(line.split()[-1])
    return 0.0


async def forge(address: str, ts: rs.TermServ) -> ErrorCode:
    conn = Connection(
        conversation=Conversation.LICENSING,
        our_role=Direction.CLIENT,
        key=Ed25519PrivateKey.generate(),
        nonce_source=lambda: os.urandom(16),
    )
    hello = Hello(
        role=PeerRole.TERMINAL_SERVER, name=ts.name, version=2003,
        conversation=Conversation.LICENSING, cert_chain=ts.chain,
    )  # fmt: skip
    frame = bytearray(conn.send(hello, now=WallClock().now()))
    frame[-3] ^= 0x40
    stream = MessageStream(await connect(address), conn, WallClock().now)
    try:
        await stream.stream.send_all(bytes(frame))
        try:
            await stream.receive()
        except RemoteProtocolError as exc:
            return exc.code
        raise AssertionError("a forged Hello was answered")
    finally:
        await stream.aclose()


async def drive(address: str, ts: rs.TermServ, ledger: rs.Ledger, n: list[int]) -> None:
    try:
        async with rs.ts_stream(address, ts, WallClock()) as s:
            while True:
                n[0] += 1
                await rs.device_cycle(s, ts, ledger, n[0])
    except (ConnectionLost, ProtocolError):
        pass


async def test_tslic_server_command_under_faults(tmp_path: Path, figures: Figures) -> None:
    site = await rs.prepare(tmp_path, pack=2000, terminal_servers=2)
    ledger = rs.Ledger()
    counter = [0]
    rng = random.Random(5)
    process, info = await start(site.data_dir, tmp_path, "0")
    try:
        before = errors_of(await scrape(info["metrics"]), ErrorCode.BAD_SIGNATURE)
        assert await forge(info["address"], site.terminal_servers[0]) is ErrorCode.BAD_SIGNATURE
        after = errors_of(await scrape(info["metrics"]), ErrorCode.BAD_SIGNATURE)
        assert after - before == 1
        for cycle in range(CYCLES):
            if cycle:
                process, info = await start(site.data_dir, tmp_path, str(cycle))
            assert rs.check_database(site.data_dir / "licenses.db", ledger) == []
            async with trio.open_nursery() as nursery:
                for ts in site.terminal_servers:
                    nursery.start_soon(drive, info["address"], ts, ledger, counter)
                # After a drawn number of new acknowledgements, at a drawn moment (counted
                # events, not a time window: see test_crash.py).
                target = len(ledger.acks) + rng.randint(1, 3)
                await rs.until(lambda: len(ledger.acks), target)
                await trio.sleep(rng.uniform(0.0, 0.05))
                process.kill()  # SIGKILL
            assert await process.wait() == -signal.SIGKILL
        process, info = await start(site.data_dir, tmp_path, "last")
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(rs.HANG_GUARD):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert rs.check_database(site.data_dir / "licenses.db", ledger) == []
    assert ledger.acks
    figures.note(
        "tslic server command",
        f"`python -m tslic.cli server`: forged Hello refused BAD_SIGNATURE and counted on "
        f"--metrics; {CYCLES} SIGKILL cycles, {len(ledger.acks)} licenses acknowledged, none "
        "lost; SIGTERM exit 0",
    )
