"""`tslic clearinghouse`: run the emulated Clearinghouse and manage its catalogue.

Contract: `add_arguments(parser)` / `run(args) -> int` as every subcommand. Actions:
  serve (default)  --data DIR --listen HOST:PORT --web HOST:PORT --ready-file FILE
                   --start-date DATE --speed X: the TCP service and the web pages; prints one
                   JSON readiness line {"role": "clearinghouse", "address", "web", "url", ...};
                   SIGINT/SIGTERM shut it down gracefully.
  export-root      --data DIR --out FILE: write the root certificate (PEM) for other daemons.
  add-retail | add-open | add-agreement | add-xp: add test purchases (add-retail prints the
                   code it generated when none is given).
  list | activations: show the catalogue / every activation (with revoked certificates).
  phone            the interactive telephone session on stdin/stdout.
Every action that prints has --json. Errors reach the user as one line with their wire code
(cli/main.py prints `TslicError`s), never as a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypedDict

import trio
from tslic.protocol.clock import format_date, parse_date
from tslic.protocol.codes import group5
from tslic.protocol.domain import CalProduct, Program
from tslic.protocol.errors import ErrorCode, ServiceError
from tslic.runtime.args import (
    add_clock_arguments,
    add_limits_arguments,
    clock_from_args,
    limits_from_args,
    watch_clock,
)
from tslic.runtime.daemon import run_daemon
from tslic.runtime.files import write_certs
from tslic.runtime.peer import split_address
from tslic.runtime.service import Server

from . import purchases
from .catalogue import Entitlement
from .core import ROOT_CERT, Clearinghouse
from .phone import phone_session
from .service import ClearinghouseService
from .web import WebApp, serve_web

PRODUCTS = [str(p) for p in purchases.SELLABLE]
AGREEMENTS = [str(p) for p in purchases.AGREEMENT_PROGRAMS]


# The shared options are accepted before the action (`tslic clearinghouse --data ch serve`)
# and after it. An action's parser must not overwrite what was given before it with its own
# defaults, so there they default to SUPPRESS; `run` fills the defaults in and checks --data.
_DEFAULTS: dict[str, object] = {
    "data": None, "json": False, "start_date": None, "speed": None, "clock": None,
    "clock_file": None, "listen": "127.0.0.1:0", "web": "127.0.0.1:0", "ready_file": None,
}  # fmt: skip


def _default(sub: bool, name: str) -> object:
    return argparse.SUPPRESS if sub else _DEFAULTS[name]


def _data(p: argparse.ArgumentParser, sub: bool = True) -> None:
    p.add_argument(
        "--data",
        type=Path,
        help="the Clearinghouse data directory (required)",
        default=_default(sub, "data"),
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print JSON instead of text",
        default=_default(sub, "json"),
    )


def _clock_args(p: argparse.ArgumentParser, sub: bool = True) -> None:
    add_clock_arguments(p, default=argparse.SUPPRESS if sub else None)


def _serve_args(p: argparse.ArgumentParser, sub: bool) -> None:
    _data(p, sub)
    _clock_args(p, sub)
    p.add_argument("--listen", help="TCP HOST:PORT (port 0: any)", default=_default(sub, "listen"))
    p.add_argument("--web", help="web pages HOST:PORT (port 0: any)", default=_default(sub, "web"))
    p.add_argument(
        "--ready-file", type=Path, help="also write the readiness line here",
        default=_default(sub, "ready_file"),
    )  # fmt: skip
    add_limits_arguments(p)


def _purchase_args(p: argparse.ArgumentParser) -> None:
    _data(p)
    _clock_args(p)
    p.add_argument("--product", required=True, choices=PRODUCTS)
    p.add_argument("--count", required=True, type=int)
    p.add_argument(
        "--date", help="purchase date (default: today on the clock options, else the real clock)"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _serve_args(parser, sub=False)
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    _serve_args(sub.add_parser("serve", help="run the Clearinghouse (the default)"), sub=True)
    p = sub.add_parser("export-root", help="write the root certificate (PEM)")
    _data(p)
    p.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("add-retail", help="add a retail license pack")
    _purchase_args(p)
    p.add_argument("--code", default="", help="25-character license code (default: generate)")
    p = sub.add_parser("add-open", help="add an Open License purchase")
    _purchase_args(p)
    p.add_argument("--license-number", required=True, help="8 digits")
    p.add_argument("--authorization-number", required=True, help="15 letters or digits")
    p = sub.add_parser("add-agreement", help="add a Select / EA / Campus / School purchase")
    _purchase_args(p)
    p.add_argument("--program", required=True, choices=AGREEMENTS)
    p.add_argument("--number", required=True, help="7-digit enrollment or agreement number")
    p = sub.add_parser("add-xp", help="add a Windows XP Professional license")
    _data(p)
    p.add_argument("--key", required=True, help="product key (hyphens optional)")
    p.add_argument("--acquired", required=True, help="acquisition date, e.g. 2003-04-23")
    p.add_argument("--channel", required=True, choices=["retail", "oem", "volume"])
    p.add_argument("--program", choices=[str(Program.OPEN_LICENSE), *AGREEMENTS])
    p.add_argument("--number", default="", help="volume: 7-digit agreement number")
    p.add_argument("--license-number", default="", help="volume, Open License: 8 digits")
    p.add_argument("--authorization-number", default="", help="volume, Open License")
    _data(sub.add_parser("list", help="show the entitlement catalogue"))
    _data(sub.add_parser("activations", help="show every activation"))
    p = sub.add_parser("phone", help="the telephone session (reads answers from stdin)")
    _data(p)
    _clock_args(p)


def run(args: argparse.Namespace) -> int:
    for name, value in _DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, value)
    action = args.action or "serve"
    if args.data is None:
        raise ServiceError("--data DIR is required", code=ErrorCode.INVALID_FIELD)
    if action == "serve":
        return _serve(args)
    if action == "phone":
        return _phone(args)
    ch = Clearinghouse(args.data)
    try:
        result, lines = _ACTIONS[action](ch, args)
    finally:
        ch.close()
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        for line in lines:
            print(line)
    return 0


def _serve(args: argparse.Namespace) -> int:
    clock = clock_from_args(args)
    limits = limits_from_args(args)
    host, port = split_address(args.listen)
    web_host, web_port = split_address(args.web)
    service = ClearinghouseService(args.data, clock)

    async def start(shutdown: trio.Event, task_status: trio.TaskStatus[dict[str, object]]) -> None:
        server = Server(service, key=service.ch.root_key, clock=clock, limits=limits)
        async with trio.open_nursery() as nursery:
            watch_clock(nursery, clock, shutdown)
            address = await nursery.start(server.serve, host, port)
            app = WebApp(service.ch, clock)
            web = await nursery.start(serve_web, app, web_host, web_port, shutdown.wait)
            task_status.started(
                {
                    "role": "clearinghouse",
                    "address": address,
                    "web": web,
                    "url": f"http://{web}/",
                    "data": str(args.data),
                    "root": str(args.data / ROOT_CERT),
                }
            )
            await shutdown.wait()
            server.shutdown()

    try:
        return run_daemon(start, ready_file=args.ready_file)
    finally:
        service.close()


def _phone(args: argparse.Namespace) -> int:
    clock = clock_from_args(args)
    ch = Clearinghouse(args.data)
    try:
        out = sys.stderr if args.json else sys.stdout
        results = sys.stdout if args.json else None
        refused = phone_session(ch, clock.now, sys.stdin, out, results=results)
    finally:
        ch.close()
    return 1 if refused else 0


def _today(args: argparse.Namespace) -> int:
    """The purchase date: --date, else today on the deployment's clock (the clock options or
    their environment variables; real time without any)."""
    if getattr(args, "date", None):
        return parse_date(args.date)
    return clock_from_args(args).now()


class _EntitlementJson(TypedDict):
    id: int
    program: str
    product: str
    total: int
    used: int
    remaining: int
    reference: str
    created: str


class _XpJson(TypedDict):
    product_key: str
    acquired: str
    channel: str


class _ListedXp(_XpJson):
    redeemed: str


class _ActivationJson(TypedDict):
    license_server_id: str
    name: str
    version: int
    method: str
    state: str
    activated: str
    changed: str
    cert_serial: str
    cert_revoked: bool


_Output = tuple[Mapping[str, object], list[str]]
"""What an action prints: the --json document, and the text lines otherwise."""


def _entitlement_json(e: Entitlement) -> _EntitlementJson:
    return {
        "id": e.id,
        "program": str(e.program),
        "product": str(e.product),
        "total": e.total,
        "used": e.used,
        "remaining": e.remaining,
        "reference": group5(e.reference) if e.program is Program.RETAIL else e.reference,
        "created": format_date(e.created_at),
    }


def _added(e: Entitlement) -> _Output:
    doc = _entitlement_json(e)
    text = f"added {doc['program']} {doc['reference']}: {doc['total']} x {doc['product']}"
    return doc, [text]


def _export(ch: Clearinghouse, args: argparse.Namespace) -> _Output:
    write_certs(args.out, [ch.root_cert])
    root = str(args.out)
    doc = {"root": root, "subject": ch.root_cert.subject.rfc4514_string()}
    return doc, [f"root certificate written to {root}"]


def _add_retail(ch: Clearinghouse, args: argparse.Namespace) -> _Output:
    e = purchases.add_retail(
        ch, product=CalProduct(args.product), count=args.count, now=_today(args), code=args.code
    )
    return _added(e)


def _add_open(ch: Clearinghouse, args: argparse.Namespace) -> _Output:
    e = purchases.add_open(
        ch,
        product=CalProduct(args.product),
        count=args.count,
        now=_today(args),
        license_number=args.license_number,
        authorization_number=args.authorization_number,
    )
    return _added(e)


def _add_agreement(ch: Clearinghouse, args: argparse.Namespace) -> _Output:
    e = purchases.add_agreement(
        ch,
        program=Program(args.program),
        product=CalProduct(args.product),
        count=args.count,
        now=_today(args),
        agreement_number=args.number,
    )
    return _added(e)


def _add_xp(ch: Clearinghouse, args: argparse.Namespace) -> _Output:
    x = purchases.add_xp(
        ch,
        product_key=args.key,
        acquired_at=parse_date(args.acquired),
        channel=args.channel,
        program=Program(args.program) if args.program else None,
        license_number=args.license_number,
        authorization_number=args.authorization_number,
        agreement_number=args.number,
    )
    key, acquired = group5(x.product_key), format_date(x.acquired_at)[:10]
    doc = {
        "product_key": key,
        "acquired": acquired,
        "channel": x.channel,
        "program": x.program,
        "numbers": x.numbers,
    }
    text = f"added Windows XP Professional {key} ({x.channel}, acquired {acquired})"
    return doc, [text]


def _list(ch: Clearinghouse, args: argparse.Namespace) -> _Output:
    xps: list[_ListedXp] = [
        {
            "product_key": group5(x.product_key),
            "acquired": format_date(x.acquired_at)[:10],
            "channel": x.channel,
            "redeemed": format_date(x.redeemed_at) if x.redeemed_at is not None else "",
        }
        for x in ch.db.xp_licenses()
    ]
    ents = [_entitlement_json(e) for e in ch.db.entitlements()]
    lines = [
        f"{e['id']:>4}  {e['program']:<22} {e['reference']:<31} {e['product']:<18}"
        f" {e['used']}/{e['total']} used"
        for e in ents
    ]
    for x in xps:
        status = f"redeemed {x['redeemed']}" if x["redeemed"] else "not redeemed"
        lines.append(
            f"  XP  {x['product_key']}  {x['channel']:<7} acquired {x['acquired']}  {status}"
        )
    return {"entitlements": ents, "xp_licenses": xps, "grants": ch.db.grants()}, lines


def _activations(ch: Clearinghouse, args: argparse.Namespace) -> _Output:
    revoked = {r["serial"] for r in ch.db.revoked()}
    rows: list[_ActivationJson] = [
        {
            "license_server_id": a.license_server_id,
            "name": a.name,
            "version": a.version,
            "method": str(a.method),
            "state": str(a.state),
            "activated": format_date(a.activated_at),
            "changed": format_date(a.changed_at),
            "cert_serial": a.cert_serial,
            "cert_revoked": a.cert_serial in revoked,
        }
        for a in ch.db.activations()
    ]
    lines = [
        f"{a['license_server_id']}  {a['name']:<16} {a['method']:<10} {a['state']}"
        f" since {a['changed']}{' (certificate revoked)' if a['cert_revoked'] else ''}"
        for a in rows
    ]
    doc = {"activations": rows, "revoked_serials": sorted(revoked), "events": ch.db.events()}
    return doc, lines


_ACTIONS: dict[str, Callable[[Clearinghouse, argparse.Namespace], _Output]] = {
    "export-root": _export,
    "add-retail": _add_retail,
    "add-open": _add_open,
    "add-agreement": _add_agreement,
    "add-xp": _add_xp,
    "list": _list,
    "activations": _activations,
}
