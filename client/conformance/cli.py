"""`tslic conformance`: run the black-box suite against a target.

Contract: `tslic conformance --target HOST:PORT --role ROLE` runs every case for the role and
exits 0 when all pass, 1 when any case fails (or an --expect-fail case passes), 2 for usage
errors (bad options, unreadable files, an unreachable target). `--list` and `--coverage` print
without connecting. Progress is one line per case; the summary is a table by rule section;
`--json FILE` and `--junit FILE` write the reports (docs/CONFORMANCE.md has the schema).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import trio
from rich.console import Console
from rich.table import Table
from tslic.protocol import ErrorCode, ServiceError, TslicError
from tslic.runtime.args import add_clock_arguments, clock_source
from tslic.runtime.files import write_atomic
from tslic.runtime.peer import split_address

from . import report
from .catalogue import all_cases, load_spec
from .model import Result, Role
from .prepare import prepare
from .runner import SuiteConfig, run_suite, select


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", choices=["run", "prepare"], default="run",
                        help="run the cases (default), or prepare: write the manifest of the "
                        "peers the suite plays (with --role and --out DIR)")  # fmt: skip
    parser.add_argument("--target", help="HOST:PORT of the implementation under test")
    parser.add_argument("--role", choices=[str(r) for r in Role], help="what the target is")
    parser.add_argument("--list", action="store_true", help="list the selected cases and exit")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="ID|GLOB",
        help="run only matching cases (case id, rule id or glob; repeatable)",
    )
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="skip matching cases (repeatable)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="SHOULD and MAY rules count towards the exit status too",
    )
    parser.add_argument(
        "--expect-fail",
        action="append",
        default=[],
        metavar="ID",
        help="a case expected to fail; if it passes the run fails",
    )
    parser.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML here")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the JSON report here")
    parser.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how long the target has to answer one probe (default 5)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of keys, nonces and names")
    parser.add_argument(
        "--coverage",
        action="store_true",
        help="print which MUST and SHOULD rules have cases, and exit",
    )
    parser.add_argument(
        "--evidence",
        type=Path,
        metavar="DIR",
        help="write an evidence bundle for each failing case under DIR",
    )
    parser.add_argument(
        "--spec",
        type=Path,
        metavar="FILE",
        help="the protocol specification (default: docs/PROTOCOL.md)",
    )
    prep = parser.add_argument_group("target preparation (docs/CONFORMANCE.md)")
    prep.add_argument(
        "--admin-credential",
        type=Path,
        metavar="FILE",
        help="the license server's administrator key (to provision it)",
    )
    prep.add_argument(
        "--trust-root",
        type=Path,
        metavar="FILE",
        help="the Clearinghouse root certificate the target trusts (PEM or DER)",
    )
    add_clock_arguments(parser, daemon=False)  # --clock-file: the file the target follows
    prep.add_argument(
        "--window",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="the target's freshness window in virtual seconds (default 300)",
    )
    prep.add_argument(
        "--handshake-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="the target's Hello deadline (default 10, as runtime Limits)",
    )
    prep.add_argument(
        "--idle-timeout",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="the target's idle timeout, to test it (default 0: skip; 300 for tslic daemons)",
    )
    prep.add_argument(
        "--flood",
        type=int,
        default=200,
        metavar="N",
        help="connections opened without a handshake in the flood case",
    )
    prep.add_argument(
        "--name",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="names in the target's data the cases may use: site=SITE, "
        "group=DOMAIN\\GROUP (directory targets)",
    )
    prep.add_argument(
        "--clearinghouse",
        default="",
        metavar="HOST:PORT",
        help="the Clearinghouse the license-server target was started with: the suite "
        "activates the target (automatic method) before the cases; needs --admin-credential",
    )
    prep.add_argument(
        "--retail-code",
        action="append",
        default=[],
        metavar="CODE",
        help="a retail license code the Clearinghouse knows (tslic clearinghouse add-retail); "
        "installed on the target after activation (repeatable; needs --clearinghouse)",
    )
    prep.add_argument("--manifest", type=Path, default=None, metavar="FILE",
                      help="the manifest of `tslic conformance prepare`: the suite plays the "
                      "target's peers it names (agent targets: its license servers)")  # fmt: skip
    prep.add_argument("--events-command", default="", metavar="CMD",
                      help="a command printing the target's events as a JSON array of "
                      "{id, ...} (e.g. `tslic agent events --data DIR --json`)")  # fmt: skip
    prep.add_argument(
        "--web",
        default="",
        metavar="HOST:PORT",
        help="a Clearinghouse target's web pages (the readiness line's web)",
    )
    prep.add_argument("--status-command", default="", metavar="CMD",
                      help="a command printing the target's status as JSON (grace.days_left"
                      ", servers[].name/how: `tslic agent status --data DIR --json`)")  # fmt: skip
    prep.add_argument("--agent-version", type=int, choices=[2000, 2003], default=2003,
                      help="prepare --role agent: the version of the agent to start")  # fmt: skip
    prep.add_argument("--out", type=Path, default=None, metavar="DIR",
                      help="prepare: where to write manifest.json and the clock file")  # fmt: skip
    prep.add_argument("--slow-delay", type=float, default=0.05, metavar="SECONDS",
                      help="seconds between bytes in the slow-sender case")  # fmt: skip


def _usage(message: str) -> int:
    print(f"tslic conformance: error: {message}", file=sys.stderr)
    return 2


def config_from_args(args: argparse.Namespace, argv: list[str] | None = None) -> SuiteConfig:
    if args.timeout <= 0 or args.flood < 1 or args.slow_delay < 0 or args.window <= 0:
        raise ServiceError(
            "--timeout and --window must be positive, --flood at least 1",
            code=ErrorCode.INVALID_FIELD,
        )
    if args.clearinghouse:
        split_address(args.clearinghouse)  # ServiceError naming the bad address
        if args.admin_credential is None:
            raise ServiceError(
                "--clearinghouse needs --admin-credential (the suite activates the target"
                " through the licensing utility's conversation)",
                code=ErrorCode.INVALID_FIELD,
            )
    if args.retail_code and not args.clearinghouse:
        raise ServiceError("--retail-code needs --clearinghouse", code=ErrorCode.INVALID_FIELD)
    names = {}
    for item in args.name:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise ServiceError(f"--name {item!r} is not KEY=VALUE", code=ErrorCode.INVALID_FIELD)
        names[key.strip().lower()] = value.strip()
    return SuiteConfig(
        names=names,
        target=args.target or "",
        role=Role(args.role) if args.role else Role.LICENSE_SERVER,
        only=args.only,
        exclude=args.exclude,
        strict=args.strict,
        expect_fail=args.expect_fail,
        timeout=args.timeout,
        seed=args.seed,
        evidence=args.evidence,
        admin_credential=args.admin_credential,
        trust_root=args.trust_root,
        clock_file=_clock_file(args),
        window_ms=int(args.window * 1000),
        handshake_timeout=args.handshake_timeout,
        flood=args.flood,
        slow_delay=args.slow_delay,
        idle_timeout=args.idle_timeout,
        clearinghouse=args.clearinghouse,
        retail_codes=tuple(args.retail_code),
        manifest=args.manifest,
        events_command=args.events_command,
        status_command=args.status_command,
        web=args.web,
        argv=argv or [],
    )


def _clock_file(args: argparse.Namespace) -> Path | None:
    """The clock file the target follows: --clock-file, else TSLIC_CLOCK_FILE (runtime.args).
    A --clock spec needs nothing: the suite learns the target's time from its first frame."""
    source = clock_source(args)
    if source.file is None:
        return None
    source.open()  # refuses a missing or damaged file with its path
    return Path(source.file)


def run(args: argparse.Namespace) -> int:
    if args.action == "prepare":
        return run_prepare(args)
    console = Console(stderr=False, highlight=False, soft_wrap=True)
    try:
        config = config_from_args(args)
        rules = load_spec(args.spec)
    except ServiceError as exc:
        return _usage(exc.message)
    cases = all_cases(rules)
    if args.coverage:
        cov = report.coverage(cases, rules)
        console.print(report.coverage_table(cov))
        for line in report.coverage_lines(cov):
            console.print(line)
        if cov.unknown:
            console.print(f"cases cite ids missing from the spec: {', '.join(sorted(cov.unknown))}")
        if args.json:
            _write(args.json, json.dumps(report.coverage_json(cov), indent=1).encode())
        return 0
    if not args.role:
        return _usage("--role is required (license-server, agent, clearinghouse, directory)")
    if args.list:
        chosen = select(cases, config)
        table = Table(title=f"{len(chosen)} cases for {config.role}")
        for column in ("id", "level", "description", "expected"):
            table.add_column(column)
        for c in chosen:
            table.add_row(c.id, str(c.level), c.description, " | ".join(c.expected))
        console.print(table)
        if args.json:
            _write(args.json, json.dumps(report.list_rows(chosen), indent=1).encode())
        return 0
    if not args.target:
        return _usage("--target HOST:PORT is required to run cases")
    try:
        split_address(args.target)
    except ServiceError as exc:
        return _usage(exc.message)
    total = len(select(cases, config))
    if total == 0:
        return _usage("no case matches the selection (see --list)")
    seen = [0]

    def progress(result: Result) -> None:
        seen[0] += 1
        console.print(report.progress_line(result, seen[0], total))

    try:
        suite = trio.run(run_suite, config, cases, progress)
    except ServiceError as exc:
        return _usage(str(exc))
    except TslicError as exc:  # e.g. the target is unreachable (ConnectionLost)
        return _usage(str(exc))
    for line in suite.prepared:
        console.print(f"prepared: {line}")
    console.print(report.summary_table(suite))
    failed = suite.failed
    console.print(
        f"{len(suite.results)} cases, {len(failed)} failed, wall time {suite.wall_time:.1f} s"
    )
    try:
        if args.json:
            _write(args.json, json.dumps(report.to_json(suite), indent=1).encode())
        if args.junit:
            _write(args.junit, report.to_junit(suite))
    except ServiceError as exc:
        return _usage(str(exc))
    return suite.exit_status


def _write(path: Path, data: bytes) -> None:
    write_atomic(path, data)  # raises StorageError (a ServiceError) naming the path


def run_prepare(args: argparse.Namespace) -> int:
    """`tslic conformance prepare --role ROLE --out DIR`: write the manifest, print it."""
    if not args.role or args.out is None:
        return _usage("prepare needs --role and --out DIR")
    try:
        manifest = prepare(Role(args.role), args.out, version=args.agent_version)
    except (OSError, ServiceError) as exc:
        return _usage(f"cannot prepare {args.out}: {exc}")
    print(json.dumps(manifest, indent=1))
    for command in manifest.get("target_setup", []):
        print("prepare the target's data with:\n  " + shlex.join(command))
    print("start the target with:\n  " + shlex.join(manifest["target_command"]))
    if "fresh_agent_command" in manifest:
        print("the suite itself starts a second terminal server (each {data} a fresh "
              "directory; edit fresh_agent_command for another implementation):\n  "
              + shlex.join(manifest["fresh_agent_command"]))  # fmt: skip
    print("then run:\n  " + shlex.join(manifest["suite_command"]))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point for tests: parse `argv` and run."""
    parser = argparse.ArgumentParser(prog="tslic conformance")
    add_arguments(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return run(args)
