"""Licensing throughput of a terminal-server agent killed again and again, against the same
agent left running.

Contract: `python bench/crash_cycles.py [--cycles N] [--seconds S] [--json]` (or
`python -m bench crash-cycles ...`) forks a real license server and 2003 terminal-server
agents (the zygote of tests/reliability) and drives 6 RDP client devices in closed loops, every
other connection as a brand-new device (as tests/reliability/test_crash_agent.py does).
Baseline: one agent, ready, left running for S seconds; licensed sessions per second. Crash
cycles: N times, an agent is forked on the same data directory and the clients connect; the
time from its readiness to the first licensed session is its recovery; the clients then go on
for a seeded 50-250 ms window and the agent is SIGKILLed. It prints the baseline rate, the
rate over the agents' uptime in the cycles (readiness to kill) and their ratio (crash cycles /
baseline: what restarts and cut exchanges cost), licensed sessions per cycle, the median
recovery and the agent's fork-to-ready time.
The test checks that nothing is lost across such kills, driven by counts of sessions; this
measures the speed. A benchmark: figures, never assertions.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import trio
from tslic.client.rdp.client import connect
from tslic.client.rdp.store import LicenseStore
from tslic.protocol.domain import ClientOS
from tslic.runtime.clock import WallClock

from bench.reliability_site import support as rs
from bench.reliability_site import zygote

DEVICES = 6


class Tally:
    """Licensed sessions, counted as clients report them."""

    def __init__(self, first_name: int = 0) -> None:
        self.licensed = 0
        self.fresh = itertools.count(first_name)
        self.first = trio.Event()


async def client_loop(address: str, store: LicenseStore, device: str, tally: Tally) -> None:
    """Connect again and again (every other time as a new device) until the agent is gone."""
    clock = WallClock()
    while True:
        n = next(tally.fresh)
        current = store if n % 2 else LicenseStore(store.root.with_name(f"new{n}"))
        outcome = await connect(
            address, store=current, device=f"{device}-{n}", user="u",
            client_os=ClientOS.XP_PRO, clock=clock, timeout=30,
        )  # fmt: skip
        if outcome.status == "error":
            return
        if outcome.status == "licensed":
            tally.licensed += 1
            tally.first.set()


async def run_window(address: str, stores: list[LicenseStore], seconds: float) -> int:
    """Licensed sessions in the `seconds` after the agent was ready (it is left up)."""
    tally = Tally(10**9)
    async with trio.open_nursery() as nursery:
        for i, store in enumerate(stores):
            nursery.start_soon(client_loop, address, store, f"PC{i}", tally)
        await trio.sleep(seconds)
        nursery.cancel_scope.cancel()
    return tally.licensed


async def measure(cycles: int, seconds: float, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="tslic-bench-crash-") as tmp_name:
        tmp = Path(tmp_name)
        site = await rs.prepare(tmp, pack=5000, terminal_servers=1)
        async with zygote() as zy:
            ls_pid, ls_address = await rs.spawn(zy, site.data_dir, tmp, "ls")
            try:
                # Baseline: one agent, left running.
                stores = [LicenseStore(tmp / "base" / f"dev{i}") for i in range(DEVICES)]
                pid, address = await rs.spawn(
                    zy, tmp / "agent-base", tmp, "base", role="agent", license_server=ls_address
                )
                baseline = await run_window(address, stores, seconds)
                os.kill(pid, signal.SIGTERM)
                await zy.call(op="wait", pid=pid)
                # Crash cycles: a fresh data directory, killed after each window.
                stores = [LicenseStore(tmp / "crash" / f"dev{i}") for i in range(DEVICES)]
                licensed, uptime, startup = 0, 0.0, 0.0
                recoveries: list[float] = []
                for cycle in range(cycles):
                    began = trio.current_time()
                    pid, address = await rs.spawn(
                        zy, tmp / "agent-crash", tmp, f"c{cycle}", role="agent",
                        license_server=ls_address,
                    )  # fmt: skip
                    ready = trio.current_time()
                    startup += ready - began
                    window = rng.uniform(0.05, 0.25)
                    tally = Tally(cycle * 100_000)
                    async with trio.open_nursery() as nursery:
                        for i, store in enumerate(stores):
                            nursery.start_soon(client_loop, address, store, f"PC{i}", tally)
                        with trio.fail_after(120):
                            await tally.first.wait()
                        recoveries.append(trio.current_time() - ready)
                        await trio.sleep(window)
                        os.kill(pid, signal.SIGKILL)
                        uptime += trio.current_time() - ready
                    await zy.call(op="wait", pid=pid)
                    licensed += tally.licensed
            finally:
                os.kill(ls_pid, signal.SIGTERM)
                await zy.call(op="wait", pid=ls_pid)
    base_rate = baseline / seconds
    crash_rate = licensed / uptime
    return {
        "baseline_seconds": seconds,
        "baseline_licensed": baseline,
        "baseline_per_second": round(base_rate, 1),
        "cycles": cycles,
        "cycles_uptime_seconds": round(uptime, 3),
        "cycles_licensed": licensed,
        "cycles_per_second_of_uptime": round(crash_rate, 1),
        "licensed_per_cycle": round(licensed / cycles, 2),
        "ratio": round(crash_rate / base_rate, 2) if base_rate else None,
        "agent_fork_to_ready_ms": round(startup / cycles * 1e3, 1),
        "recovery_median_ms": round(sorted(recoveries)[len(recoveries) // 2] * 1e3, 1),
        "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--cycles", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=5.0, help="baseline duration")
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = trio.run(measure, args.cycles, args.seconds, args.seed)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(
            f"agent left running: {result['baseline_per_second']:.1f} licensed sessions/s; "
            f"{args.cycles} SIGKILL cycles: {result['cycles_per_second_of_uptime']:.1f}/s of "
            f"uptime, ratio {result['ratio']}, {result['licensed_per_cycle']} per cycle; "
            f"recovery (ready to first licensed session) median "
            f"{result['recovery_median_ms']:.0f} ms; fork to ready "
            f"{result['agent_fork_to_ready_ms']:.0f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
