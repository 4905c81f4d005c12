"""Paged admin listings (docs/PROTOCOL.md §5.4 "Paged listings", PAGE-1..7) of a license server.

Contract: each case needs `--admin-credential` (else `unsupported`). The suite makes its own
licenses through the real client stack (a terminal server asking for licenses for devices
named after the run, so a shared target's other licenses never get in the way: every
listing here filters on those device names), then reads them back page by page with the
administrator credential. What is judged is only what the wire shows: page sizes, cursors,
order, filters and refusals.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from tslic.protocol import ErrorCode, ServiceError
from tslic.protocol.connection import raw_public
from tslic.protocol.domain import CalProduct, ClientOS, LicenseKind, LicenseStatus, LicensingMode
from tslic.protocol.messages.admin import (
    AdminGetStatus,
    AdminKeyPacks,
    AdminLicenses,
    AdminListKeyPacks,
    AdminListLicenses,
)
from tslic.protocol.messages.licensing import IssueLicense
from tslic.protocol.messages.records import IssuedLicenseInfo
from tslic.runtime.peer import PeerStream

from .lsclient import administrator, call, terminal_server
from .model import Case, Judgement, Role, Verdict, case
from .runner import Context

CASES: list[Case] = []
LS = frozenset({Role.LICENSE_SERVER})
E = ErrorCode
_NEEDS = "needs --admin-credential"


def _machine(ctx: Context, tag: str, width: int = 15) -> str:
    """A device name of this run (padded to `width` characters, at most 64)."""
    return f"CONF-{tag}-{ctx.rng.randrange(10**6):06d}".ljust(width, "X")[:64]


async def _issue(ctx: Context, stream: PeerStream, machine: str, count: int, user: str) -> None:
    for _ in range(count):
        req = IssueLicense(
            hwid=raw_public(ctx.key()), machine=machine, user=user,
            client_os=ClientOS.XP_PRO, mode=LicensingMode.PER_DEVICE,
        )  # fmt: skip
        with contextlib.suppress(ServiceError):  # a refusal makes no license: counted below
            await stream.request(req)


@contextlib.asynccontextmanager
async def _licensing(ctx: Context) -> AsyncIterator[PeerStream]:
    async with terminal_server(ctx, version=2003, name="CONF-PAGING") as (stream, _):
        yield stream


async def _all_pages(
    ctx: Context, admin: PeerStream, request: AdminListLicenses
) -> list[AdminLicenses]:
    """Every page of a license listing, following the cursors (at most 10,000 pages)."""
    pages: list[AdminLicenses] = []
    cursor = request.cursor
    for _ in range(10_000):
        reply = await call(ctx, admin, _with_cursor(request, cursor))
        assert isinstance(reply, AdminLicenses)
        pages.append(reply)
        cursor = reply.next_cursor
        if not cursor:
            break
    return pages


def _with_cursor(request: AdminListLicenses, cursor: bytes) -> AdminListLicenses:
    fields = {name: getattr(request, name) for name in request.__dataclass_fields__}
    return AdminListLicenses(**{**fields, "cursor": cursor})


def _order_problem(licenses: list[IssuedLicenseInfo]) -> str:
    keys = [(x.issued_at, x.license_id) for x in licenses]
    if keys != sorted(keys):
        return "not in (issued_at, license_id) order"
    if len(set(keys)) != len(keys):
        return "an item was listed twice"
    return ""


@case(CASES, "PAGE-1", "listing-of-many-pages", "200 licenses for one device name (64 "
      "characters), listed with limit 0 (as many as fit)", ("several pages, every one a valid "
      "reply, every license once",), roles=LS)  # fmt: skip
async def many_pages(ctx: Context) -> Judgement:
    if ctx.config.admin_credential is None:
        return Judgement(Verdict.UNSUPPORTED, _NEEDS)
    # ~290 bytes a license: 200 are more than one 44 KiB page. Asked for 25 to a
    # conversation, so that each stays well within the suite's per-conversation time limit.
    machine, count = _machine(ctx, "P1", 64), 200
    for _ in range(count // 25):
        async with _licensing(ctx) as stream:
            await _issue(ctx, stream, machine, 25, "conformance")
    async with administrator(ctx) as admin:
        pages = await _all_pages(ctx, admin, AdminListLicenses(machine=machine))
    listed = [x for p in pages for x in p.licenses]
    if len(pages) < 2:
        return Judgement(Verdict.FAIL, f"{len(listed)} licenses in one page")
    if any(not p.licenses for p in pages):
        return Judgement(Verdict.FAIL, "an empty page before the end")
    problem = _order_problem(listed) or ("" if len(listed) == count else f"{len(listed)} listed")
    if problem:
        return Judgement(Verdict.FAIL, problem)
    return Judgement(Verdict.PASS, f"{count} licenses in {len(pages)} pages")


@case(CASES, "PAGE-2", "cursor-ends-listing", "5 licenses listed 2 at a time",
      ("pages of 2, 2 and 1; next_cursor empty only on the last",), roles=LS)  # fmt: skip
async def cursor_ends(ctx: Context) -> Judgement:
    if ctx.config.admin_credential is None:
        return Judgement(Verdict.UNSUPPORTED, _NEEDS)
    machine = _machine(ctx, "P2")
    async with _licensing(ctx) as stream:
        await _issue(ctx, stream, machine, 5, "conformance")
    async with administrator(ctx) as admin:
        pages = await _all_pages(ctx, admin, AdminListLicenses(machine=machine, limit=2))
    sizes = [len(p.licenses) for p in pages]
    ends = [not p.next_cursor for p in pages]
    if sizes != [2, 2, 1] or ends != [False, False, True]:
        return Judgement(Verdict.FAIL, f"page sizes {sizes}, last-page flags {ends}")
    return Judgement(Verdict.PASS, "2 + 2 + 1, the last without a cursor")


@case(CASES, "PAGE-3", "stable-under-inserts", "4 licenses listed 2 at a time; 3 more issued "
      "for the same device after the first page", ("the 4 first licenses exactly once, in order; "
      "the new ones at most once",), roles=LS)  # fmt: skip
async def stable_under_inserts(ctx: Context) -> Judgement:
    if ctx.config.admin_credential is None:
        return Judgement(Verdict.UNSUPPORTED, _NEEDS)
    machine = _machine(ctx, "P3")
    request = AdminListLicenses(machine=machine, limit=2)
    async with _licensing(ctx) as stream, administrator(ctx) as admin:
        await _issue(ctx, stream, machine, 4, "conformance")
        first = await call(ctx, admin, request)
        assert isinstance(first, AdminLicenses)
        await _issue(ctx, stream, machine, 3, "conformance")
        rest = await _all_pages(ctx, admin, _with_cursor(request, first.next_cursor))
    listed = [*first.licenses, *(x for p in rest for x in p.licenses)]
    problem = _order_problem(listed)
    if not problem and len(listed) != 7:
        problem = f"{len(listed)} listed of 7"
    if problem:
        return Judgement(Verdict.FAIL, problem)
    return Judgement(Verdict.PASS, "every license once, in order, the new ones at the end")


@case(CASES, "PAGE-4", "foreign-cursor-refused", "a listing with a cursor the server never made, "
      "then with a real cursor under other filters", ("refusal INVALID_REQUEST (9004) twice, then "
      "the connection still answers",), roles=LS, negative=True)  # fmt: skip
async def foreign_cursor(ctx: Context) -> Judgement:
    if ctx.config.admin_credential is None:
        return Judgement(Verdict.UNSUPPORTED, _NEEDS)
    machine = _machine(ctx, "P4")
    async with _licensing(ctx) as stream:
        await _issue(ctx, stream, machine, 3, "conformance")
    codes: list[str] = []
    async with administrator(ctx) as admin:
        first = await call(ctx, admin, AdminListLicenses(machine=machine, limit=1))
        assert isinstance(first, AdminLicenses)
        for bad in (
            AdminListLicenses(machine=machine, cursor=b"\x93\x01\x02\x03"),
            AdminListLicenses(machine=machine + "Z", cursor=first.next_cursor),
        ):
            try:
                await call(ctx, admin, bad)
                codes.append("accepted")
            except ServiceError as exc:
                codes.append(exc.code.name)
        await call(ctx, admin, AdminGetStatus())
    if codes != ["INVALID_REQUEST", "INVALID_REQUEST"]:
        verdict = Verdict.FAIL if "accepted" in codes else Verdict.WRONG_CODE
        return Judgement(verdict, f"answers: {codes}")
    return Judgement(Verdict.PASS, "both refused INVALID_REQUEST; the connection goes on")


@case(CASES, "PAGE-5", "limit-respected", "7 licenses listed with limit 3",
      ("pages of at most 3",), roles=LS)  # fmt: skip
async def limit_respected(ctx: Context) -> Judgement:
    if ctx.config.admin_credential is None:
        return Judgement(Verdict.UNSUPPORTED, _NEEDS)
    machine = _machine(ctx, "P5")
    async with _licensing(ctx) as stream:
        await _issue(ctx, stream, machine, 7, "conformance")
    async with administrator(ctx) as admin:
        pages = await _all_pages(ctx, admin, AdminListLicenses(machine=machine, limit=3))
    sizes = [len(p.licenses) for p in pages]
    if max(sizes) > 3 or sum(sizes) != 7:
        return Judgement(Verdict.FAIL, f"page sizes {sizes}")
    return Judgement(Verdict.PASS, f"page sizes {sizes}")


@case(CASES, "PAGE-6", "server-side-filters", "licenses for two users of one device; listed by "
      "user (in another case), by kind and by status", ("only the matching licenses, all of "
      "them",), roles=LS)  # fmt: skip
async def filters(ctx: Context) -> Judgement:
    if ctx.config.admin_credential is None:
        return Judgement(Verdict.UNSUPPORTED, _NEEDS)
    machine = _machine(ctx, "P6")
    async with _licensing(ctx) as stream:
        await _issue(ctx, stream, machine, 3, "Ann")
        await _issue(ctx, stream, machine, 2, "bob")
    async with administrator(ctx) as admin:
        everything = await _all_pages(ctx, admin, AdminListLicenses(machine=machine))
        ann = await _all_pages(ctx, admin, AdminListLicenses(machine=machine.lower(), user="ANN"))
        kinds = {x.kind for p in everything for x in p.licenses}
        kind = next(iter(kinds), LicenseKind.TEMPORARY)
        by_kind = await _all_pages(ctx, admin, AdminListLicenses(machine=machine, kind=kind))
        status = LicenseStatus.RETURNED  # none of ours: an empty listing
        none = await _all_pages(ctx, admin, AdminListLicenses(machine=machine, status=status))
    every = [x for p in everything for x in p.licenses]
    got_ann = [x for p in ann for x in p.licenses]
    got_kind = [x for p in by_kind for x in p.licenses]
    got_none = [x for p in none for x in p.licenses]
    want_ann = [x for x in every if x.user.casefold() == "ann"]
    want_kind = [x for x in every if x.kind is kind]
    if len(every) != 5 or got_ann != want_ann or len(got_ann) != 3:
        return Judgement(Verdict.FAIL, f"{len(every)} listed, {len(got_ann)} for user ANN")
    if got_kind != want_kind or got_none:
        return Judgement(
            Verdict.FAIL, f"kind filter {len(got_kind)}, status filter {len(got_none)}"
        )
    return Judgement(Verdict.PASS, "user (any case), device, kind and status filters hold")


@case(CASES, "PAGE-7", "user-cal-packs-count-holders", "the User CAL key packs and the active "
      "permanent User CALs", ("the packs' in_use add up to the User CALs held",),
      roles=LS)  # fmt: skip
async def user_cal_holders(ctx: Context) -> Judgement:
    if ctx.config.admin_credential is None:
        return Judgement(Verdict.UNSUPPORTED, _NEEDS)
    user_cal = CalProduct.W2003_USER_CAL
    async with administrator(ctx) as admin:
        packs = await call(ctx, admin, AdminListKeyPacks(product=user_cal))
        assert isinstance(packs, AdminKeyPacks)
        if not packs.keypacks:
            return Judgement(Verdict.UNSUPPORTED, "needs a target with a User CAL key pack")
        if packs.next_cursor:
            return Judgement(Verdict.UNSUPPORTED, "more User CAL packs than one page")
        held = await _all_pages(ctx, admin, AdminListLicenses(
            product=user_cal, kind=LicenseKind.PERMANENT, status=LicenseStatus.ACTIVE,
        ))  # fmt: skip
    in_use = sum(k.in_use for k in packs.keypacks)
    count = sum(len(p.licenses) for p in held)
    if in_use != count:
        return Judgement(Verdict.FAIL, f"packs say {in_use} in use, {count} User CALs held")
    return Judgement(Verdict.PASS, f"{count} User CALs held, as the packs say")
