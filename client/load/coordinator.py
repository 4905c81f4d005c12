"""Running a load test over N generator processes, shards and result files.

Contract:
- `run_processes(config, share, workers)` spawns `workers` processes (multiprocessing, spawn),
  gives worker w the share `share.split(workers)[w]` of the agents and of the schedule, waits
  until every worker has connected its agents, starts them all at one wall-clock instant,
  collects their per-second intervals over pipes and merges them exactly into a `RunResult`.
- `run_in_process(config, share, clock)` does the same with one generator inside the calling
  Trio loop (what `--workers 1` and the tests use).
- A shard (`--shard i/n`) is just `share = Share(i, n)`; its `RunResult.to_results()` is the
  results file, and `merge_results` combines the files of all shards exactly (counts add,
  histograms add, second by second). Shards started with the same `--start-at` line up.
- A worker that dies or cannot start makes the run invalid (reason in `invalid`), never a
  traceback. No agent connected at all is a setup failure: `UsageError`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import multiprocessing.connection
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import trio
from tslic.protocol.codec import Unvalidated
from tslic.protocol.errors import ErrorCode
from tslic.runtime.args import ClockSource
from tslic.runtime.clock import Clock

from .config import LoadConfig
from .errors import UsageError
from .histograms import Interval, Timeline
from .report_types import WorkerJson
from .schedule import OpenSchedule, Share, Stage
from .summary import WorkerSummary
from .worker import Worker

RESULTS_SCHEMA = "tslic-load-results/1"


@dataclass(slots=True)
class Snapshot:
    """What the live display shows after each second."""

    second: int
    interval: Interval
    connected: int
    total: Interval


@dataclass(slots=True)
class RunResult:
    """A finished (or merged) run."""

    config: LoadConfig
    timeline: Timeline
    started_at: float  # unix time of the schedule's start
    shards: list[str] = field(default_factory=lambda: ["0/1"])
    workers: list[WorkerJson] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)  # the run could not be run as asked

    @property
    def connected(self) -> int:
        return sum(int(w.get("connected", 0)) for w in self.workers)

    @property
    def connect_errors(self) -> Counter[int]:
        errors: Counter[int] = Counter()
        for w in self.workers:
            errors.update({int(k): int(v) for k, v in w.get("connect_errors", {}).items()})
        return errors

    @property
    def inconclusive(self) -> list[str]:
        reasons = list(self.invalid)
        for w in self.workers:
            reasons.extend(w.get("inconclusive", []))
        return reasons

    def to_results(self) -> dict[str, object]:
        """The results file: everything needed to merge and re-report exactly."""
        return {
            "schema": RESULTS_SCHEMA,
            "config": config_to_wire(self.config),
            "started_at": self.started_at,
            "shards": list(self.shards),
            "workers": list(self.workers),
            "invalid": list(self.invalid),
            "seconds": self.timeline.wire_seconds(),
        }

    @classmethod
    def from_results(cls, data: dict[str, Unvalidated]) -> RunResult:
        """Read a results file's content.

        Raises:
            UsageError: it is not a tslic load results file.
        """
        if not isinstance(data, dict) or data.get("schema") != RESULTS_SCHEMA:
            raise UsageError(f"not a tslic load results file (schema {RESULTS_SCHEMA} expected)")
        try:
            timeline = Timeline()
            for second in data["seconds"]:
                timeline.add_wire(second)
            return cls(
                config=config_from_wire(data["config"]),
                timeline=timeline,
                started_at=float(data["started_at"]),
                shards=[str(s) for s in data["shards"]],
                workers=list(data["workers"]),
                invalid=[str(r) for r in data["invalid"]],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"the results file is malformed (missing or bad {exc})") from None


def config_to_wire(config: LoadConfig) -> dict[str, object]:
    out: dict[str, object] = {}
    for name in LoadConfig.__slots__:
        value = getattr(config, name)
        if name == "stages":
            value = [[s.duration, s.target] for s in value]
        elif name == "clock":
            value = dataclasses.asdict(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[name] = value
    return out


def config_from_wire(data: dict[str, Unvalidated]) -> LoadConfig:
    values = dict(data)
    values["stages"] = tuple(Stage(float(d), float(t)) for d, t in values.get("stages", []))
    values["rdp_agents"] = tuple(values.get("rdp_agents", ()))
    values["clock"] = ClockSource(**values.get("clock", {}))
    known = set(LoadConfig.__slots__)
    return LoadConfig(**{k: v for k, v in values.items() if k in known})


def merge_results(results: list[RunResult]) -> RunResult:
    """Merge shard results exactly (same second numbers add up).

    Raises:
        UsageError: no results, or shards of different runs (another target or schedule).
    """
    if not results:
        raise UsageError("nothing to merge: give one or more results files")
    first = results[0]
    merged = RunResult(config=first.config, timeline=Timeline(), started_at=first.started_at)
    merged.shards, merged.workers, merged.invalid = [], [], []
    seen: set[str] = set()
    for result in results:
        same = (result.config.target, result.config.model, result.config.stages) == (
            first.config.target,
            first.config.model,
            first.config.stages,
        )
        if not same:
            raise UsageError("these results come from different runs (target or schedule differ)")
        for shard in result.shards:
            if shard in seen:
                raise UsageError(f"shard {shard} appears twice in the files to merge")
            seen.add(shard)
        for interval in result.timeline.seconds():
            merged.timeline.add(interval)
        merged.shards.extend(result.shards)
        merged.workers.extend(result.workers)
        merged.invalid.extend(result.invalid)
        merged.started_at = min(merged.started_at, result.started_at)
    if len({abs(r.started_at - first.started_at) > 1.0 for r in results}) > 1:
        merged.invalid.append(
            "shards started more than a second apart; use the same --start-at to line them up"
        )
    return merged


def _connect_share(config: LoadConfig, share: Share) -> float:
    """This share's part of the fleet's connect rate."""
    return max(0.1, config.connect_rate / share.stride)


async def run_in_process(
    config: LoadConfig,
    share: Share,
    clock: Clock,
    *,
    progress: Callable[[Snapshot], None] | None = None,
    start_at_unix: float | None = None,
) -> RunResult:
    """One generator in this Trio loop."""
    timeline = Timeline()
    connected = [0]

    def sink(interval: Interval) -> None:
        timeline.add(interval)
        if progress is not None:
            progress(Snapshot(interval.second, interval, connected[0], timeline.total))

    async def start_at() -> float:
        if start_at_unix is None:
            return trio.current_time()
        return trio.current_time() + max(0.0, start_at_unix - time.time())

    def status(n: int) -> None:
        connected[0] = n

    worker = Worker(
        config,
        share,
        clock,
        sink=sink,
        status=status,
        start_at=start_at,
        connect_rate=_connect_share(config, share),
    )
    _check_share(config, share)
    began = time.time()
    summary = await worker.run()
    if summary.connected == 0 and summary.agents > 0:
        raise _nobody_connected(config, summary.connect_errors)
    shard = f"{share.offset}/{share.stride}"
    started = start_at_unix if start_at_unix is not None else began
    return RunResult(config, timeline, started, [shard], [summary.to_wire()])


def _check_share(config: LoadConfig, share: Share) -> None:
    if config.model == "closed" and not any(share.owns(j) for j in range(config.concurrency)):
        raise UsageError("this share has no closed-model loop: raise --concurrency")
    if not config.rdp_agents and share.offset >= config.agents:
        raise UsageError(
            f"--agents {config.agents} is too few for {share.stride} generators; each needs one"
        )


def _nobody_connected(config: LoadConfig, errors: Counter[int]) -> UsageError:
    detail = ", ".join(f"{ErrorCode(c).name} ×{n}" for c, n in errors.most_common()) or "none"
    return UsageError(f"no emulated terminal server could connect to {config.target} ({detail})")


def _worker_main(
    conn: multiprocessing.connection.Connection,
    config: LoadConfig,
    share: Share,
    worker_id: int,
    connect_rate: float,
) -> None:
    """The body of a worker process: run the worker, talk to the coordinator by pipe."""

    async def main() -> None:
        def ready(connected: int, errors: Counter[int]) -> None:
            conn.send(("ready", worker_id, (connected, dict(errors))))

        async def start_at() -> float:
            message = await trio.to_thread.run_sync(conn.recv, abandon_on_cancel=True)
            unix = float(message[1])
            return trio.current_time() + max(0.0, unix - time.time())

        worker = Worker(
            config,
            share,
            config.clock.open(),
            worker_id=worker_id,
            sink=lambda interval: conn.send(("interval", worker_id, interval.to_wire())),
            status=lambda n: conn.send(("status", worker_id, n)),
            on_ready=ready,
            start_at=start_at,
            connect_rate=connect_rate,
        )
        summary = await worker.run()
        conn.send(("done", worker_id, summary.to_wire()))

    try:
        trio.run(main)
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # report, don't print a traceback in a child process
        with contextlib.suppress(OSError):
            conn.send(("failed", worker_id, f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def run_processes(
    config: LoadConfig,
    share: Share,
    workers: int,
    *,
    progress: Callable[[Snapshot], None] | None = None,
    start_at_unix: float | None = None,
    ready_timeout: float | None = None,
) -> RunResult:
    """Run `workers` generator processes and merge what they measure."""
    _check_share(config, share)
    shares = share.split(workers)
    for s in shares:
        _check_share(config, s)
    rate = _connect_share(config, shares[0])
    ctx = multiprocessing.get_context("spawn")
    pipes: dict[int, multiprocessing.connection.Connection] = {}
    processes = []
    for w, s in enumerate(shares):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker_main, args=(child, config, s, w, rate), daemon=True)
        proc.start()
        child.close()
        pipes[w] = parent
        processes.append(proc)
    timeline = Timeline()
    summaries: dict[int, WorkerJson] = {}
    invalid: list[str] = []
    connected: dict[int, int] = {}
    ready: set[int] = set()
    setup_errors: Counter[int] = Counter()
    limit = ready_timeout or 60.0 + 3 * config.agents / max(config.connect_rate, 0.1)
    deadline = time.monotonic() + limit
    started_at = 0.0
    last_second = -1
    try:
        while pipes:
            settled = len(ready | (set(range(len(shares))) - set(pipes)))
            if not started_at and (settled == len(shares) or time.monotonic() > deadline):
                if sum(connected.values()) == 0 and config.agents > 0:
                    raise _nobody_connected(config, setup_errors)
                started_at = max(time.time() + 0.2, start_at_unix or 0.0)
                for conn in pipes.values():
                    with contextlib.suppress(OSError):  # a dead worker shows up as EOF next
                        conn.send(("start", started_at))
            for waited in multiprocessing.connection.wait(list(pipes.values()), timeout=0.25):
                w = next(k for k, v in pipes.items() if v is waited)
                try:
                    kind, _, payload = pipes[w].recv()
                except (EOFError, OSError):
                    if w not in summaries:
                        invalid.append(f"worker {w} exited without finishing")
                    del pipes[w]
                    continue
                if kind == "ready":
                    ready.add(w)
                    connected[w] = int(payload[0])
                    setup_errors.update(payload[1])
                elif kind == "status":
                    connected[w] = int(payload)
                elif kind == "interval":
                    interval = Interval.from_wire(payload)
                    timeline.add(interval)
                    if progress is not None and interval.second > last_second + 1:
                        # A later second has begun: the previous ones are complete.
                        last_second = interval.second - 1
                        whole = timeline.get(last_second)
                        if whole is not None:
                            total = sum(connected.values())
                            progress(Snapshot(last_second, whole, total, timeline.total))
                elif kind == "done":
                    summaries[w] = payload
                elif kind == "failed":
                    invalid.append(f"worker {w} failed: {payload}")
    finally:
        for conn in pipes.values():
            conn.close()
        for proc in processes:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
    shard = f"{share.offset}/{share.stride}"
    result = RunResult(
        config, timeline, started_at, [shard], [summaries[w] for w in sorted(summaries)]
    )
    result.invalid = invalid
    return result


def expected_total(config: LoadConfig) -> int | None:
    """How many requests the open schedule plans in all (None for the closed model)."""
    schedule = config.schedule()
    return schedule.total() if isinstance(schedule, OpenSchedule) else None


__all__ = [
    "RESULTS_SCHEMA",
    "RunResult",
    "Snapshot",
    "WorkerSummary",
    "expected_total",
    "merge_results",
    "run_in_process",
    "run_processes",
]
