"""`tslic directory`: run the emulated Active Directory, or ask one a question.

Contract (docs/DIRECTORY.md):
- `serve` (the default when no action is named) loads the topology (--topology, else the
  packaged sample), opens the data directory, listens on --listen (default 127.0.0.1:4389,
  port 0 allowed), prints one JSON readiness line {"role": "directory", "address", "clock",
  "forest", "data", "pid"} (also to --ready-file) and serves until SIGINT/SIGTERM.
- The enterprise-admin credential: --credential, else --credential-file, else the
  TSLIC_DIRECTORY_CREDENTIAL environment variable, else `<data>/enterprise-admin.credential`,
  created at first start (random, mode 0600) and reused.
- Client actions (query-site, query-dcs, lookup, members, register, publish, unpublish,
  set-computer) open one signed conversation with --server (default TSLIC_DIRECTORY or
  127.0.0.1:4389) and print a table, or JSON with --json. A directory on a virtual clock needs
  the same clock: --clock-file or --clock, else TSLIC_CLOCK_FILE or TSLIC_CLOCK (runtime.args).
- `check` validates a topology file offline and summarises it.
- Every failure is a TslicError (one line with its code from `tslic`), never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import secrets
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.protocol import Conversation, ErrorCode, Message, ServiceError, Timeout
from tslic.protocol.domain import PeerRole
from tslic.protocol.errors import RemoteProtocolError
from tslic.protocol.messages.directory import (
    DirComputer,
    DirGroupMembers,
    DirLookupComputer,
    DirPublish,
    DirQueryDomainControllers,
    DirQueryEnterprise,
    DirRegister,
    DirSetComputer,
    DirUnpublish,
)
from tslic.protocol.messages.records import ComputerInfo
from tslic.runtime.args import (
    add_clock_arguments,
    add_limits_arguments,
    clock_from_args,
    limits_from_args,
    watch_clock,
)
from tslic.runtime.console import make_console
from tslic.runtime.daemon import run_daemon
from tslic.runtime.files import ensure_dir, load_or_create_key, read_bytes, write_atomic
from tslic.runtime.peer import PeerStream, open_peer, split_address
from tslic.runtime.service import Limits, Server

from .render import computers_table, print_reply
from .service import DirectoryService
from .topology import Topology, load_topology

DEFAULT_LISTEN = "127.0.0.1:4389"
DEFAULT_DATA = "directory-data"
CREDENTIAL_ENV = "TSLIC_DIRECTORY_CREDENTIAL"
SERVER_ENV = "TSLIC_DIRECTORY"
CREDENTIAL_FILE = "enterprise-admin.credential"
KEY_FILE = "directory.key"

_SERVE_DEFAULTS: dict[str, object] = {
    "topology": None,
    "data": DEFAULT_DATA,
    "listen": DEFAULT_LISTEN,
    "ready_file": None,
    "credential": None,
    "credential_file": None,
    "start_date": None,
    "clock_file": None,
    "clock": None,
    "speed": 1.0,
    "json": False,
}


def _serve_options(p: argparse.ArgumentParser) -> None:
    # SUPPRESS: options may come before or after `serve` without one default hiding the other.
    s = argparse.SUPPRESS
    p.add_argument("--topology", type=Path, default=s, help="topology TOML (default: the sample)")
    p.add_argument("--data", type=Path, default=s, help=f"data directory ({DEFAULT_DATA})")
    p.add_argument("--listen", default=s, help=f"HOST:PORT, port 0 allowed ({DEFAULT_LISTEN})")
    p.add_argument("--ready-file", type=Path, default=s, help="also write the readiness line")
    p.add_argument("--credential", default=s, help="the enterprise-admin credential")
    p.add_argument("--credential-file", type=Path, default=s, help="read the credential")
    add_clock_arguments(p, default=s)
    p.add_argument("--json", action="store_true", default=s, help="no human summary")
    add_limits_arguments(p)


def _client_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", default=os.environ.get(SERVER_ENV, DEFAULT_LISTEN))
    add_clock_arguments(p, daemon=False)
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait (10)")
    p.add_argument("--json", action="store_true", help="print JSON")


def _credential_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--credential", help=f"enterprise-admin credential (or ${CREDENTIAL_ENV})")
    p.add_argument("--credential-file", type=Path, help="read the credential from a file")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _serve_options(parser)
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    _serve_options(sub.add_parser("serve", help="run the directory (the default)"))
    check = sub.add_parser("check", help="check a topology file and summarise it")
    check.add_argument("--topology", type=Path, help="topology TOML (default: the sample)")
    check.add_argument("--json", action="store_true", help="print JSON")
    for name, arg, help_text in (
        ("query-site", "site", "enterprise license servers published for a site"),
        ("query-dcs", "domain", "domain controllers of a domain"),
        ("lookup", "name", "a computer's domain, site, role and address"),
        ("members", "group", "members of a group (SCOPE\\name or a unique name)"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument(arg)
        _client_options(p)
    reg = sub.add_parser("register", help="record the address a computer listens on")
    reg.add_argument("computer")
    reg.add_argument("address", help="HOST:PORT")
    _client_options(reg)
    for name in ("publish", "unpublish"):
        p = sub.add_parser(name, help=f"{name} an enterprise license server for a site")
        p.add_argument("--site", required=True)
        p.add_argument("--computer", required=True)
        _credential_options(p)
        _client_options(p)
    sc = sub.add_parser("set-computer", help="create, promote, demote or upgrade a computer")
    sc.add_argument("name")
    sc.add_argument("--domain")
    sc.add_argument("--site")
    sc.add_argument("--os", type=int, choices=(2000, 2003), dest="os_version")
    role = sc.add_mutually_exclusive_group()
    role.add_argument("--dc", action="store_true", default=None, help="promote to DC")
    role.add_argument("--member", dest="dc", action="store_false", help="demote to member")
    sc.add_argument("--address", default="", help="also register HOST:PORT")
    _credential_options(sc)
    _client_options(sc)


def run(args: argparse.Namespace) -> int:
    action = getattr(args, "action", None) or "serve"
    if action == "serve":
        opts = argparse.Namespace(**{k: getattr(args, k, v) for k, v in _SERVE_DEFAULTS.items()})
        return _serve(opts, limits_from_args(args))
    if action == "check":
        return _check(args)
    return _client(action, args)


# -- serve -------------------------------------------------------------------------------------
def _read_secret(path: Path) -> str:
    try:
        text = read_bytes(path).decode("utf-8").strip()
    except UnicodeDecodeError:
        text = ""
    if not text:
        raise ServiceError(f"{path} holds no credential", code=ErrorCode.INVALID_FIELD)
    return text


def server_credential(credential: str | None, credential_file: Path | None, data: Path) -> str:
    """The credential by the documented order (--credential, --credential-file, the
    environment); creates the data-dir file if nothing is given."""
    if credential:
        return str(credential)
    if credential_file is not None:
        return _read_secret(credential_file)
    if os.environ.get(CREDENTIAL_ENV, "").strip():
        return os.environ[CREDENTIAL_ENV].strip()
    path = data / CREDENTIAL_FILE
    if not path.exists():
        write_atomic(path, (secrets.token_urlsafe(24) + "\n").encode(), mode=0o600)
    return _read_secret(path)


def _serve(opts: argparse.Namespace, limits: Limits) -> int:
    topology = load_topology(opts.topology)
    data = ensure_dir(Path(opts.data))
    host, port = split_address(opts.listen)
    clock = clock_from_args(
        argparse.Namespace(
            clock_file=opts.clock_file,
            clock=opts.clock,
            start_date=opts.start_date,
            speed=opts.speed,
        )
    )
    credential = server_credential(opts.credential, opts.credential_file, data)
    key = load_or_create_key(data / KEY_FILE)
    service = DirectoryService(topology, data, clock, credential)

    async def start(shutdown: trio.Event, task_status: trio.TaskStatus[dict[str, object]]) -> None:
        server = Server(service, key=key, clock=clock, limits=limits)
        async with trio.open_nursery() as nursery:
            watch_clock(nursery, clock, shutdown)
            address = await nursery.start(server.serve, host, port)
            if not opts.json:
                print(_banner(topology, address, data, service.skipped), file=sys.stderr)
            task_status.started(
                {
                    "role": "directory",
                    "address": address,
                    "clock": clock.spec.to_arg(),
                    "forest": topology.forest_name,
                    "data": str(data),
                }
            )
            await shutdown.wait()
            server.shutdown()

    try:
        return run_daemon(start, ready_file=opts.ready_file)
    finally:
        service.close()


def _banner(topology: Topology, address: str, data: Path, skipped: list[str]) -> str:
    lines = [
        f"tslic directory: forest {topology.forest_name} ({len(topology.domains)} domains, "
        f"{len(topology.sites)} sites, {len(topology.computers)} computers) on {address}; "
        f"data in {data}"
    ]
    lines += [f"  warning: stored state ignored: {s}" for s in skipped]
    return "\n".join(lines)


def _check(args: argparse.Namespace) -> int:
    topo = load_topology(args.topology)
    summary = {
        "forest": topo.forest_dn,
        "domains": [dataclasses.asdict(d) for d in topo.domains],
        "sites": list(topo.sites),
        "computers": [dataclasses.asdict(c) for c in topo.computers],
        "groups": [{"group": g.qualified, "members": list(g.members)} for g in topo.groups],
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    console = make_console()
    console.print(f"Forest {topo.forest_name} ({topo.forest_dn}): the topology is valid")
    console.print(computers_table("Computers", [dataclasses.asdict(c) for c in topo.computers]))
    for g in topo.groups:
        console.print(f"{g.qualified}: {', '.join(g.members) or '(empty)'}")
    return 0


# -- client actions ----------------------------------------------------------------------------
def _credential(args: argparse.Namespace) -> str:
    if args.credential:
        return str(args.credential)
    if args.credential_file is not None:
        return _read_secret(args.credential_file)
    if os.environ.get(CREDENTIAL_ENV, "").strip():
        return os.environ[CREDENTIAL_ENV].strip()
    raise ServiceError(
        f"this action needs the enterprise-admin credential: give --credential, "
        f"--credential-file or set {CREDENTIAL_ENV}",
        code=ErrorCode.INVALID_FIELD,
    )


async def _set_computer(args: argparse.Namespace, stream: PeerStream) -> Message:
    try:
        found = await stream.request(DirLookupComputer(name=args.name))
        assert isinstance(found, DirComputer)
        old: ComputerInfo | None = found.computer
    except ServiceError as exc:
        if exc.code != ErrorCode.NOT_FOUND:
            raise
        old = None
    if old is None and not (args.domain and args.site and args.os_version):
        raise ServiceError(
            f"{args.name} does not exist yet: give --domain, --site and --os to create it",
            code=ErrorCode.NOT_FOUND,
        )
    info = ComputerInfo(
        name=old.name if old else args.name,
        domain=args.domain or (old.domain if old else ""),
        site=args.site or (old.site if old else ""),
        is_domain_controller=args.dc
        if args.dc is not None
        else bool(old and old.is_domain_controller),
        os_version=args.os_version or (old.os_version if old else 0),
        address=args.address,
    )
    return await stream.request(DirSetComputer(computer=info, credential=_credential(args)))


def _request(action: str, args: argparse.Namespace) -> Callable[[PeerStream], Awaitable[Message]]:
    if action == "set-computer":
        return lambda stream: _set_computer(args, stream)
    request: Message
    if action == "query-site":
        request = DirQueryEnterprise(site=args.site)
    elif action == "query-dcs":
        request = DirQueryDomainControllers(domain=args.domain)
    elif action == "lookup":
        request = DirLookupComputer(name=args.name)
    elif action == "members":
        request = DirGroupMembers(group=args.group)
    elif action == "register":
        request = DirRegister(computer=args.computer, address=args.address)
    elif action == "publish":
        request = DirPublish(site=args.site, computer=args.computer, credential=_credential(args))
    else:
        request = DirUnpublish(site=args.site, computer=args.computer, credential=_credential(args))
    return lambda stream: stream.request(request)


def _client(action: str, args: argparse.Namespace) -> int:
    ask = _request(action, args)
    clock = clock_from_args(args)

    async def converse() -> Message:
        with trio.fail_after(args.timeout):
            async with open_peer(
                args.server,
                conversation=Conversation.DIRECTORY,
                key=Ed25519PrivateKey.generate(),
                clock=clock,
                role=PeerRole.ADMINISTRATOR,
                name="tslic-directory-cli",
            ) as stream:
                return await ask(stream)

    try:
        reply = trio.run(converse)
    except trio.TooSlowError:
        raise Timeout(
            f"the directory at {args.server} did not answer within {args.timeout} s"
        ) from None
    except RemoteProtocolError as exc:
        if exc.code in (ErrorCode.STALE_TIMESTAMP, ErrorCode.FUTURE_TIMESTAMP):
            exc.message += (
                "; the directory runs a virtual clock: pass --clock-file (or "
                "TSLIC_CLOCK_FILE), or --clock with the 'clock' value of its readiness line"
            )
        raise
    print_reply(reply, args.json)
    return 0
