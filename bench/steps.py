"""Where a license server's CPU goes, per request and per step, against the signed echo.

Contract: `python -m bench steps [--seconds S] [--connections C] [--pin [--rounds R]]
[--no-steps] [--json]` starts, each in a child process of its own, a Windows Server 2003
license server (fresh data directory, durable store with background checkpoints, as the
daemon runs) and the signed echo of bench/signed_echo.py, and drives each with C closed
loops for S seconds from this process (IssueLicense for new devices; MarkLicense for the echo), as
bench/issuance.py does. Inside each server, the functions that make up a request are
wrapped with CPU-time counters (`time.thread_time`,
each step counting its own time, not its callees' that are steps too):
- verify: opening the envelope (msgpack of the envelope, Ed25519 verification);
- freshness: the timestamp window and the replay cache;
- decode: the message body into its dataclass (validation included);
- decide: the licensing decision and the Python around it (records, audit, pools);
- SQL: every statement of an operation (`execute` on the store's connection);
- sign license: the license document (its encoding and Ed25519 signature);
- commit: COMMIT and its fsync, and the WAL checkpoints (steps marked [worker] ran in a
  worker thread: the store's background checkpoints);
- encode reply, seal reply: the reply's body map, then the envelope with its signature;
- the rest: the event loop, sockets, scheduling and handing operations to the store's
  writer task (the thread's CPU less the steps above).
It prints each step in microseconds per request, each thread's CPU per request (/proc), the
ratio of the license server's CPU per license to the echo's per round trip (issue 19's goal:
at most 1.4), the ratio of their rates, and the share of the machine's CPU the hypervisor
stole meanwhile (bench/procstat.py). With `--pin` each server runs on core 0 and the
driver on core 1, so a server's rate is bound by its own CPU per request and the rate ratio
is the inverse of the CPU ratio (goal: at least 0.70). There both servers run at once and
are driven in alternated slices (`--rounds`, 5 each by default: license server, echo,
license server, ...) so that both see the same host, and the driver sends requests it
signed before the measured seconds and does not verify the replies (bench/presealed.py):
its own CPU per request is then a small part of the server's, and the pinned server, not
the driver, is the bound (`driver_ran_out` counts loops that ran out of sealed requests).
The servers' start-up objects are frozen out of the collector, as a daemon's are
(`runtime.daemon.settle`). The counters cost a little CPU of their own (about 1 us per
step; a license has more steps than an echo), so `--no-steps` leaves them out and reports the
threads' CPU only: the form for the ratio of record. A benchmark: figures, never assertions.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import multiprocessing
import os
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypedDict, TypeVar

import trio

# Run as a script (`python bench/NAME.py`): the repository root makes `bench` importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import issuance, presealed, signed_echo
from bench.procstat import StealMeter, per_request_us, threads_cpu

if TYPE_CHECKING:
    from tslic.server.license_server.daemon import LicenseServer

KINDS = ("issuance", "echo")
PINNED_RATE_BOUND = 8_000  # requests/s a pinned server cannot reach here: sizes the presealing

P = ParamSpec("P")
R = TypeVar("R")


class StepClock:
    """Self CPU time of nested steps, per thread (a step's callees that are steps too are
    counted as theirs, not its)."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}  # "step" (main thread) or "step [worker]"
        self._local = threading.local()
        self._lock = threading.Lock()

    def wrap(self, name: str, fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def timed(*args: P.args, **kwargs: P.kwargs) -> R:
            stack: list[list[float]] = self._local.__dict__.setdefault("stack", [])
            frame = [time.thread_time(), 0.0]
            stack.append(frame)
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.thread_time() - frame[0]
                stack.pop()
                if stack:
                    stack[-1][1] += elapsed
                key = (
                    name
                    if threading.current_thread() is threading.main_thread()
                    else (f"{name} [worker]")
                )
                with self._lock:
                    self.totals[key] = self.totals.get(key, 0.0) + elapsed - frame[1]

        return timed


class _TimedConnection:
    """The store's sqlite3 connection with its `execute` counted as SQL, or as commit for
    COMMIT and the WAL checkpoints."""

    def __init__(self, db: sqlite3.Connection, clock: StepClock) -> None:
        self._db = db
        self._sql = clock.wrap("SQL", db.execute)
        self._commit = clock.wrap("commit", db.execute)

    def execute(self, sql: str, parameters: Sequence[object] = ()) -> sqlite3.Cursor:
        durable = sql.startswith(("COMMIT", "PRAGMA wal_checkpoint"))
        return (self._commit if durable else self._sql)(sql, parameters)

    def __getattr__(self, name: str) -> object:
        return getattr(self._db, name)


def _wrap(clock: StepClock, owner: object, attribute: str, step: str) -> None:
    """Replace `owner.attribute` (a module global or a method) with its timed self."""
    setattr(owner, attribute, clock.wrap(step, getattr(owner, attribute)))


def _instrument(clock: StepClock) -> None:
    """Wrap the steps where the daemons look them up (module globals and methods)."""
    from tslic.protocol import connection

    _wrap(clock, connection, "open_envelope", "verify")
    _wrap(clock, connection, "from_wire", "decode")
    _wrap(clock, connection, "to_wire", "encode reply")
    _wrap(clock, connection, "seal", "seal reply")
    _wrap(clock, connection.Connection, "_check_fresh", "freshness")


def _instrument_license_server(clock: StepClock, server: LicenseServer) -> None:
    from tslic.server.license_server import issuance as issuing

    _wrap(clock, issuing, "sign_license_wire", "sign license")
    _wrap(clock, issuing.Issuer, "decide", "decide")
    store = server.store
    timed = _TimedConnection(store._db, clock)
    setattr(store, "_db", timed)  # noqa: B010  (mypy: the store holds a sqlite3.Connection)


def _serve_license_server(conn: Pipe, data_dir: str, steps: bool) -> None:
    from tslic.protocol.domain import WindowsVersion
    from tslic.runtime.clock import WallClock
    from tslic.runtime.daemon import settle
    from tslic.runtime.service import Limits
    from tslic.server.license_server.config import Config
    from tslic.server.license_server.daemon import LicenseServer

    clock = StepClock()
    if steps:
        _instrument(clock)

    async def main() -> None:
        config = Config(name="BENCHLS", version=WindowsVersion.W2003, data_dir=Path(data_dir))
        limits = Limits(rate_per_second=1e9, rate_burst=1e9)
        server = LicenseServer(config, WallClock(), limits=limits)
        if steps:
            _instrument_license_server(clock, server)
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server.serve)
            settle()
            conn.send(address)
            await trio.to_thread.run_sync(conn.recv, abandon_on_cancel=True)
            stats = server.store.stats
            store_figures = (stats.operations, stats.transactions, stats.thread_commits)
            conn.send((dict(clock.totals), store_figures))
            server.shutdown()

    trio.run(main)


def _serve_echo(conn: Pipe, steps: bool) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from tslic.runtime.clock import WallClock
    from tslic.runtime.daemon import settle
    from tslic.runtime.service import Limits, Server

    clock = StepClock()
    if steps:
        _instrument(clock)

    async def main() -> None:
        limits = Limits(rate_per_second=1e9, rate_burst=1e9)
        server = Server(
            signed_echo.EchoService(),
            key=Ed25519PrivateKey.generate(),
            clock=WallClock(),
            limits=limits,
        )
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server.serve)
            settle()
            conn.send(address)
            await trio.to_thread.run_sync(conn.recv, abandon_on_cancel=True)
            conn.send((dict(clock.totals), (0, 0, 0)))
            server.shutdown()

    trio.run(main)


class _Measured(TypedDict):
    requests: int
    per_second: float
    driver_ran_out: int  # presealed loops that ran out of requests (0 unless the bound is off)
    threads_us: dict[str, int]  # CPU per request by thread (/proc)
    steps_us: dict[str, float]  # CPU per request by step
    per_transaction: float  # store operations per committed transaction (0: no store)
    thread_commits: int  # groups committed in a worker thread (after a slow commit)


def _start(
    kind: str, data_dir: str, steps: bool = True
) -> tuple[multiprocessing.process.BaseProcess, Pipe, str]:
    """A server child process (`kind` "issuance" or "echo"), started; its address."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    if kind == "issuance":
        proc = ctx.Process(target=_serve_license_server, args=(child, data_dir, steps), daemon=True)
    else:
        proc = ctx.Process(target=_serve_echo, args=(child, steps), daemon=True)
    proc.start()
    child.close()  # the child holds its end: if it dies, recv sees the pipe close
    try:
        return proc, parent, parent.recv()
    except EOFError:
        why = f"the {kind} server exited before it started (its error is above)"
        raise SystemExit(why) from None


_Stopped = tuple[dict[str, float], float, int]


def _stop(proc: multiprocessing.process.BaseProcess, pipe: Pipe) -> _Stopped:
    """Stop a server; its step totals (CPU seconds by step), its store's operations per
    transaction over the whole run and its groups committed in a worker thread (0 and 0 for
    the echo, which has no store)."""
    pipe.send("stop")
    totals: dict[str, float]
    totals, (operations, transactions, thread_commits) = pipe.recv()
    proc.join(10)
    return totals, round(operations / max(1, transactions), 2), thread_commits


def _measured(
    stopped: _Stopped,
    cpu: dict[str, float],
    done: int,
    elapsed: float,
    exhausted: int = 0,
) -> _Measured:
    """Per-request figures from a server's step totals and its threads' CPU seconds."""
    totals, per_transaction, thread_commits = stopped
    done = max(1, done)
    threads = per_request_us({}, cpu, done)
    steps = {k: round(v / done * 1e6, 1) for k, v in sorted(totals.items(), key=lambda i: -i[1])}
    in_main = sum(v for k, v in steps.items() if not k.endswith("[worker]"))
    in_workers = sum(v for k, v in steps.items() if k.endswith("[worker]"))
    workers = threads["total"] - threads.get("python", 0)
    steps["the rest (event loop, sockets, hand-over)"] = round(
        threads.get("python", 0) - in_main, 1
    )
    if workers:
        steps["the rest [worker] (thread hand-over)"] = round(workers - in_workers, 1)
    return {
        "requests": done,
        "per_second": round(done / max(1e-9, elapsed), 1),
        "driver_ran_out": exhausted,
        "threads_us": threads,
        "steps_us": steps,
        "per_transaction": per_transaction,
        "thread_commits": thread_commits,
    }


def _spent(before: dict[str, float], after: dict[str, float], into: dict[str, float]) -> None:
    for name, seconds in after.items():
        into[name] = into.get(name, 0.0) + seconds - before.get(name, 0.0)


def _drive(
    kind: str, connections: int, seconds: float, data_dir: str, steps: bool = True
) -> _Measured:
    """One server driven by full clients (a sign and a verify per request) for `seconds`."""
    proc, pipe, address = _start(kind, data_dir, steps)
    loops = issuance._issue_loops if kind == "issuance" else issuance._echo_loops
    before = threads_cpu(proc.pid or 0)
    started = time.perf_counter()
    done = trio.run(loops, address, connections, seconds)
    elapsed = time.perf_counter() - started
    cpu: dict[str, float] = {}
    _spent(before, threads_cpu(proc.pid or 0), cpu)
    return _measured(_stop(proc, pipe), cpu, done, elapsed)


def _drive_pinned(
    connections: int, seconds: float, rounds: int, data_dir: str, steps: bool = True
) -> tuple[_Measured, _Measured]:
    """Both servers on core 0, this process (the driver) on core 1, driven by presealed loops
    in `rounds` alternated slices each (license server, echo, license server, ...), so that
    both see the same host: on a shared machine the hypervisor's steal moves from one minute
    to the next, and a ratio of two runs minutes apart measured that as much as the servers."""
    os.sched_setaffinity(0, {1})
    servers = {kind: _start(kind, data_dir if kind == "issuance" else "", steps) for kind in KINDS}
    for proc, _, _ in servers.values():
        os.sched_setaffinity(proc.pid or 0, {0})
    per_loop = math.ceil(seconds * PINNED_RATE_BOUND / connections)
    cpu: dict[str, dict[str, float]] = {kind: {} for kind in KINDS}
    done = dict.fromkeys(KINDS, 0)
    elapsed = dict.fromkeys(KINDS, 0.0)
    exhausted = dict.fromkeys(KINDS, 0)

    async def alternate() -> None:
        async with trio.open_nursery() as nursery:
            drivers = {
                kind: presealed.Driver(servers[kind][2], kind, connections, per_loop)
                for kind in KINDS
            }
            for driver in drivers.values():
                await driver.open(nursery)
            for _ in range(rounds):
                for kind, driver in drivers.items():
                    pid = servers[kind][0].pid or 0
                    before = threads_cpu(pid)
                    driven = await driver.slice(seconds / rounds)
                    _spent(before, threads_cpu(pid), cpu[kind])
                    done[kind] += driven.answered
                    elapsed[kind] += driven.measured_seconds
                    exhausted[kind] += driven.exhausted
            nursery.cancel_scope.cancel()

    trio.run(alternate)
    totals = {kind: _stop(proc, pipe) for kind, (proc, pipe, _) in servers.items()}
    issued, echoed = (
        _measured(totals[kind], cpu[kind], done[kind], elapsed[kind], exhausted[kind])
        for kind in KINDS
    )
    return issued, echoed


def measure(
    seconds: float, connections: int, *, pin: bool = False, rounds: int = 5, steps: bool = True
) -> dict[str, object]:
    steal_meter = StealMeter()
    with tempfile.TemporaryDirectory(prefix="tslic-bench-") as data_dir:
        if pin:
            issued, echoed = _drive_pinned(connections, seconds, rounds, data_dir, steps)
        else:
            issued = _drive("issuance", connections, seconds, data_dir, steps)
            echoed = _drive("echo", connections, seconds, "", steps)
    license_us = issued["threads_us"]["total"]
    echo_us = echoed["threads_us"]["total"]
    return {
        "pinned": pin,
        "steps_counted": steps,
        "rounds": rounds if pin else 1,
        "issuance": issued,
        "signed_echo": echoed,
        "server_cpu_per_license_over_echo": round(license_us / max(1, echo_us), 3),
        "issuance_over_echo_rate": round(issued["per_second"] / max(1e-9, echoed["per_second"]), 3),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg()[0],
        "steal_share": steal_meter.share(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--pin",
        action="store_true",
        help="each server on core 0, the driver on core 1 (then the rate ratio is the"
        " inverse of the CPU ratio)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="with --pin: alternated slices per server (the seconds are split between them)",
    )
    parser.add_argument(
        "--no-steps",
        action="store_true",
        help="leave the step counters out (they cost ~1 us a step, and a license has more"
        " steps than an echo): threads' CPU only, for the ratio of record",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = measure(
        args.seconds, args.connections, pin=args.pin, rounds=args.rounds, steps=not args.no_steps
    )
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for kind in ("issuance", "signed_echo"):
        part = result[kind]
        assert isinstance(part, dict)
        print(
            f"{kind}: {part['per_second']} requests/s; CPU per request by thread:"
            f" {part['threads_us']}"
        )
        for step, us in part["steps_us"].items():
            print(f"  {step:44} {us:8.1f} us")
        if part["per_transaction"]:
            print(f"  store operations per committed transaction: {part['per_transaction']}")
            in_thread = part["thread_commits"]
            print(f"  groups committed in a worker thread (after a slow commit): {in_thread}")
    print(f"server CPU per license / per echo: {result['server_cpu_per_license_over_echo']}")
    print(f"issuance rate / echo rate: {result['issuance_over_echo_rate']}")
    print(f"share of the machine's CPU stolen by the hypervisor meanwhile: {result['steal_share']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
