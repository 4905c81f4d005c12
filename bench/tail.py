"""What a license server's response-time tail at a fixed open rate is made of.

Contract: `python -m bench tail [--rates R,R,...] [--seconds S] [--warm W] [--json]` starts a
Windows Server 2003 license server in a child process, as bench/load_vs_baseline.py does
(fresh data directory, durable store, settled like a daemon), fills its database with a
closed run (128 loops, W seconds, as the maximum-rate runs there do), then drives it at each
rate R (open model, 128 terminal servers, `tslic load`'s generator) for S seconds. Inside
the server it records, for the open runs only and from the end of each schedule's first
second (the terminal servers connect before the schedule starts):
- every store operation's wait, from `run_op` to its group's commit (queueing included);
- every group: its operations' time, its COMMIT's time (the fsync), its size; and the time
  the event loop's thread slept inside its commits (wall minus CPU: waiting for the disk),
  as a share of the recorded time;
- the background WAL checkpoints' times, and which commits of 5 ms or more overlapped one;
- every garbage collection (`gc.callbacks`): its generation and pause;
- every task step of 2 ms or more (a Trio instrument): while one runs, the loop serves no
  one else.
For each rate it prints the generator's response and service time percentiles, the server's
main-thread CPU per license and how busy that thread was (CPU seconds over wall seconds,
both from the end of the schedule's first second to the end of its last, so that the
terminal servers' connections are left out: one thread cannot exceed 1.0), how occupied the
loop was (that busy share plus its sleep in commits: nobody else is served meanwhile), the
store's percentiles, the collections and checkpoints, and the share of the machine's CPU
time the hypervisor stole meanwhile. Reading: a tail that the store and the collector do
not explain is queueing for the one event-loop thread, which grows steeply as its occupied
share nears 1.0; a run with a steal share above ~0.02 measured the host, not the server. A
benchmark: figures, never assertions.
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import os
import sqlite3
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection as Pipe
from pathlib import Path

import trio

# Run as a script (`python bench/NAME.py`): the repository root makes `bench` importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tslic.client.load.coordinator import Snapshot
from tslic.client.load.schedule import OpenSchedule

from bench.load_vs_baseline import _config, _run
from bench.procstat import StealMeter, threads_cpu

Span = tuple[float, float]  # perf_counter start, end (seconds)


class _Recorder:
    """Timings collected inside the server while `on` is set."""

    def __init__(self) -> None:
        self.on = False
        self.waits: list[float] = []
        self.groups: list[tuple[float, float, int]] = []  # ops s, commit s, size
        self.checkpoints: list[float] = []
        self.commit_spans: list[Span] = []
        self.commit_sleep = 0.0  # seconds the event loop's thread slept inside its commits
        self.started = self.stopped = 0.0  # perf_counter while `on`
        self.checkpoint_spans: list[Span] = []
        self.collections: list[tuple[int, float]] = []  # generation, pause s
        self.long_steps: list[float] = []  # task steps of LONG_STEP_S or more, s
        self.last_ops = 0.0  # the group being committed: its operations' time
        self._gc_started = 0.0

    def start(self) -> None:
        self.waits, self.groups, self.checkpoints, self.collections = [], [], [], []
        self.commit_spans, self.checkpoint_spans = [], []
        self.commit_sleep, self.long_steps = 0.0, []
        self.started = time.perf_counter()
        self.on = True

    def stop(self) -> None:
        self.on = False
        self.stopped = time.perf_counter()

    def gc_callback(self, phase: str, info: dict[str, int]) -> None:
        if not self.on:
            return
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.collections.append((info["generation"], time.perf_counter() - self._gc_started))


LONG_STEP_S = 0.002  # a task step this long holds the event loop from everyone else


class _LoopHolds(trio.abc.Instrument):
    """Every task step of LONG_STEP_S or more: while one runs, no other connection is read,
    answered or committed for."""

    def __init__(self, rec: _Recorder) -> None:
        self.rec = rec
        self.started = 0.0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.started = time.perf_counter()

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        held = time.perf_counter() - self.started
        if held >= LONG_STEP_S and self.rec.on:
            self.rec.long_steps.append(held)


def _instrument(rec: _Recorder) -> None:
    """Wrap the store's methods (class attributes, before the server is built)."""
    from tslic.server.license_server.group import Job
    from tslic.server.license_server.store import Op, Store, T

    clock = time.perf_counter
    run_op, run_ops, commit, checkpoint = (
        Store.run_op,
        Store._run_ops,
        Store._commit,
        Store.checkpoint,
    )

    async def timed_run_op(self: Store, fn: Op[T]) -> T:
        started = clock()
        try:
            return await run_op(self, fn)
        finally:
            if rec.on:
                rec.waits.append(clock() - started)

    def timed_run_ops(self: Store, group: list[Job]) -> bool:
        started = clock()
        ok = run_ops(self, group)
        rec.last_ops = clock() - started
        return ok

    def timed_commit(self: Store, group: list[Job]) -> None:
        started, cpu = clock(), time.thread_time()
        commit(self, group)
        if rec.on:
            ended = clock()
            if threading.current_thread() is threading.main_thread():
                rec.commit_sleep += max(0.0, (ended - started) - (time.thread_time() - cpu))
            rec.groups.append((rec.last_ops, ended - started, len(group)))
            rec.commit_spans.append((started, ended))

    def timed_checkpoint(self: Store, db: sqlite3.Connection | None = None) -> tuple[int, int]:
        started = clock()
        try:
            return checkpoint(self, db)
        finally:
            if rec.on:
                ended = clock()
                rec.checkpoints.append(ended - started)
                rec.checkpoint_spans.append((started, ended))

    setattr(Store, "run_op", timed_run_op)  # noqa: B010  (a method, replaced for the run)
    setattr(Store, "_run_ops", timed_run_ops)  # noqa: B010
    setattr(Store, "_commit", timed_commit)  # noqa: B010
    setattr(Store, "checkpoint", timed_checkpoint)  # noqa: B010


def _serve(conn: Pipe) -> None:
    from tslic.protocol.domain import WindowsVersion
    from tslic.runtime.clock import WallClock
    from tslic.runtime.daemon import settle
    from tslic.runtime.service import Limits
    from tslic.server.license_server.config import Config
    from tslic.server.license_server.daemon import LicenseServer

    rec = _Recorder()
    _instrument(rec)
    gc.callbacks.append(rec.gc_callback)

    async def main(data_dir: str) -> None:
        config = Config(name="BENCHLS", version=WindowsVersion.W2003, data_dir=Path(data_dir))
        limits = Limits(rate_per_second=1e9, rate_burst=1e9)
        server = LicenseServer(config, WallClock(), limits=limits)
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server.serve)
            settle()  # as `tslic server serve` does once started
            conn.send((address, os.getpid()))
            while (command := await trio.to_thread.run_sync(conn.recv)) != "stop":
                if command == "start":
                    rec.start()
                else:  # "report"
                    rec.stop()
                    conn.send(_summary(rec))
            server.shutdown()

    with tempfile.TemporaryDirectory(prefix="tslic-bench-") as data_dir:
        trio.run(main, data_dir, instruments=[_LoopHolds(rec)])


def _ms(values: list[float]) -> dict[str, float]:
    """Percentiles of `values` (seconds) in milliseconds."""
    if not values:
        return {"count": 0}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3, 2)

    return {"count": len(ordered), "p50": at(0.5), "p99": at(0.99), "max": at(1.0)}


SLOW_COMMIT_S = 0.005  # a commit this long holds every connection of the loop


def _slow_commits(rec: _Recorder) -> dict[str, object]:
    """The commits that took SLOW_COMMIT_S or longer, and how many of them overlapped a
    background checkpoint (whose writes and fsync share the disk with the commit's)."""
    slow = [(a, b) for a, b in rec.commit_spans if b - a >= SLOW_COMMIT_S]
    during = [(a, b) for a, b in slow if any(c < b and a < d for c, d in rec.checkpoint_spans)]
    return {
        "count": len(slow),
        "during_checkpoint": len(during),
        "total_ms": round(sum(b - a for a, b in slow) * 1e3, 1),
    }


def _summary(rec: _Recorder) -> dict[str, object]:
    sizes = [n for _, _, n in rec.groups]
    by_generation: dict[str, dict[str, float]] = {}
    for generation, pause in rec.collections:
        entry = by_generation.setdefault(
            str(generation), {"count": 0, "total_ms": 0.0, "max_ms": 0.0}
        )
        entry["count"] += 1
        entry["total_ms"] = round(entry["total_ms"] + pause * 1e3, 2)
        entry["max_ms"] = round(max(entry["max_ms"], pause * 1e3), 2)
    return {
        "store_wait_ms": _ms(rec.waits),
        "group_ops_ms": _ms([ops for ops, _, _ in rec.groups]),
        "group_commit_ms": _ms([c for _, c, _ in rec.groups]),
        "group_size_mean": round(sum(sizes) / len(sizes), 2) if sizes else 0.0,
        "checkpoints_ms": _ms(rec.checkpoints),
        "slow_commits": _slow_commits(rec),
        "loop_holds_over_2ms": {
            "count": len(rec.long_steps),
            "total_ms": round(sum(rec.long_steps) * 1e3, 1),
            "max_ms": round(max(rec.long_steps, default=0.0) * 1e3, 2),
        },
        "loop_commit_sleep_share": round(
            rec.commit_sleep / max(1e-9, rec.stopped - rec.started), 3
        ),
        "collections": by_generation,
    }


def measure(rates: list[float], seconds: float, warm: float) -> dict[str, object]:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(child,), daemon=True)
    proc.start()
    out: dict[str, object] = {"cpus": os.cpu_count()}
    try:
        address, pid = parent.recv()
        closed = _config(
            address, model="closed", stages=(), concurrency=128, agents=128, duration=warm
        )
        _, report = _run(closed)
        out["warm_rate_per_s"] = report["rate"]["achieved"]
        runs = []
        for rate in rates:
            config = _config(
                address,
                stages=OpenSchedule.constant(rate, seconds).stages,
                start_rate=rate,
                agents=128,
                duration=seconds,
            )
            stolen = StealMeter()
            # Measured from the end of the schedule's first second to the end of its last:
            # the terminal servers' connections (Hello, certificate, the store operation
            # that admits each) are made before the schedule starts, and are no license's.
            marks: list[tuple[float, float, int]] = []  # wall, main-thread CPU, completed

            def mark(snap: Snapshot, marks: list[tuple[float, float, int]] = marks) -> None:
                cpu = threads_cpu(pid).get("python", 0.0)
                marks.append((time.perf_counter(), cpu, snap.total.completed))
                if len(marks) == 1:
                    parent.send("start")  # the server's own records from here on

            _, report = _run(config, progress=mark)
            parent.send("report")
            inside: dict[str, object] = parent.recv()
            slept = inside["loop_commit_sleep_share"]
            assert isinstance(slept, float)
            (wall0, cpu0, done0), (wall1, cpu1, done1) = marks[0], marks[-1]
            main_cpu, wall, done = cpu1 - cpu0, max(1e-9, wall1 - wall0), max(1, done1 - done0)
            runs.append(
                {
                    "rate_per_s": rate,
                    "achieved_per_s": report["rate"]["achieved"],
                    "response_ms": report["latency_ms"]["response"],
                    "service_ms": report["latency_ms"]["service"],
                    "main_thread_cpu_per_license_us": round(main_cpu / done * 1e6),
                    "main_thread_busy_share": round(main_cpu / wall, 3),
                    "steal_share": stolen.share(),
                    "loop_occupied_share": round(main_cpu / wall + slept, 3),
                    **inside,
                }
            )
        out["runs"] = runs
    finally:
        parent.send("stop")
        proc.join(15)
        if proc.is_alive():
            proc.terminate()
    return out


def _rates(text: str) -> list[float]:
    try:
        rates = [float(r) for r in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of rates per second: {text!r}") from None
    if not rates or min(rates) <= 0:
        raise argparse.ArgumentTypeError("every rate must be above 0 per second")
    return rates


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if seconds < 3:  # measured from the first second's end to the last's: at least 2 s
        raise argparse.ArgumentTypeError("at least 3 seconds per rate")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument(
        "--rates", type=_rates, default="300,600,900", help="open-model rates, comma-separated"
    )
    parser.add_argument("--seconds", type=_seconds, default=5.0)
    parser.add_argument("--warm", type=float, default=3.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = measure(args.rates, args.seconds, args.warm)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"warm-up (closed, 128 loops): {result['warm_rate_per_s']} licenses/s")
    runs = result["runs"]
    assert isinstance(runs, list)
    for run in runs:
        print(f"at {run['rate_per_s']:g}/s (achieved {run['achieved_per_s']}):")
        for key, value in run.items():
            if key not in ("rate_per_s", "achieved_per_s"):
                print(f"  {key:32} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
