"""`tslic load`: load-test a license server (or, full-stack, terminal-server agents).

Contract: `add_arguments(parser)` and `run(args) -> int`, as every subcommand. The exit code is
0 (pass), 1 (a threshold failed), 2 (usage or setup error: `UsageError`, printed by the
dispatcher as one line), 3 (the run is invalid or inconclusive: the generator fell behind).
`tslic load merge FILE...` merges shard results files exactly and reports like a run.
docs/LOAD.md is the manual.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import trio
from rich.console import Console
from tslic.protocol.domain import DEFAULT_SITE
from tslic.protocol.errors import TslicError
from tslic.runtime.args import add_clock_arguments, clock_source
from tslic.runtime.peer import split_address

from .config import (
    DEFAULT_MIX,
    LoadConfig,
    parse_clients,
    parse_fraction,
    parse_mix,
)
from .coordinator import RunResult, merge_results, run_in_process, run_processes
from .errors import EXIT_USAGE, UsageError
from .progress import Progress
from .report import build_report, console_table, write_reports
from .schedule import OpenSchedule, Share, Stage, parse_duration, parse_shard, parse_stages
from .thresholds import parse_threshold


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "merge",
        nargs="*",
        metavar="merge FILE",
        help="'merge FILE...': merge the results files of shards and report",
    )
    target = parser.add_argument_group("target")
    target.add_argument("--target", metavar="HOST:PORT", help="the license server to load")
    target.add_argument(
        "--agents-rdp",
        metavar="HOST:PORT,...",
        help="full-stack mode: drive RDP client logons through these terminal-server agents",
    )
    model = parser.add_argument_group("workload model (choose one)")
    model.add_argument("--rate", type=float, help="open model: constant arrivals per second")
    model.add_argument("--stages", help="open model, ramping: 30s:100,60s:2000,30s:0")
    model.add_argument("--start-rate", type=float, default=0.0, help="rate before the first stage")
    model.add_argument("--concurrency", type=int, help="closed model: concurrent request loops")
    model.add_argument("--duration", default="30s", help="run time with --rate/--concurrency")
    fleet = parser.add_argument_group("fleet")
    fleet.add_argument(
        "--agents",
        default="100",
        metavar="N | HOST:PORT,...",
        help="emulated terminal servers (a number), or full-stack mode: the addresses of real"
        " terminal-server agents to drive RDP client logons through (as --agents-rdp)",
    )
    fleet.add_argument("--connect-rate", type=float, default=200.0, help="agents connecting per s")
    fleet.add_argument(
        "--mix", default=DEFAULT_MIX, help="operation mix (new, upgrade, mark, return)"
    )
    fleet.add_argument("--ts2000", default="0.2", help="share of Windows 2000 terminal servers")
    fleet.add_argument("--per-user", default="0.3", help="share of 2003 ones in Per User mode")
    fleet.add_argument(
        "--clients",
        default="windows-xp-professional=70,windows-2000-professional=30",
        help="client systems of the synthetic devices, with weights",
    )
    fleet.add_argument("--seed", type=int, help="derive every key and choice from this seed")
    fleet.add_argument("--domain", default="LOAD", help="the terminal servers' domain")
    fleet.add_argument("--site", default=DEFAULT_SITE, help="their site")
    run = parser.add_argument_group("generators and checks")
    run.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes")
    run.add_argument("--shard", help="run only shard i of n (i/n) and write a results file")
    run.add_argument("--results", metavar="FILE", help="write the results file here")
    run.add_argument("--start-at", type=float, help="unix time to start (to line shards up)")
    run.add_argument("--timeout", default="10s", help="a request slower than this fails")
    run.add_argument("--max-lag", default="50ms", help="generator lateness bound at p99")
    run.add_argument(
        "--no-cpu-check", action="store_true", help="do not mark CPU-saturated runs inconclusive"
    )
    run.add_argument(
        "--threshold",
        action="append",
        default=[],
        help="an SLO such as 'p99<20ms', 'errors<0.1%%', 'rate>900' (repeatable)",
    )
    add_clock_arguments(parser, daemon=False)
    out = parser.add_argument_group("output")
    out.add_argument("--report", metavar="DIR", help="write report.json, timeline.csv, report.html")
    out.add_argument("--json", action="store_true", help="print the JSON report only")


def _agents_option(text: str) -> tuple[int, str]:
    """`--agents`: a count of emulated terminal servers, or addresses (full-stack mode).

    Raises:
        UsageError: neither a whole number nor HOST:PORT addresses.
    """
    value = text.strip()
    if value.isdigit():
        return int(value), ""
    if ":" in value:
        return 0, value
    raise UsageError(
        f"--agents {text!r} must be a number of terminal servers or HOST:PORT,... of agents"
    )


def config_from_args(args: argparse.Namespace) -> tuple[LoadConfig, Share]:
    """Validate the options into a config and the share to run.

    Raises:
        UsageError: a missing or contradictory option, or a malformed value.
    """
    count, addresses = _agents_option(args.agents)
    if addresses and args.agents_rdp:
        raise UsageError("give the agents' addresses once: --agents HOST:PORT,... or --agents-rdp")
    listed = args.agents_rdp or addresses
    rdp_agents = tuple(a.strip() for a in listed.split(",") if a.strip())
    for address in rdp_agents:
        split_address(address)
    if not rdp_agents:
        if not args.target:
            raise UsageError(
                "give --target HOST:PORT (the license server), or --agents HOST:PORT,..."
                " (terminal-server agents, full-stack mode)"
            )
        split_address(args.target)
    chosen = [n for n in ("rate", "stages", "concurrency") if getattr(args, n) is not None]
    if len(chosen) != 1:
        raise UsageError("choose one workload model: --rate R, --stages ... or --concurrency C")
    duration = parse_duration(args.duration)
    stages: tuple[Stage, ...] = ()
    start_rate = 0.0
    model = "open"
    if args.rate is not None:
        schedule = OpenSchedule.constant(args.rate, duration)
        stages, start_rate = schedule.stages, schedule.start_rate
    elif args.stages is not None:
        schedule = OpenSchedule(parse_stages(args.stages), start_rate=args.start_rate)
        stages, start_rate, duration = schedule.stages, args.start_rate, schedule.duration
    else:
        model = "closed"
        if args.concurrency < 1:
            raise UsageError("--concurrency must be at least 1")
        if duration <= 0:
            raise UsageError("--duration must be longer than zero")
    if count < 1 and not rdp_agents:
        raise UsageError("--agents must be at least 1")
    if args.connect_rate <= 0:
        raise UsageError("--connect-rate must be positive")
    config = LoadConfig(
        target=args.target or rdp_agents[0],
        duration=duration,
        model=model,
        stages=stages,
        start_rate=start_rate,
        concurrency=args.concurrency or 0,
        agents=0 if rdp_agents else count,
        seed=args.seed,
        mix=parse_mix(args.mix),
        ts2000=parse_fraction(args.ts2000, "--ts2000"),
        per_user=parse_fraction(args.per_user, "--per-user"),
        clients=parse_clients(args.clients),
        connect_rate=args.connect_rate,
        timeout=parse_duration(args.timeout),
        max_lag=parse_duration(args.max_lag),
        cpu_limit=None if args.no_cpu_check else 0.95,
        domain=args.domain,
        site=args.site,
        rdp_agents=rdp_agents,
        clock=clock_source(args),
    )
    share = parse_shard(args.shard) if args.shard else Share()
    return config, share


def run(args: argparse.Namespace) -> int:
    thresholds = [parse_threshold(t) for t in args.threshold]
    # Logs and pipes get whole lines (no wrapping at 80 columns); a terminal wraps as usual.
    console = Console(stderr=args.json, highlight=False, soft_wrap=True)
    if args.merge:
        if args.merge[0] != "merge" or len(args.merge) < 2:
            raise UsageError("unexpected arguments; to merge shards: tslic load merge FILE...")
        result = merge_results([_read_results(Path(p)) for p in args.merge[1:]])
    else:
        config, share = config_from_args(args)
        result = _run(config, share, args, console)
        if args.shard or args.results:
            name = args.results or f"tslic-load-results-{share.offset}-of-{share.stride}.json"
            path = Path(args.report or ".") / name if not args.results else Path(name)
            _write(path, json.dumps(result.to_results()) + "\n")
            if not args.json:
                console.print(f"results written to {path}")
    report = build_report(result, thresholds)
    if args.report:
        try:
            paths = write_reports(report, Path(args.report))
        except OSError as exc:
            raise UsageError(f"cannot write the report to {args.report}: {exc.strerror}") from None
        if not args.json:
            console.print("report: " + ", ".join(str(p) for p in paths))
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        console_table(report, console)
    code: int = report["verdict"]["exit_code"]
    return code


def _run(config: LoadConfig, share: Share, args: argparse.Namespace, console: Console) -> RunResult:
    schedule = config.schedule()

    def target_at(second: int) -> float | None:
        return schedule.target_in(second) if isinstance(schedule, OpenSchedule) else None

    # With --json, stdout carries the report alone: the live status goes to stderr.
    progress = Progress(Console(stderr=True, soft_wrap=True) if args.json else console, target_at)
    workers = max(1, args.workers)
    if config.agents:
        workers = min(workers, max(1, share.count_of(config.agents)))
    if not args.json:
        console.print(
            f"tslic load: {config.describe_model()}; {config.agents or len(config.rdp_agents)} "
            f"{'terminal servers' if config.agents else 'RDP agents'}; {workers} generator(s)"
        )
    with progress:
        if workers == 1:

            async def main() -> RunResult:
                return await run_in_process(
                    config,
                    share,
                    config.clock.open(),
                    progress=progress,
                    start_at_unix=args.start_at,
                )

            return trio.run(main)
        return run_processes(config, share, workers, progress=progress, start_at_unix=args.start_at)


def _read_results(path: Path) -> RunResult:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise UsageError(f"{path} is not JSON (a tslic load results file was expected)") from None
    return RunResult.from_results(data)


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None


def main(argv: list[str] | None = None) -> int:
    """`tslic load` on its own (`python -m tslic.client.load.cli`), with the dispatcher's
    error handling: a `TslicError` is one line on stderr and exit code 2."""
    parser = argparse.ArgumentParser(prog="tslic load", description="load-test a license server")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except TslicError as exc:
        print(f"tslic: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
