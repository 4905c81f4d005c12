"""Command-line options every daemon and tool shares: the virtual clock (docs/CLOCK.md) and
the listener limits.

Contract: `add_clock_arguments(parser)` adds `--clock-file` and `--clock` (and, for a daemon
that may start a clock of its own, `--start-date` and `--speed`); `clock_source(args)` turns
them into a `ClockSource` and `clock_from_args(args)` into a `Clock`. This is the ONE place a
command learns which clock to follow. Precedence (CLOCK-1): `--clock-file` (a shared,
movable clock, as the lab uses), then `--clock` (an exact spec), then `--start-date`/`--speed`
(anchored at this process's start), then the environment (`TSLIC_CLOCK_FILE`, then
`TSLIC_CLOCK`), else real time. A clock file that cannot be read or holds no spec is refused
here, with its path. A `FileClock` re-reads its file at most every 50 ms when read; daemons
also run `watch_clock` so sleepers wake promptly after a jump.
`add_limits_arguments` adds one option per `Limits` field (`--max-connections`, ...) with the
daemon's defaults shown in `--help`; `limits_from_args` turns them into a `Limits`, refusing
a bad value with a one-line `ServiceError` (INVALID_FIELD) that names the option.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from dataclasses import dataclass
from typing import Any

import trio
from tslic.protocol.clock import ClockSpec, parse_date
from tslic.protocol.errors import ErrorCode, ServiceError

from .clock import Clock, FileClock, WallClock
from .limits import Limits, option

CLOCK_FILE_ENV = "TSLIC_CLOCK_FILE"
CLOCK_ENV = "TSLIC_CLOCK"


def add_clock_arguments(
    parser: argparse.ArgumentParser, *, daemon: bool = True, default: str | None = None
) -> None:
    """Add the clock options. `daemon`: also `--start-date`/`--speed` (a clock of its own).
    `default`: argparse default for every option (argparse.SUPPRESS for subcommand parsers
    whose options may come before or after the action)."""
    group = parser.add_argument_group(
        "virtual clock",
        f"the deployment's clock; without an option, ${CLOCK_FILE_ENV} (then ${CLOCK_ENV}) "
        "is used, else real time (docs/CLOCK.md)",
    )
    group.add_argument(
        "--clock-file",
        default=default,
        metavar="FILE",
        help=f"follow the deployment's clock file (default ${CLOCK_FILE_ENV})",
    )
    group.add_argument(
        "--clock",
        default=default,
        metavar="SPEC",
        help="an exact clock spec START_MS@ANCHORxSPEED, or 'real'",
    )
    if daemon:
        group.add_argument(
            "--start-date",
            default=default,
            help="virtual date at start, e.g. 2003-05-01 (a clock of this daemon's own)",
        )
        group.add_argument(
            "--speed",
            type=float,
            default=default,
            help="virtual seconds per real second (default 1)",
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ClockSource:
    """Where a process's clock comes from: picklable, so generator processes share it."""

    file: str | None = None
    spec: str | None = None
    start_ms: int | None = None
    speed: float = 1.0
    origin: str = "real time"  # which option or variable chose it, for messages

    def open(self) -> WallClock:
        """The clock itself.

        Raises:
            ServiceError: INVALID_FIELD for a clock file that is missing, unreadable or holds
                no clock spec (the message names the file and where it came from).
        """
        if self.file is not None:
            _check_clock_file(self.file, self.origin)
            return FileClock(self.file)
        if self.spec is not None:
            return WallClock(ClockSpec.from_arg(self.spec))
        if self.start_ms is not None:
            return WallClock.starting(self.start_ms, self.speed)
        if self.speed != 1.0:
            return WallClock.starting(int(time.time() * 1000), self.speed)
        return WallClock.starting(None)


def clock_source(args: argparse.Namespace) -> ClockSource:
    """The clock the options (then the environment) describe; see the module contract."""
    clock_file = getattr(args, "clock_file", None)
    spec = getattr(args, "clock", None)
    start_date = getattr(args, "start_date", None)
    speed = float(getattr(args, "speed", None) or 1.0)
    if clock_file:
        return ClockSource(file=str(clock_file), origin="--clock-file")
    if spec:
        return ClockSource(spec=str(spec), origin="--clock")
    if start_date:
        return ClockSource(start_ms=parse_date(start_date), speed=speed, origin="--start-date")
    if speed != 1.0:
        return ClockSource(speed=speed, origin="--speed")
    if os.environ.get(CLOCK_FILE_ENV, "").strip():
        return ClockSource(file=os.environ[CLOCK_FILE_ENV].strip(), origin=CLOCK_FILE_ENV)
    if os.environ.get(CLOCK_ENV, "").strip():
        return ClockSource(spec=os.environ[CLOCK_ENV].strip(), origin=CLOCK_ENV)
    return ClockSource()


def clock_from_args(args: argparse.Namespace) -> WallClock:
    """The clock the options describe (`clock_source(args).open()`).

    Raises:
        ServiceError: INVALID_FIELD for a bad clock file or spec.
    """
    return clock_source(args).open()


def _check_clock_file(path: str, origin: str) -> None:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read().strip()
    except OSError as exc:
        raise ServiceError(
            f"cannot read the clock file {path} (from {origin}): {exc.strerror or exc}",
            code=ErrorCode.INVALID_FIELD,
        ) from None
    except UnicodeDecodeError:  # binary garbage: not a clock spec either
        text = "(not text)"
    try:
        ClockSpec.from_arg(text)
    except ServiceError:
        raise ServiceError(
            f"the clock file {path} (from {origin}) holds {text[:40]!r}, not a clock spec "
            "START_MS@ANCHORxSPEED (docs/CLOCK.md)",
            code=ErrorCode.INVALID_FIELD,
        ) from None


def watch_clock(nursery: trio.Nursery, clock: Clock, until: trio.Event | None = None) -> None:
    """Keep a shared `FileClock` up to date in `nursery` until `until` is set (the daemon's
    shutdown event), so the watcher never holds a stopping daemon open (no-op otherwise)."""
    if isinstance(clock, FileClock):
        nursery.start_soon(clock.watch, until)


# ---- limits --------------------------------------------------------------------------------

_LIMIT_HELP = {
    "max_connections": "connections served at once; the next is told SERVER_BUSY (capped by"
    " the open-files limit less 256)",
    "handshake_timeout": "seconds for a peer's first message (HANDSHAKE_TIMEOUT)",
    "idle_timeout": "seconds a peer may stay silent between messages (IDLE_TIMEOUT)",
    "request_timeout": "seconds a request may take before INTERNAL_ERROR",
    "max_frame": "largest frame accepted, bytes (FRAME_TOO_LARGE)",
    "rate_per_second": "requests per second per peer key (RATE_LIMITED beyond)",
    "rate_burst": "burst of requests per peer key",
    "shutdown_grace": "seconds busy handlers get at shutdown (then SHUTTING_DOWN)",
    "accept_rate": "new connections accepted per second (0: unpaced)",
    "accept_burst": "burst of new connections",
    "window_real_seconds": "freshness window for timestamps, real seconds",
}


def add_limits_arguments(parser: argparse.ArgumentParser, defaults: Limits | None = None) -> None:
    """Add the `Limits` options (`--max-connections`, ..., docs/RELIABILITY.md), with this
    daemon's defaults in `--help`. The options default to argparse.SUPPRESS, so a parser and
    its `serve` sub-parser may both carry them; `limits_from_args` fills in the defaults."""
    defaults = defaults or Limits()
    group = parser.add_argument_group(
        "limits", "protections of the listener (docs/RELIABILITY.md); real seconds"
    )
    for f in dataclasses.fields(Limits):
        default = getattr(defaults, f.name)
        group.add_argument(
            option(f.name),
            dest=f.name,
            default=argparse.SUPPRESS,
            metavar="N",
            help=f"{_LIMIT_HELP[f.name]} (default {default:g})",
        )


def limits_from_args(args: argparse.Namespace, defaults: Limits | None = None) -> Limits:
    """The `Limits` the options give, over `defaults`.

    Raises:
        ServiceError: INVALID_FIELD, naming the option, for a value that is not a number or
            is out of range (one line for the user; exit status 2).
    """
    defaults = defaults or Limits()
    # Any: filled by reflection over Limits' fields (an int or a float each, as the field
    # says), which `replace` cannot check statically; Limits.__post_init__ checks every type.
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Limits):
        text = getattr(args, f.name, None)
        if text is None:
            continue
        whole = f.type in (int, "int")
        try:
            values[f.name] = int(text) if whole else float(text)
        except (TypeError, ValueError):
            kind = "a whole number" if whole else "a number"
            raise ServiceError(
                f"{option(f.name)} {text!r} is not {kind}", code=ErrorCode.INVALID_FIELD
            ) from None
    return dataclasses.replace(defaults, **values)
