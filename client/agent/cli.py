"""`tslic agent`: run an emulated terminal server, or show its status or event log.

Contract: `tslic agent [run]` starts the daemon (readiness line {"role": "agent", "address",
"version", "mode", "name", "clock", "pid"}, plus "rdp_address" with `--rdp-listen`, the real
RDP listener of rdp_serve.py; `--ready-file`, graceful SIGINT/SIGTERM through
runtime.daemon); `tslic agent status --data DIR [--json]` and `tslic agent events --data DIR
[--json]` read what the agent persisted. Bad options are one-line errors with a code (exit 2).
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from functools import partial
from pathlib import Path

import trio
from tslic.protocol.domain import LicensingMode, WindowsVersion
from tslic.protocol.errors import ErrorCode, ServiceError
from tslic.protocol.grace import DiscoveryIntervals
from tslic.protocol.policy import GraceEnd
from tslic.runtime.args import (
    add_clock_arguments,
    add_limits_arguments,
    clock_from_args,
    clock_source,
    limits_from_args,
    watch_clock,
)
from tslic.runtime.daemon import run_daemon
from tslic.runtime.files import read_certs
from tslic.runtime.peer import split_address

from .config import AGENT_LIMITS, AgentConfig, NamedAddress
from .status import dumps, events_document, render_events, render_status, status_document


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        nargs="?",
        default="run",
        choices=("run", "status", "events"),
        help="run the terminal server (default), or show its status or event log",
    )
    parser.add_argument("--data", type=Path, required=True, help="the agent's data directory")
    parser.add_argument("--json", action="store_true", help="status/events: print JSON")
    parser.add_argument("--version", choices=("2000", "2003"), default="2003")
    parser.add_argument("--mode", choices=[m.value for m in LicensingMode], default="per-device")
    parser.add_argument("--name", default="TS1", help="computer name of the terminal server")
    parser.add_argument("--domain", default="", help="its Active Directory domain")
    parser.add_argument("--site", default="", help="its Active Directory site")
    parser.add_argument("--workgroup", default="", help="its workgroup or NT 4 domain")
    parser.add_argument(
        "--license-server",
        action="append",
        default=[],
        metavar="NAME[=HOST:PORT]",
        help="2003: a LicenseServers registry sub-key (repeatable, tried in order)",
    )
    parser.add_argument(
        "--policy-license-server",
        action="append",
        default=[],
        metavar="NAME[=HOST:PORT]",
        help="2003 SP1: the 'Use the specified license servers' policy list (tried first)",
    )
    parser.add_argument(
        "--default-license-server",
        metavar="NAME[=HOST:PORT]",
        help="2000: the DefaultLicenseServer registry value",
    )
    parser.add_argument(
        "--subnet-license-server",
        action="append",
        default=[],
        metavar="NAME=HOST:PORT",
        help="workgroup: a license server that answers the broadcast (repeatable)",
    )
    parser.add_argument("--directory", default="", metavar="HOST:PORT")
    parser.add_argument("--trust-root", type=Path, help="the Clearinghouse root certificate (PEM)")
    parser.add_argument("--listen", default="127.0.0.1:0", metavar="HOST:PORT")
    add_clock_arguments(parser)
    parser.add_argument(
        "--rdp-listen",
        metavar="HOST:PORT",
        help="also serve real RDP clients (rdesktop, xfreerdp) here (docs/RDP.md)",
    )
    parser.add_argument(
        "--rdp-hold",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long a licensed RDP client sees the outcome before the disconnect",
    )
    parser.add_argument(
        "--grace-ends",
        choices=[g.value for g in GraceEnd],
        default=GraceEnd.FIRST_PERMANENT_CAL.value,
    )
    parser.add_argument("--discovery-retry", type=float, default=15.0, metavar="MINUTES")
    parser.add_argument("--rediscovery", type=float, default=60.0, metavar="MINUTES")
    parser.add_argument("--liveness", type=float, default=120.0, metavar="MINUTES")
    parser.add_argument(
        "--license-server-connections",
        type=int,
        default=8,
        metavar="N",
        help="connections kept to one license server, at most (default 8)",
    )
    parser.add_argument("--ready-file", type=Path)
    add_limits_arguments(parser, AGENT_LIMITS)


def _named(text: str, option: str) -> NamedAddress:
    name, sep, address = text.partition("=")
    name = name.strip()
    if not name:
        raise ServiceError(
            f"{option} {text!r}: give NAME or NAME=HOST:PORT", code=ErrorCode.INVALID_FIELD
        )
    if sep:
        split_address(address)  # refuses a malformed address with a clear message
    return NamedAddress(name=name, address=address.strip())


def build_config(args: argparse.Namespace) -> AgentConfig:
    """The AgentConfig the options describe.

    Raises:
        ServiceError: an option is invalid (the message names it).
    """
    intervals: dict[str, timedelta] = {}
    for option, field_name in (
        ("discovery_retry", "retry_when_none_found"),
        ("rediscovery", "rediscovery"),
        ("liveness", "liveness_check"),
    ):
        minutes = getattr(args, option)
        if not minutes > 0:
            raise ServiceError(
                f"--{option.replace('_', '-')} must be positive", code=ErrorCode.INVALID_FIELD
            )
        intervals[field_name] = timedelta(minutes=minutes)
    trust_root = None
    if args.trust_root is not None:
        certs = read_certs(args.trust_root)
        trust_root = certs[0]
    default = args.default_license_server
    return AgentConfig(
        name=args.name,
        version=WindowsVersion(int(args.version)),
        mode=LicensingMode(args.mode),
        domain=args.domain,
        site=args.site,
        workgroup=args.workgroup,
        policy_servers=tuple(
            _named(t, "--policy-license-server") for t in args.policy_license_server
        ),
        registry_servers=tuple(_named(t, "--license-server") for t in args.license_server),
        default_license_server=None if not default else _named(default, "--default-license-server"),
        subnet_servers=tuple(
            _named(t, "--subnet-license-server") for t in args.subnet_license_server
        ),
        directory=args.directory,
        trust_root=trust_root,
        intervals=DiscoveryIntervals(**intervals),
        grace_end=GraceEnd(args.grace_ends),
        connections_per_server=args.license_server_connections,
    )


def run(args: argparse.Namespace) -> int:
    if args.action == "status":
        source = clock_source(args)
        doc = status_document(args.data, None if source.origin == "real time" else source.open())
        print(dumps(doc) if args.json else render_status(doc))
        return 0
    if args.action == "events":
        events = events_document(args.data)
        print(dumps(events) if args.json else render_events(events))
        return 0
    from .service import Agent

    config = build_config(args)
    for warning in config.ignored_sources():
        print(f"tslic agent: warning: {warning}", file=sys.stderr)
    limits = limits_from_args(args, AGENT_LIMITS)
    clock = clock_from_args(args)
    spec = clock.spec
    host, port = split_address(args.listen)

    async def start(shutdown: trio.Event, task_status: trio.TaskStatus[dict[str, object]]) -> None:
        agent = Agent(config, args.data, clock, limits=limits)
        agent.state.clock_spec = spec.to_arg()
        agent.state.save()
        async with trio.open_nursery() as nursery:
            watch_clock(nursery, clock, shutdown)
            address = await nursery.start(agent.serve, host, port)
            ready: dict[str, object] = {
                "role": "agent",
                "address": address,
                "version": int(config.version),
                "mode": str(config.mode),
                "name": config.name,
                "clock": spec.to_arg(),
            }
            if args.rdp_listen:
                from .rdp_serve import serve_agent_rdp

                rdp_host, rdp_port = split_address(args.rdp_listen)
                ready["rdp_address"] = await nursery.start(
                    partial(
                        serve_agent_rdp,
                        rdp_host,
                        rdp_port,
                        agent_address=address,
                        data_dir=args.data,
                        clock=clock,
                        limits=limits,
                        shutdown=shutdown,
                        hold=args.rdp_hold,
                    )
                )
            task_status.started(ready)
            await shutdown.wait()
            agent.shutdown()

    return run_daemon(start, ready_file=args.ready_file)
