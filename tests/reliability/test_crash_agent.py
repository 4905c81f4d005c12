"""Crash safety of the terminal-server agent: SIGKILL it at random moments (seeded) while
RDP clients connect, with a real license server behind it.

Each cycle forks the agent (zygote.py) on the same data directory; 6 RDP client devices
(client/rdp, each with its own license store) connect again and again, so they get
temporary licenses, are marked validated after their logon, and upgrade to permanent CALs;
the agent is killed once a drawn number (1-6) of further sessions were licensed, at a drawn
moment after that (counted events, not a time window: a slow machine does the same work per
cycle; bench/crash_cycles.py measures the speed). After every restart:
- its state loads (state.json is never torn) and its identity (ts-key.pem) is unchanged;
- the grace period never restarts: `started_at` keeps its first value, and once ended it
  stays ended (restarting a terminal server must not buy a new 120-day grace);
- every license a client was told it got is in the license server's database, for that
  device, through this terminal server, and the key packs balance;
- a client holding a license presents it and is licensed again.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
from pathlib import Path
from typing import Any

import trio
from tslic.client.agent.state import AgentState
from tslic.client.rdp.client import connect
from tslic.client.rdp.store import LicenseStore
from tslic.protocol.domain import ClientOS, LicenseKind, LicensingMode, WindowsVersion
from tslic.protocol.policy import GraceEnd
from tslic.runtime.clock import WallClock

from tests.reliability import support as rs
from tests.reliability.conftest import Zygote
from tools.reliability_report import Figures

CYCLES = int(os.environ.get("TSLIC_AGENT_CRASH_CYCLES", "30"))
SEED = int(os.environ.get("TSLIC_CRASH_SEED", "9"))
DEVICES = 6
FRESH = itertools.count()  # names of brand-new devices, unique across cycles


async def client_loop(
    address: str, store: LicenseStore, device: str, ledger: rs.Ledger, seen: dict[str, int]
) -> None:
    """Connect repeatedly, every other time as a brand-new device (so licenses keep being
    issued, not only presented); record each license a client was told it got."""
    clock = WallClock()
    while True:
        n = next(FRESH)
        current = store if n % 2 else LicenseStore(store.root.with_name(f"new{n}"))
        outcome = await connect(
            address, store=current, device=f"{device}-{n}", user="u",
            client_os=ClientOS.XP_PRO, clock=clock, timeout=rs.HANG_GUARD,
        )  # fmt: skip
        if outcome.status == "error":
            return  # the agent is gone (killed)
        key = f"{outcome.status}:{outcome.received or '-'}"
        seen[key] = seen.get(key, 0) + 1
        if outcome.received and outcome.license is not None:
            ledger.acks.append(
                rs.Ack(
                    outcome.license.license_id,
                    current.hwid(),
                    LicenseKind(outcome.license.kind),
                    "TSAGENT",
                )
            )


def licensed(seen: dict[str, int]) -> int:
    """Sessions that ended licensed so far (a license received or presented)."""
    return sum(v for k, v in seen.items() if k.startswith("licensed"))


def grace_of(data: Path) -> dict[str, Any]:
    state = AgentState.load(
        data,
        name="TSAGENT",
        version=WindowsVersion.W2003,
        mode=LicensingMode.PER_DEVICE,
        grace_end=GraceEnd.FIRST_PERMANENT_CAL,
    )
    grace: dict[str, Any] = json.loads((data / "state.json").read_text())["grace"]
    assert state.grace.started_at is not None or grace["started_at"] is None
    return grace


async def test_sigkill_cycles_keep_agent_state(
    tmp_path: Path, zygote: Zygote, figures: Figures
) -> None:
    site = await rs.prepare(tmp_path, pack=2000, terminal_servers=1)
    ls_pid, ls_address = await rs.spawn(zygote, site.data_dir, tmp_path, "ls")
    data = tmp_path / "agent"
    stores = [LicenseStore(tmp_path / "devices" / f"dev{i}") for i in range(DEVICES)]
    rng = random.Random(SEED)
    ledger = rs.Ledger()
    seen: dict[str, int] = {}
    first_grace: dict[str, Any] | None = None
    key_bytes: bytes | None = None
    try:
        for cycle in range(CYCLES):
            pid, address = await rs.spawn(
                zygote, data, tmp_path, f"agent{cycle}", role="agent", license_server=ls_address
            )
            if (data / "state.json").exists():
                grace = grace_of(data)
                if first_grace is None or first_grace["started_at"] is None:
                    first_grace = grace
                assert grace["started_at"] == first_grace["started_at"], "grace restarted"
                if first_grace["ended_at"] is not None:
                    assert grace["ended_at"] == first_grace["ended_at"], "grace re-opened"
                first_grace = grace
                key = (data / "ts-key.pem").read_bytes()
                assert key_bytes in (None, key), "the terminal server changed identity"
                key_bytes = key
            assert rs.check_database(site.data_dir / "licenses.db", ledger) == []
            async with trio.open_nursery() as nursery:
                for i, store in enumerate(stores):
                    nursery.start_soon(client_loop, address, store, f"PC{i}", ledger, seen)
                target = licensed(seen) + rng.randint(1, 6)
                await rs.until(lambda: licensed(seen), target)
                await trio.sleep(rng.uniform(0.0, 0.05))
                os.kill(pid, signal.SIGKILL)
            status = (await zygote.call(op="wait", pid=pid))["status"]
            assert os.WIFSIGNALED(status)
            assert os.WTERMSIG(status) == signal.SIGKILL
        # The survivors: every device presents what it holds and is licensed.
        pid, address = await rs.spawn(
            zygote, data, tmp_path, "agent-final", role="agent", license_server=ls_address
        )
        for i, store in enumerate(stores):
            outcome = await connect(
                address, store=store, device=f"PC{i}", user="u", client_os=ClientOS.XP_PRO,
                clock=WallClock(), timeout=rs.HANG_GUARD,
            )  # fmt: skip
            assert outcome.status == "licensed", outcome.text
            assert outcome.presented_stored
        os.kill(pid, signal.SIGTERM)
        await zygote.call(op="wait", pid=pid)
    finally:
        os.kill(ls_pid, signal.SIGTERM)
        await zygote.call(op="wait", pid=ls_pid)
    assert rs.check_database(site.data_dir / "licenses.db", ledger) == []
    assert licensed(seen) >= CYCLES  # at least one licensed session in every cycle
    assert any(a.kind is LicenseKind.PERMANENT for a in ledger.acks)
    assert first_grace is not None
    assert first_grace["started_at"] is not None
    figures.add("crash_cycles_agent", CYCLES)
    figures.add("agent_licenses_acknowledged", len(ledger.acks))
    figures.note(
        "crash (agent)",
        f"{CYCLES} SIGKILL cycles of the agent, seed {SEED}: {seen}; {len(ledger.acks)} "
        "licenses stored by clients, all on the license server; grace period never restarted "
        f"({first_grace}); identity kept",
    )
