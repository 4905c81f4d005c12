"""CPU time of another process and of its threads, read from Linux's /proc.

Contract: `threads_cpu(pid)` maps each thread's name (as the kernel knows it: `python` for
a CPython main thread, trio names its worker threads) to the CPU seconds, user plus system,
it has used so far; threads of the same name are summed. `process_cpu(pid)` is their total.
`per_request_us(before, after, n)` turns two readings into microseconds per request, per
thread and in total. `steal()` is the machine's steal time so far, in CPU seconds summed over
its cores: time its virtual CPUs wanted to run and the hypervisor ran something else (on a
shared host the largest noise in any latency figure; a benchmark reports it beside its
tails). Where /proc is missing, the readings are empty and the figures zero.
Benchmarks only: figures, never assertions.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def threads_cpu(pid: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue  # the thread ended between listing and reading
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        # After the name: state is field 3, utime and stime are fields 14 and 15 (man 5 proc).
        fields = stat[stat.rindex(")") + 2 :].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / _TICKS
    return out


def process_cpu(pid: int) -> float:
    return sum(threads_cpu(pid).values())


def per_request_us(before: dict[str, float], after: dict[str, float], n: int) -> dict[str, int]:
    per = {k: round((v - before.get(k, 0.0)) / max(1, n) * 1e6) for k, v in after.items()}
    per = {k: v for k, v in per.items() if v > 0}
    per["total"] = sum(per.values())
    return per


def steal() -> float:
    """The machine's steal time so far (all cores, seconds): /proc/stat's eighth CPU field."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return 0.0
    return int(first[8]) / _TICKS if first[0] == "cpu" and len(first) > 8 else 0.0


class StealMeter:
    """The share of the machine's CPU time stolen by the hypervisor between start and read."""

    def __init__(self) -> None:
        self._steal = steal()
        self._wall = time.perf_counter()

    def share(self) -> float:
        wall = (time.perf_counter() - self._wall) * (os.cpu_count() or 1)
        return round((steal() - self._steal) / wall, 3) if wall > 0 else 0.0
