"""Graceful shutdown: SIGTERM under load answers or cleanly refuses every in-flight request.

A real license-server process (zygote.py) serves 6 terminal servers running device lives;
SIGTERM arrives after a drawn number of answered requests, at a drawn moment. Every
connection must end with its last request answered followed by Goodbye, or with a documented
refusal (SHUTTING_DOWN), never with a bare reset; the process must exit 0 (the grace period
bounds it: a server that ignored it would hit the hang guard); and every license a client
was told it got must be in the database afterwards. How long the shutdown took is a figure
of the report, not an assertion (it is wall-clock time on a shared machine).
"""

from __future__ import annotations

import os
import random
import signal
from collections import Counter
from pathlib import Path

import trio
from tslic.protocol.errors import ConnectionLost, ErrorCode, RemoteProtocolError
from tslic.protocol.messages import Goodbye, Message
from tslic.protocol.messages.licensing import (
    IssueLicense,
    LicenseGranted,
    MarkLicense,
    UpgradeLicenseRequest,
)
from tslic.runtime.clock import WallClock
from tslic.runtime.peer import PeerStream

from tests.reliability import support as rs
from tests.reliability.conftest import Zygote
from tools.reliability_report import Figures

GRACE = 2.0
ROUNDS = 3


class Ended(Exception):
    """The server ended the conversation the documented way."""


async def ask(s: PeerStream, msg: Message) -> Message:
    try:
        reply = await s.request(msg)
    except RemoteProtocolError as exc:
        if exc.code is ErrorCode.SHUTTING_DOWN:
            raise Ended("shutting-down") from None
        raise
    if isinstance(reply, Goodbye):
        raise Ended("goodbye")
    return reply


async def worker(address: str, ts: rs.TermServ, ledger: rs.Ledger, outcomes: Counter[str]) -> None:
    clock = WallClock()
    try:
        async with rs.ts_stream(address, ts, clock) as s:
            n = 0
            while True:
                n += 1
                hwid = rs.new_hwid()
                fields = rs.device_fields(hwid, f"PC{n}")
                first = await ask(s, IssueLicense(**fields))
                assert isinstance(first, LicenseGranted)
                ledger.add(first, hwid, ts.name)
                outcomes["answered"] += 1
                await ask(s, MarkLicense(license_id=first.license_id, hwid=hwid))
                outcomes["answered"] += 1
                second = await ask(s, UpgradeLicenseRequest(license=first.license, **fields))
                assert isinstance(second, LicenseGranted)
                ledger.add(second, hwid, ts.name)
                outcomes["answered"] += 1
    except Ended as end:
        outcomes[str(end)] += 1
    except ConnectionLost:
        outcomes["reset"] += 1


async def test_sigterm_under_load(tmp_path: Path, zygote: Zygote, figures: Figures) -> None:
    site = await rs.prepare(tmp_path, pack=5000, terminal_servers=6)
    rng = random.Random(17)
    ledger = rs.Ledger()
    outcomes: Counter[str] = Counter()
    slowest = 0.0  # seconds from SIGTERM to the last conversation's end (a figure)
    for round_ in range(ROUNDS):
        pid, address = await rs.spawn(
            zygote, site.data_dir, tmp_path, f"term{round_}", shutdown_grace=GRACE
        )
        with trio.fail_after(rs.HANG_GUARD):  # a hang guard only: the grace period ends it
            async with trio.open_nursery() as nursery:
                for ts in site.terminal_servers:
                    nursery.start_soon(worker, address, ts, ledger, outcomes)
                target = outcomes["answered"] + rng.randint(1, 12)
                await rs.until(lambda: outcomes["answered"], target)
                await trio.sleep(rng.uniform(0.0, 0.1))
                os.kill(pid, signal.SIGTERM)
                stopped = trio.current_time()
        slowest = max(slowest, trio.current_time() - stopped)
        status = (await zygote.call(op="wait", pid=pid))["status"]
        assert os.WIFEXITED(status)
        assert os.WEXITSTATUS(status) == 0
        assert rs.check_database(site.data_dir / "licenses.db", ledger) == []
    assert outcomes["reset"] == 0, outcomes
    assert outcomes["goodbye"] + outcomes["shutting-down"] == ROUNDS * len(site.terminal_servers)
    assert outcomes["answered"] > 0
    figures.add("shutdown_requests", outcomes["answered"])
    figures.add("shutdown_resets", outcomes["reset"])
    figures.note(
        "graceful shutdown",
        f"{ROUNDS} SIGTERMs under load from {len(site.terminal_servers)} terminal servers: "
        f"{dict(outcomes)}; exit 0 (grace {GRACE} s; slowest shutdown seen by the clients "
        f"{slowest:.2f} s); no acknowledged license lost",
    )
