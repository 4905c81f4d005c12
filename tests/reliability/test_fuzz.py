"""Fuzzing a live license-server process with seeded hostile frames (fuzzer.py).

The daemon is a real process (forked by zygote.py). Frames go in batches from 8 concurrent
workers; between batches an enrolled terminal server must still get a license, the process
must be alive, and its resident memory (VmRSS of /proc/PID/status) is sampled. After a
warm-up batch (allocator pools, key caches) the growth over the remaining batches must stay
small: the only state a hostile frame may leave behind is its replay-guard entry, which the
freshness window bounds (the daemon runs with a 2 s window so that bound is reached within
the test; with the default 300 s window the guard holds up to 600 s of frames, see
docs/RELIABILITY.md). At the end SIGTERM must stop it cleanly (exit status 0).

CI sends TSLIC_FUZZ_FRAMES (default 20,000) frames; bench/soak/fuzz.py sends 100,000+.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import trio
from tslic.client.rdp.client import connect
from tslic.client.rdp.store import LicenseStore
from tslic.protocol.domain import ClientOS
from tslic.runtime.clock import WallClock

from tests.reliability import fuzzer
from tests.reliability import support as rs
from tests.reliability.conftest import Zygote
from tools.reliability_report import Figures

FRAMES = int(os.environ.get("TSLIC_FUZZ_FRAMES", "20000"))
SEED = int(os.environ.get("TSLIC_FUZZ_SEED", "2003"))
BATCHES = 5
WINDOW = 2.0
RSS_BOUND_KIB = 16 * 1024


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS line")


async def test_fuzzed_license_server_stays_up_flat_and_serving(
    tmp_path: Path, zygote: Zygote, figures: Figures
) -> None:
    site = await rs.prepare(tmp_path, pack=1000, terminal_servers=4)
    honest, *others = site.terminal_servers
    peers = [(ts.name, ts.key, ts.chain) for ts in others]
    # A 2-second freshness window: the replay guard then forgets a frame after 4 s, so its
    # (bounded, by design) memory reaches its plateau within the run; anything still
    # growing after that would be a leak.
    pid, address = await rs.spawn(
        zygote, site.data_dir, tmp_path, "fuzz", window_real_seconds=WINDOW
    )
    ledger = rs.Ledger()
    total = fuzzer.Tally()

    async def batch(n: int, frames: int) -> None:
        tally = await fuzzer.fuzz(address, frames=frames, seed=SEED + n, peers=peers)
        total.frames += tally.frames
        total.connections += tally.connections
        total.kinds.update(tally.kinds)
        os.kill(pid, 0)  # still alive
        with trio.fail_after(rs.HANG_GUARD):
            async with rs.ts_stream(address, honest, WallClock()) as s:
                await rs.device_cycle(s, honest, ledger, n)

    await batch(0, 1000)  # warm-up
    baseline = rss_kib(pid)
    samples = []
    for n in range(1, BATCHES + 1):
        await batch(n, FRAMES // BATCHES)
        samples.append(rss_kib(pid))
    os.kill(pid, signal.SIGTERM)
    status = (await zygote.call(op="wait", pid=pid))["status"]
    assert os.WIFEXITED(status)
    assert os.WEXITSTATUS(status) == 0
    growth = max(samples) - baseline
    assert growth < RSS_BOUND_KIB, f"RSS grew {growth} KiB: {baseline} -> {samples}"
    # Once the guard has reached its plateau (two windows in), memory is flat.
    assert samples[-1] - samples[2] < 3 * 1024, f"RSS still growing: {samples}"
    assert total.frames >= FRAMES
    assert len(ledger.acks) == 2 * (BATCHES + 1)  # the honest client was served every time
    assert rs.check_database(site.data_dir / "licenses.db", ledger) == []
    figures.add("frames_fuzzed", total.frames)
    figures.add("fuzz_connections", total.connections)
    figures.set("fuzz_rss_growth_kib", growth)
    figures.note(
        "fuzz (license server)",
        f"seed {SEED}: {total.frames} frames on {total.connections} connections; RSS "
        f"{baseline} KiB after warm-up, samples {samples}; kinds {dict(total.kinds)}",
    )


AGENT_FRAMES = int(os.environ.get("TSLIC_FUZZ_AGENT_FRAMES", "2400"))


async def test_fuzzed_agent_stays_up_flat_and_serving(
    tmp_path: Path, zygote: Zygote, figures: Figures
) -> None:
    """The agent's RDP port gets raw hostile first frames (the server speaks first there, so
    each connection is one frame); an RDP client is licensed between batches."""
    site = await rs.prepare(tmp_path, pack=100, terminal_servers=1)
    ls_pid, ls_address = await rs.spawn(zygote, site.data_dir, tmp_path, "ls")
    pid, address = await rs.spawn(
        zygote, tmp_path / "agent", tmp_path, "agent", role="agent", license_server=ls_address
    )
    total = fuzzer.Tally()
    licensed = 0

    async def batch(n: int, frames: int) -> None:
        nonlocal licensed
        tally = await fuzzer.fuzz(address, frames=frames, seed=SEED + 100 + n, raw_only=True)
        total.frames += tally.frames
        total.connections += tally.connections
        os.kill(pid, 0)
        store = LicenseStore(tmp_path / f"device{n}")
        outcome = await connect(
            address, store=store, device=f"PC{n}", user="u", client_os=ClientOS.XP_PRO,
            clock=WallClock(), timeout=60,
        )  # fmt: skip
        assert outcome.status == "licensed", outcome.text
        licensed += 1

    try:
        await batch(0, 500)
        baseline = rss_kib(pid)
        samples = []
        for n in range(1, 4):
            await batch(n, AGENT_FRAMES // 3)
            samples.append(rss_kib(pid))
        os.kill(pid, signal.SIGTERM)
        status = (await zygote.call(op="wait", pid=pid))["status"]
        assert os.WIFEXITED(status)
        assert os.WEXITSTATUS(status) == 0
    finally:
        os.kill(ls_pid, signal.SIGTERM)
        await zygote.call(op="wait", pid=ls_pid)
    growth = max(samples) - baseline
    assert growth < RSS_BOUND_KIB, f"RSS grew {growth} KiB: {baseline} -> {samples}"
    assert total.frames >= AGENT_FRAMES
    figures.add("frames_fuzzed", total.frames)
    figures.set("fuzz_agent_rss_growth_kib", growth)
    figures.note(
        "fuzz (agent)",
        f"{total.frames} raw hostile frames on {total.connections} connections to the agent's "
        f"RDP port; RSS {baseline} KiB after warm-up, samples {samples}; {licensed} RDP "
        "clients licensed between batches",
    )
