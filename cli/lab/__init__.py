"""`tslic lab`: one command runs a whole deployment and plays the documented scenarios.

Contract:
- `tslic lab` boots a Clearinghouse, a directory, license servers and terminal-server agents as
  separate processes on loopback (the catalogue in `scenarios*.py` starts what each scenario
  needs), moves one shared virtual clock, narrates a timeline with virtual dates, and ends with
  a table: what the documentation says, what happened, the verdict. Exit status 0 only if
  every scenario behaved as documented; 1 if any deviated; 2 for a usage or setup error.
- `--scenario NAME` (repeatable) runs some; `--list` lists them; `--json FILE` writes the
  report; `--data DIR` keeps the deployment's files (default: a temporary directory).
- `tslic lab up` starts the deployment and keeps it running, printing every daemon's address
  and commands to try, until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from pathlib import Path

import trio
from rich.console import Console
from rich.table import Table
from tslic.protocol.clock import parse_date

from . import scenarios
from .catalogue import CATALOGUE
from .clock import LabClock
from .model import Context, Outcome
from .procs import LabError
from .world import World

START_DATE = "2003-05-01"
SPEED = 60.0  # one virtual minute per real second between jumps


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", choices=("run", "up"), default="run")
    parser.add_argument("--data", type=Path, help="keep the deployment here (default: temp)")
    parser.add_argument("--scenario", action="append", default=[], metavar="NAME")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the report as JSON")
    parser.add_argument("--quiet", action="store_true", help="no narration, only the table")


def run(args: argparse.Namespace) -> int:
    # Wide enough for the table when the output is a file or a pipe (CI logs, the README).
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
    if args.list:
        for item in CATALOGUE.values():
            console.print(f"[bold]{item.name}[/bold]  {item.title}  ({', '.join(item.rules)})")
        return 0
    unknown = [name for name in args.scenario if name not in CATALOGUE]
    if unknown:
        console.print(f"tslic: error: unknown scenario(s): {', '.join(unknown)} (see --list)")
        return 2
    with tempfile.TemporaryDirectory(prefix="tslic-lab-") as tmp:
        data = (args.data or Path(tmp)).resolve()
        data.mkdir(parents=True, exist_ok=True)
        if args.action == "up":
            return trio.run(_up, data, console)
        return trio.run(_play, args, data, console)


async def _play(args: argparse.Namespace, data: Path, console: Console) -> int:
    chosen = [CATALOGUE[n] for n in args.scenario] or list(CATALOGUE.values())
    clock = LabClock(data / "clock", start_ms=parse_date(START_DATE), speed=SPEED)

    def echo(line: str) -> None:
        if not args.quiet:
            console.print(line)

    world = World(data, clock, echo)
    outcomes: list[Outcome] = []
    started = time.monotonic()
    try:
        with console.status("booting the deployment") as status:
            await world.boot()
            for number, item in enumerate(chosen, 1):
                status.update(f"scenario {number}/{len(chosen)}: {item.title}")
                echo(
                    f"\n[bold]{number}. {item.title}[/bold]  [dim]{item.source}; "
                    f"{', '.join(item.rules)}[/dim]"
                )
                outcome = Outcome(item.name, item.title, item.rules, item.source)
                ctx = Context(outcome, clock.today, echo)
                begun = time.monotonic()
                try:
                    with trio.fail_after(120):
                        await item.fn(world, ctx)
                except Exception as exc:
                    outcome.error = f"{type(exc).__name__}: {exc}"
                    echo(f"    DEVIATION {outcome.error}")
                outcome.seconds = time.monotonic() - begun
                outcomes.append(outcome)
    except LabError as exc:
        console.print(f"tslic: error: the lab could not run: {exc}")
        return 2
    finally:
        await world.close()
    wall = time.monotonic() - started
    console.print(_table(outcomes))
    deviating = [o.name for o in outcomes if not o.ok]
    console.print(
        f"{len(outcomes) - len(deviating)} of {len(outcomes)} scenarios as documented "
        f"in {wall:.1f} s (virtual clock now {clock.today()})"
    )
    if args.json:
        report: dict[str, object] = {
            "schema": "tslic-lab-report/1",
            "wall_seconds": round(wall, 2),
            "scenarios": [o.to_json() for o in outcomes],
            "ok": not deviating,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if deviating else 0


def _table(outcomes: list[Outcome]) -> Table:
    table = Table(title="Scenarios", show_lines=True)
    table.add_column("#", justify="right")
    table.add_column("scenario")
    table.add_column("rules")
    table.add_column("documented")
    table.add_column("observed")
    table.add_column("verdict")
    for n, o in enumerate(outcomes, 1):
        documented = "\n".join(c.expected for c in o.checks) or "-"
        observed = "\n".join(c.actual for c in o.checks) + (f"\n{o.error}" if o.error else "")
        verdict = "[green]as documented[/green]" if o.ok else "[red]deviates[/red]"
        table.add_row(str(n), o.title, ", ".join(o.rules), documented, observed, verdict)
    return table


async def _up(data: Path, console: Console) -> int:
    clock = LabClock(data / "clock", start_ms=parse_date(START_DATE), speed=SPEED)
    world = World(data, clock, console.print)
    try:
        await world.boot()
        await scenarios.standing_deployment(world)
        console.print("\n[bold]The deployment is up[/bold] (Ctrl-C stops it):")
        for name, daemon in world.dep.daemons.items():
            console.print(f"  {daemon.role:14} {name:14} {daemon.address}")
        sys.stdout.flush()
        # Plain print: the commands must not be wrapped, people copy them.
        print(scenarios.try_commands(world), flush=True)
        # Until Ctrl-C or SIGTERM (a background job may have SIGINT ignored; handle both).
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                console.print("stopping the deployment")
                break
    except LabError as exc:
        console.print(f"tslic: error: {exc}")
        return 2
    finally:
        with trio.CancelScope(shield=True):
            await world.close()
    return 0
