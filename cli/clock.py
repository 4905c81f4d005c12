"""`tslic clock`: show or move a deployment's virtual clock (docs/CLOCK.md).

Contract:
- `show` prints the virtual date, the speed and the file; `set DATE` moves the clock to a date
  (`2003-08-30` or `2003-08-30 12:00`, UTC); `advance SPAN` moves it forward (`90d`, `12h`,
  `30m`, `1d12h`); `speed X` changes the speed from now on. Each prints the result as text, or
  one JSON object with `--json` (`now`, `now_ms`, `speed`, `spec`, `file`, and `before` for a
  change).
- The file comes from `--clock-file`, else TSLIC_CLOCK_FILE (runtime.args, CLOCK-1). Only
  `set` creates a missing file (at `--speed`, default 1).
- Every change is one atomic write of a new spec anchored at this instant; daemons that
  follow the file see it within one poll (50 ms) and accept each other's timestamps through
  the change (CLOCK-3). Virtual time never goes backwards (CLOCK-2): a date before the clock's
  is refused (INVALID_FIELD), since the daemons would ignore it.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import NotRequired, TypedDict

from tslic.protocol.clock import ClockSpec, format_date, parse_date, parse_span
from tslic.protocol.errors import ErrorCode, ServiceError
from tslic.runtime.args import CLOCK_FILE_ENV, ClockSource, clock_source
from tslic.runtime.clock import FileClock, write_clock_file


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions = {
        "show": sub.add_parser("show", help="print the virtual date, speed and clock file"),
        "set": sub.add_parser("set", help="move the clock to a date (creates a missing file)"),
        "advance": sub.add_parser("advance", help="move the clock forward by a span"),
        "speed": sub.add_parser("speed", help="change the speed from now on"),
    }
    actions["set"].add_argument("date", help="2003-08-30 or '2003-08-30 12:00' (UTC)")
    actions["set"].add_argument(
        "--speed", type=float, help="virtual seconds per real second (default: unchanged, or 1)"
    )
    actions["advance"].add_argument("span", help="90d, 12h, 30m, 1d12h, 2w")
    actions["speed"].add_argument("speed", type=float, help="virtual seconds per real second")
    for p in actions.values():
        p.add_argument(
            "--clock-file",
            metavar="FILE",
            help=f"the deployment's clock file (default ${CLOCK_FILE_ENV})",
        )
        p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    path = _path(args)
    real = time.time()
    if args.action == "set" and not os.path.exists(path):
        before = None
        speed = args.speed if args.speed is not None else 1.0
        spec = ClockSpec(start=parse_date(args.date), anchor=real, speed=speed)
    else:
        before = FileClock(path).spec  # FileClock via ClockSource.open checked the file
        now = before.at(real)
        if args.action == "show":
            spec = before
        elif args.action == "set":
            target = parse_date(args.date)
            if target < now:
                raise ServiceError(
                    f"{format_date(target)} is before the clock's {format_date(now)}: virtual "
                    "time never goes backwards (daemons following the file would ignore it); "
                    "start a new deployment to go back",
                    code=ErrorCode.INVALID_FIELD,
                )
            speed = args.speed if args.speed is not None else before.speed
            spec = ClockSpec(start=target, anchor=real, speed=speed)
        elif args.action == "advance":
            spec = ClockSpec(start=now + parse_span(args.span), anchor=real, speed=before.speed)
        else:
            spec = ClockSpec(start=now, anchor=real, speed=args.speed)
    if spec is not before:
        write_clock_file(path, spec)
    doc = _document(path, spec, real, None if spec is before else before)
    print(json.dumps(doc) if args.json else _text(doc))
    return 0


def _path(args: argparse.Namespace) -> str:
    """The clock file from --clock-file or TSLIC_CLOCK_FILE; checked unless `set` makes it."""
    source = clock_source(argparse.Namespace(clock_file=args.clock_file))
    if source.file is None:
        raise ServiceError(
            f"which clock? give --clock-file FILE or set {CLOCK_FILE_ENV} "
            "(tslic lab up prints the export line)",
            code=ErrorCode.INVALID_FIELD,
        )
    if not (args.action == "set" and not os.path.exists(source.file)):
        ClockSource(file=source.file, origin=source.origin).open()  # a clear error if damaged
    return source.file


class _ClockDoc(TypedDict):
    now: str
    now_ms: int
    speed: float
    spec: str
    file: str
    before: NotRequired[str]  # after a change: the virtual date it moved from


def _document(path: str, spec: ClockSpec, real: float, before: ClockSpec | None) -> _ClockDoc:
    now = spec.at(real)
    doc: _ClockDoc = {
        "now": format_date(now),
        "now_ms": now,
        "speed": spec.speed,
        "spec": spec.to_arg(),
        "file": os.path.abspath(path),
    }
    if before is not None:
        doc["before"] = format_date(before.at(real))
    return doc


def _text(doc: _ClockDoc) -> str:
    lines = []
    if "before" in doc:
        lines.append(f"moved from    {doc['before']}")
    lines += [
        f"virtual date  {doc['now']} UTC",
        f"speed         {doc['speed']:g} virtual second(s) per real second",
        f"clock file    {doc['file']}",
    ]
    return "\n".join(lines)
