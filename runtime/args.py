"""Command-line options every daemon shares: the clock, the ready file, --json.

Contract: `add_clock_arguments` adds `--start-date`, `--speed`, `--clock` and `--clock-file`;
`clock_from_args` turns them into a `Clock`. Precedence: `--clock-file` (a shared, movable
clock, as the lab uses), then `--clock` (an exact spec, so separate processes agree to the
millisecond), then `--start-date`/`--speed` (anchored at this process's start), else real
time. A `FileClock` must be watched: run `clock.watch()` in the daemon's nursery.
"""

from __future__ import annotations

import argparse
import time

import trio
from tslic.protocol.clock import ClockSpec, parse_date

from .clock import Clock, FileClock, WallClock


def add_clock_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("virtual clock")
    group.add_argument(
        "--start-date", help="virtual date at start, e.g. 2003-05-01 (default: real time)"
    )
    group.add_argument(
        "--speed", type=float, default=1.0, help="virtual seconds per real second (default 1)"
    )
    group.add_argument("--clock", help="exact clock spec START_MS@ANCHORxSPEED (overrides)")
    group.add_argument("--clock-file", help="follow a shared clock file (the lab uses this)")


def clock_from_args(args: argparse.Namespace) -> WallClock:
    """The clock the options describe. `--speed` without `--start-date` starts the fast
    clock at the present moment."""
    if getattr(args, "clock_file", None):
        return FileClock(args.clock_file)
    if getattr(args, "clock", None):
        return WallClock(ClockSpec.from_arg(args.clock))
    speed = float(getattr(args, "speed", None) or 1.0)
    if getattr(args, "start_date", None):
        return WallClock.starting(parse_date(args.start_date), speed)
    if speed != 1.0:
        return WallClock.starting(int(time.time() * 1000), speed)
    return WallClock.starting(None)


def watch_clock(nursery: trio.Nursery, clock: Clock, until: trio.Event | None = None) -> None:
    """Keep a shared `FileClock` up to date in `nursery` until `until` is set (the daemon's
    shutdown event), so the watcher never holds a stopping daemon open (no-op otherwise)."""
    if isinstance(clock, FileClock):
        nursery.start_soon(clock.watch, until)
