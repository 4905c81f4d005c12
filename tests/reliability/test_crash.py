"""Crash safety: SIGKILL the license server at random moments under load (seeded).

Each cycle forks a real license-server process on the same data directory (zygote.py),
waits for its ready file, drives terminal servers that each run device lives (temporary
license, post-logon mark, permanent CAL) as fast as the server answers, and SIGKILLs the
process after a random 50-250 ms. After every restart the database must hold every license
a client was told it got, no device may hold two live licenses of one kind, and every key
pack's `issued` must equal the permanent licenses drawing on it.

TSLIC_CRASH_CYCLES and TSLIC_CRASH_SEED change the count and the seed (bench/soak runs more).
"""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path

import pytest
import trio
from tslic.protocol.errors import ConnectionLost, ProtocolError
from tslic.runtime.clock import WallClock

from tests.reliability import support as rs
from tests.reliability.conftest import Zygote
from tools.reliability_report import Figures

CYCLES = int(os.environ.get("TSLIC_CRASH_CYCLES", "50"))
SEED = int(os.environ.get("TSLIC_CRASH_SEED", "9"))


async def drive(address: str, ts: rs.TermServ, ledger: rs.Ledger, counter: list[int]) -> None:
    """Device lives on one connection until the server dies under it."""
    clock = WallClock()
    try:
        async with rs.ts_stream(address, ts, clock) as s:
            while True:
                counter[0] += 1
                await rs.device_cycle(s, ts, ledger, counter[0])
    except (ConnectionLost, ProtocolError):
        pass  # the kill; whatever was not acknowledged may or may not be stored


async def test_sigkill_cycles_lose_no_acknowledged_license(
    tmp_path: Path, zygote: Zygote, figures: Figures
) -> None:
    site = await rs.prepare(tmp_path, pack=20_000, terminal_servers=3)
    db_path = site.data_dir / "licenses.db"
    rng = random.Random(SEED)
    ledger = rs.Ledger()
    counter = [0]
    killed = 0
    for cycle in range(CYCLES):
        pid, address = await rs.spawn(zygote, site.data_dir, tmp_path, str(cycle))
        # The restarted server sees everything acknowledged before the last kill.
        if problems := rs.check_database(db_path, ledger):
            record(figures, killed, ledger, problems)
            pytest.fail(f"after restart {cycle}: {problems}")
        async with trio.open_nursery() as nursery:
            for ts in site.terminal_servers:
                nursery.start_soon(drive, address, ts, ledger, counter)
            # The kill comes after a drawn number of new acknowledgements, then a drawn
            # moment: a count of events, not a span of time, so a slow machine does the same
            # work per cycle as a fast one (bench/crash_cycles.py measures the speed).
            target = len(ledger.acks) + rng.randint(1, 4)
            await rs.until(lambda: len(ledger.acks), target)
            await trio.sleep(rng.uniform(0.0, 0.05))
            os.kill(pid, signal.SIGKILL)
        status = (await zygote.call(op="wait", pid=pid))["status"]
        assert os.WIFSIGNALED(status)
        assert os.WTERMSIG(status) == signal.SIGKILL
        killed += 1
    # One last restart: the survivor still serves and its books still balance.
    pid, address = await rs.spawn(zygote, site.data_dir, tmp_path, "final")
    async with rs.ts_stream(address, site.terminal_servers[0], WallClock()) as s:
        await rs.device_cycle(s, site.terminal_servers[0], ledger, counter[0] + 1)
    os.kill(pid, signal.SIGTERM)
    status = (await zygote.call(op="wait", pid=pid))["status"]
    assert os.WIFEXITED(status)
    assert os.WEXITSTATUS(status) == 0
    problems = rs.check_database(db_path, ledger)
    record(figures, killed, ledger, problems)
    assert problems == []
    assert len(ledger.acks) > CYCLES  # at least one license acknowledged in every cycle


def record(figures: Figures, killed: int, ledger: rs.Ledger, problems: list[str]) -> None:
    """The figures of this run, written whether it passed or not."""
    figures.add("crash_cycles", killed)
    figures.add("licenses_acknowledged", len(ledger.acks))
    figures.add("licenses_lost", sum("missing" in p for p in problems))
    figures.add("licenses_double", sum("live" in p for p in problems))
    figures.note(
        "crash (license server)",
        f"{killed} SIGKILL cycles, seed {SEED}, {len(ledger.acks)} licenses acknowledged; "
        + ("every one present after each restart; key packs balanced" if not problems
           else f"PROBLEMS: {problems[:5]}"),
    )  # fmt: skip
