"""`tslic admin`: the Terminal Server Licensing utility, against one license server.

Contract: `add_arguments(parser)` / `run(args) -> int` as every subcommand. Every action opens
one signed admin conversation with --server using the administrator credential (--credential,
the `admin.key` the license server created), sends its requests and prints a table, or JSON
with --json. Actions:
  status | properties [--first-name --last-name --company --country --email --method]
  activate | deactivate | reactivate --method automatic|web|telephone [--reason] [--code]
      web/telephone: prints the Product ID and request code, then reads the code the
      Clearinghouse gave from --code or, if absent, from standard input (as the wizard asks)
  install --program retail|open-license|select|enterprise-agreement|campus-agreement|
          school-agreement|keypack-code|transition --product P [--count N] and the numbers
  keypacks [--product] | licenses [filters] | report [filters] [--per-user]
      filters: --since --until --product --kind --status --machine --user (the server
      applies them); listings are paged (--page-size) and printed as the pages arrive, and
      --json writes one JSON document incrementally (client/admin/listing.py)
  policy [--security-group on|off] [--add NAME]... [--remove NAME]... [--prevent-upgrade on|off]
Exit status: 0 done; 2 refused or failed (one line on stderr); 3 `install` found the key pack
already installed (a retry, or the same code again): nothing changed, the JSON reply says
"already_installed": true.
A license server on a virtual clock needs the same clock: --clock-file or TSLIC_CLOCK_FILE
(runtime.args); `status` also prints the server's virtual date (from its Welcome).
Errors reach the user as one line with their wire code, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import TypedDict

import trio
from rich.console import Console
from tslic.protocol import Conversation, names
from tslic.protocol.clock import format_date, parse_date
from tslic.protocol.domain import (
    ActivationMethod,
    CalProduct,
    LicenseKind,
    LicenseStatus,
    PeerRole,
    Program,
)
from tslic.protocol.errors import ErrorCode, ServiceError
from tslic.protocol.messages import Message
from tslic.protocol.messages.admin import (
    CODE_MAX,
    ActivationAction,
    AdminActivate,
    AdminActivationStep,
    AdminCompleteActivation,
    AdminGetStatus,
    AdminInstallKeyPack,
    AdminKeyPackInstalled,
    AdminListKeyPacks,
    AdminListLicenses,
    AdminSetPolicy,
    AdminSetProperties,
    AdminStatus,
)
from tslic.protocol.messages.records import CONTACT_MAX, EMAIL_MAX, ContactInfo
from tslic.protocol.paging import MAX_PAGE_ITEMS
from tslic.runtime.args import add_clock_arguments, clock_from_args
from tslic.runtime.clock import Clock
from tslic.runtime.console import make_console
from tslic.runtime.files import load_key
from tslic.runtime.peer import PeerStream, open_peer

from . import listing
from .render import PENDING_NOTE, show, to_json

PROGRAMS = [p.value for p in Program] + ["keypack-code", "transition"]
PRODUCTS = [p.value for p in CalProduct if p is not CalProduct.W2000_BUILT_IN]
METHODS = [m.value for m in ActivationMethod]
TIMEOUT = 60.0
ALREADY_INSTALLED = 3  # exit status: the key pack was installed before; nothing changed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", required=True, help="license server HOST:PORT")
    parser.add_argument(
        "--credential", type=Path, required=True, help="administrator credential (admin.key)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    add_clock_arguments(parser, daemon=False)
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    sub.add_parser("status", help="status and activation state")
    p = sub.add_parser("properties", help="show or set Required Information and method")
    for name in ("first-name", "last-name", "company", "country", "email"):
        p.add_argument(f"--{name}")
    p.add_argument("--method", choices=METHODS)
    for action in ActivationAction:
        p = sub.add_parser(action.value, help=f"{action} the license server")
        p.add_argument(
            "--method", choices=METHODS, help="default: the Installation Method in properties"
        )
        p.add_argument("--reason", default="", help="reactivation reason (required there)")
        p.add_argument("--code", default="", help="code from the Clearinghouse (web/telephone)")
    p = sub.add_parser("install", help="install licenses (a key pack)")
    p.add_argument("--program", required=True, choices=PROGRAMS)
    p.add_argument("--product", required=True, choices=PRODUCTS)
    p.add_argument("--count", type=int, default=0, help="licenses (0: all the purchase has)")
    p.add_argument("--code", default="", help="retail license code (25 characters)")
    p.add_argument("--license-number", default="", help="Open License number (8 digits)")
    p.add_argument("--authorization-number", default="", help="Open License authorization")
    p.add_argument("--agreement-number", default="", help="agreement/enrollment (7 digits)")
    p.add_argument("--keypack-code", default="", help="license key pack code (web/telephone)")
    p.add_argument("--token", default="", help="transition license token (from the e-mail)")
    p = sub.add_parser("keypacks", help="installed key packs")
    p.add_argument("--product", choices=PRODUCTS)
    _page_size_argument(p)
    for name, help_text in (("licenses", "issued licenses"), ("report", "LSREPORT-like report")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--since", help="issued from this date (e.g. 2003-06-01)")
        p.add_argument("--until", help="issued up to this date")
        p.add_argument("--product", choices=[c.value for c in CalProduct])
        p.add_argument("--kind", choices=[k.value for k in LicenseKind])
        p.add_argument("--status", choices=[s.name.lower() for s in LicenseStatus])
        p.add_argument("--machine", default="", help="one device (computer name, any case)")
        p.add_argument("--user", default="", help="one user (any case)")
        _page_size_argument(p)
        if name == "report":
            p.add_argument("--per-user", action="store_true", help="the per-user report")
    p = sub.add_parser("policy", help="security group and Prevent License Upgrade")
    p.add_argument("--security-group", choices=["on", "off"])
    p.add_argument("--add", action="append", default=[], metavar="COMPUTER")
    p.add_argument("--remove", action="append", default=[], metavar="COMPUTER")
    p.add_argument("--prevent-upgrade", choices=["on", "off"])


def _page_size_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--page-size",
        type=int,
        default=0,
        metavar="N",
        help=f"items per request, 1..{MAX_PAGE_ITEMS} (default: as many as fit one frame)",
    )


def _listing(args: argparse.Namespace) -> AdminListKeyPacks | AdminListLicenses:
    if not 0 <= args.page_size <= MAX_PAGE_ITEMS:
        raise ServiceError(
            f"--page-size {args.page_size}: choose 1 to {MAX_PAGE_ITEMS}",
            code=ErrorCode.INVALID_FIELD,
        )
    if args.action == "keypacks":
        product = CalProduct(args.product) if args.product else None
        return AdminListKeyPacks(product=product, limit=args.page_size)
    return AdminListLicenses(
        since=parse_date(args.since) if args.since else 0,
        until=parse_date(args.until) if args.until else 0,
        product=CalProduct(args.product) if args.product else None,
        kind=LicenseKind(args.kind) if args.kind else None,
        status=LicenseStatus[args.status.upper()] if args.status else None,
        machine=args.machine,
        user=args.user,
        limit=args.page_size,
    )


def _switch(value: str | None) -> bool | None:
    return None if value is None else value == "on"


def _requests(args: argparse.Namespace) -> list[Message]:
    action = args.action
    if action == "status":
        return [AdminGetStatus()]
    if action == "policy":
        return [
            AdminSetPolicy(
                security_group_enabled=_switch(args.security_group),
                prevent_upgrade=_switch(args.prevent_upgrade),
                add_members=tuple(args.add),
                remove_members=tuple(args.remove),
            )
        ]
    if action == "install":
        return [_install(args)]
    return []  # properties and activation need the server's answers first (see _converse)


class _CodeFields(TypedDict, total=False):
    """The numbers an AdminInstallKeyPack carries for each way of buying."""

    keypack_code: str
    transition_token: str
    retail_code: str
    license_number: str
    authorization_number: str
    agreement_number: str


def _install(args: argparse.Namespace) -> AdminInstallKeyPack:
    program = args.program
    fields: _CodeFields = {}
    if program == "keypack-code":
        if not args.keypack_code:
            raise ServiceError("--keypack-code is required", code=ErrorCode.INVALID_FIELD)
        program, fields = Program.RETAIL.value, {"keypack_code": args.keypack_code}
    elif program == "transition":
        if not args.token:
            raise ServiceError("--token is required", code=ErrorCode.INVALID_FIELD)
        program, fields = Program.RETAIL.value, {"transition_token": args.token}
    elif program == Program.RETAIL.value:
        fields = {"retail_code": args.code}
    elif program == Program.OPEN_LICENSE.value:
        fields = {
            "license_number": args.license_number,
            "authorization_number": args.authorization_number,
        }
    else:
        fields = {"agreement_number": args.agreement_number}
    return AdminInstallKeyPack(
        program=Program(program), product=CalProduct(args.product), count=args.count, **fields
    )


async def _properties(stream: PeerStream, args: argparse.Namespace) -> Message:
    current = await stream.request(AdminGetStatus())
    assert isinstance(current, AdminStatus)
    names = ("first_name", "last_name", "company", "country", "email")
    changes = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
    if not changes and args.method is None:
        return current
    old = current.status.contact
    contact = ContactInfo(**{n: changes.get(n, getattr(old, n)) for n in names})
    method = ActivationMethod(args.method) if args.method else current.status.method
    return await stream.request(AdminSetProperties(contact=contact, method=method))


async def _activation(stream: PeerStream, args: argparse.Namespace, out: Console) -> Message:
    action = ActivationAction(args.action)
    if args.method:
        method = ActivationMethod(args.method)
    else:  # as the wizard does: the method chosen on the Installation Method tab
        current = await stream.request(AdminGetStatus())
        assert isinstance(current, AdminStatus)
        method = current.status.method
    reply = await stream.request(AdminActivate(action=action, method=method, reason=args.reason))
    if not isinstance(reply, AdminActivationStep):
        return reply
    if args.json:
        print(json.dumps(to_json(reply), sort_keys=True))
    else:
        show(out, reply)
    sys.stdout.flush()  # the operator needs the codes before the prompt waits for input
    code = args.code
    if not code:
        what = "confirmation code" if action is ActivationAction.DEACTIVATE else "License Server ID"
        prompt = f"Type the {what} the Clearinghouse gave you: "
        print(prompt, end="", file=sys.stderr, flush=True)
        code = (await trio.to_thread.run_sync(sys.stdin.readline)).strip()
    return await stream.request(AdminCompleteActivation(action=action, code=code))


async def _converse(
    args: argparse.Namespace, clock: Clock, out: Console
) -> tuple[list[Message], int]:
    """The replies, and the server's virtual time from its Welcome."""
    key = load_key(args.credential)
    # A listing's timeout is per page (each request), not for the whole listing.
    limit = (
        3600 if args.action in _INTERACTIVE else (math.inf if args.action in _LISTINGS else TIMEOUT)
    )
    with trio.fail_after(limit):
        async with open_peer(
            args.server,
            conversation=Conversation.ADMIN,
            key=key,
            clock=clock,
            role=PeerRole.ADMINISTRATOR,
            name="TSLIC-ADMIN",
        ) as stream:
            when = stream.welcome.server_time
            if args.action == "properties":
                return [await _properties(stream, args)], when
            if args.action in _INTERACTIVE:
                return [await _activation(stream, args, out)], when
            if args.action in _LISTINGS:
                await _list(stream, args, when)
                return [], when
            return [await stream.request(r) for r in _requests(args)], when


_INTERACTIVE = {a.value for a in ActivationAction}
_LISTINGS = {"keypacks", "licenses", "report"}


async def _list(stream: PeerStream, args: argparse.Namespace, now: int) -> None:
    """A paged listing, printed as it arrives (client/admin/listing.py); `now` is the
    server's virtual time (its Welcome), against which key pack expiry is judged."""
    request = _listing(args)
    writer = listing.Writer(args.json)
    if isinstance(request, AdminListKeyPacks):
        await listing.list_keypacks(writer, stream, request)
    elif getattr(args, "per_user", False):
        await listing.per_user_report(writer, stream, request, now)
    else:
        await listing.list_licenses(writer, stream, request)


def _changes_members(args: argparse.Namespace) -> bool:
    """`policy --add/--remove`: the reply must say when the change takes effect (SEC-14)."""
    return args.action == "policy" and bool(
        getattr(args, "add", None) or getattr(args, "remove", None)
    )


def check_inputs(args: argparse.Namespace) -> None:
    """Refuse a bad option before anything is sent, naming the option and the rule once
    (protocol/names.py; the messages check the same rules again)."""
    for option in ("add", "remove"):
        for name in getattr(args, option, None) or ():
            names.check(names.Kind.MEMBER, name, f"--{option}")
    limits = {
        "first_name": CONTACT_MAX, "last_name": CONTACT_MAX, "company": CONTACT_MAX,
        "country": CONTACT_MAX, "email": EMAIL_MAX, "reason": names.TEXT_MAX,
        "code": CODE_MAX, "license_number": CODE_MAX, "authorization_number": CODE_MAX,
        "agreement_number": CODE_MAX, "keypack_code": CODE_MAX, "token": CODE_MAX,
    }  # fmt: skip
    for field, limit in limits.items():
        value = getattr(args, field, None)
        if value is not None:
            names.check_text(value, "--" + field.replace("_", "-"), limit)


def run(args: argparse.Namespace) -> int:
    check_inputs(args)
    out = make_console()
    clock = clock_from_args(args)
    try:
        replies, server_time = trio.run(_converse, args, clock, out)
    except trio.TooSlowError:
        raise ServiceError(
            f"the license server at {args.server} did not answer in time",
            code=ErrorCode.IDLE_TIMEOUT,
        ) from None
    status = 0
    for reply in replies:
        doc = to_json(reply)
        if isinstance(reply, AdminStatus):
            # The server's own virtual date, so a user can see which day the deployment is on.
            doc["server_time"] = format_date(server_time)
            if _changes_members(args):
                doc["note"] = PENDING_NOTE
        if args.json:
            print(json.dumps(doc, sort_keys=True))
        else:
            show(out, reply)
            if isinstance(reply, AdminStatus):
                out.print(f"Virtual date on the server: {format_date(server_time)}")
                if _changes_members(args):
                    out.print(PENDING_NOTE)
        if isinstance(reply, AdminKeyPackInstalled) and reply.already_installed:
            status = ALREADY_INSTALLED
    return status
