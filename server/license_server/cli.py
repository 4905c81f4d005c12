"""`tslic server`: run a Terminal Server license server (or just set up its data directory).

Contract: `add_arguments(parser)` / `run(args) -> int` as every subcommand.
  serve (default)  runs the daemon: one listener for the licensing and admin conversations,
                   prints one JSON readiness line {"role": "license-server", "address",
                   "version", "name", "admin_credential", "data", "clock", "metrics", "pid"}
                   (also to --ready-file) and serves until SIGINT/SIGTERM (graceful).
  init             creates the data directory and the administrator credential
                   (<data>/admin.key, mode 0600) and prints its path.
Every failure reaches the user as one line with its wire code, never a traceback.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import trio
from tslic.protocol.domain import DEFAULT_SITE, ServerRole, WindowsVersion
from tslic.protocol.errors import ErrorCode, ServiceError
from tslic.runtime.args import (
    add_clock_arguments,
    add_limits_arguments,
    clock_from_args,
    limits_from_args,
    watch_clock,
)
from tslic.runtime.clock import WallClock
from tslic.runtime.daemon import run_daemon
from tslic.runtime.files import read_certs
from tslic.runtime.peer import split_address

from .config import Config, PeerServer
from .daemon import LicenseServer, init_data_dir, listen_error


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", choices=["serve", "init"], default="serve")
    parser.add_argument("--data", type=Path, required=True, help="data directory")
    parser.add_argument("--version", type=int, choices=[2000, 2003], default=2003)
    parser.add_argument("--role", choices=[r.value for r in ServerRole], default="domain")
    parser.add_argument("--name", default="LICSRV", help="computer name (default LICSRV)")
    parser.add_argument("--domain", default="TSLIC")
    parser.add_argument("--site", default=DEFAULT_SITE)
    parser.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (port 0: any)")
    parser.add_argument("--clearinghouse", default="", help="Clearinghouse HOST:PORT")
    parser.add_argument(
        "--clearinghouse-web", default="", help="Clearinghouse web pages URL (its readiness 'url')"
    )
    parser.add_argument("--directory", default="", help="directory HOST:PORT")
    parser.add_argument(
        "--trust-root", type=Path, help="Clearinghouse root (tslic clearinghouse export-root)"
    )
    parser.add_argument("--seed", type=int, help="seed of the lease-length draw (tests)")
    parser.add_argument(
        "--security-group",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="License Server Security Group policy (default: as stored, initially off)",
    )
    parser.add_argument(
        "--prevent-upgrade",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Prevent License Upgrade policy (default: as stored, initially off)",
    )
    parser.add_argument(
        "--peer",
        action="append",
        default=[],
        metavar="NAME=HOST:PORT[=PRODUCTS]",
        help="another license server to refer terminal servers to (repeatable)",
    )
    parser.add_argument("--metrics", default="", help="serve Prometheus metrics on HOST:PORT")
    parser.add_argument("--ready-file", type=Path, help="write the readiness line here too")
    parser.add_argument(
        "--enterprise-credential", default="", help="directory credential for publishing"
    )
    parser.add_argument("--json", action="store_true", help="print JSON (init)")
    add_clock_arguments(parser)
    add_limits_arguments(parser)


def _config(args: argparse.Namespace) -> Config:
    trust_root = None
    if args.trust_root is not None:
        certs = read_certs(args.trust_root)
        if not certs:
            raise ServiceError(
                f"{args.trust_root} holds no certificate", code=ErrorCode.UNTRUSTED_CERTIFICATE
            )
        trust_root = certs[0]
    name = args.name.strip().upper()
    if not 1 <= len(name) <= 15:
        raise ServiceError(
            f"--name {args.name!r}: a computer name has 1 to 15 characters",
            code=ErrorCode.INVALID_FIELD,
        )
    for address in (args.clearinghouse, args.directory, args.metrics):
        if address:
            split_address(address)
    return Config(
        name=name,
        version=WindowsVersion(args.version),
        role=ServerRole(args.role),
        domain=args.domain,
        site=args.site,
        data_dir=args.data,
        clearinghouse=args.clearinghouse,
        clearinghouse_web=args.clearinghouse_web,
        directory=args.directory,
        trust_root=trust_root,
        seed=args.seed,
        peers=tuple(PeerServer.parse(p) for p in args.peer),
        security_group=args.security_group,
        prevent_upgrade=args.prevent_upgrade,
        enterprise_credential=args.enterprise_credential,
    )


def run(args: argparse.Namespace) -> int:
    if args.action == "init":
        path = init_data_dir(args.data)
        info = {"admin_credential": str(path), "data": str(args.data)}
        print(json.dumps(info) if args.json else f"administrator credential: {path}")
        return 0
    config = _config(args)
    limits = limits_from_args(args)
    clock = clock_from_args(args)
    host, port = split_address(args.listen)

    async def start(shutdown: trio.Event, task_status: trio.TaskStatus[dict[str, object]]) -> None:
        ls = LicenseServer(config, clock, limits=limits)
        async with trio.open_nursery() as outer:
            watch_clock(outer, clock)
            metrics = ""
            if args.metrics:
                m_host, m_port = split_address(args.metrics)
                try:
                    metrics = await outer.start(ls.metrics.serve, m_host, m_port)
                except OSError as exc:
                    raise listen_error(m_host, m_port, exc) from None
            async with trio.open_nursery() as inner:
                address = await inner.start(ls.serve, host, port)
                task_status.started(
                    {
                        "role": "license-server",
                        "address": address,
                        "version": int(config.version),
                        "name": config.name,
                        "activation": str(ls.activation.state),
                        "admin_credential": str(ls.admin_key_path),
                        "data": str(config.data_dir),
                        "clock": clock.spec.to_arg() if isinstance(clock, WallClock) else "",
                        "metrics": metrics,
                    }
                )
                await shutdown.wait()
                ls.shutdown()  # stop accepting, drain; ls.serve then returns
            outer.cancel_scope.cancel()  # the metrics endpoint and the clock watcher

    return run_daemon(start, ready_file=args.ready_file)
