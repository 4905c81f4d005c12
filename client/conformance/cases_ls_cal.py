"""Which CAL, temporary licenses, pools and key packs: licensing-rule cases for an activated
license-server target (docs/PROTOCOL.md §7.7-§7.10, §7.18: COMPAT-4..8, CAL-2/3/7/8/9/13,
TEMP-4/5/7/8/9, EVT-9/10/11).

Contract: the suite plays terminal servers of both versions and modes and clients of every
system (ClientOS), and the licensing utility (`--admin-credential`) to read the pools and set
Prevent License Upgrade (restored afterwards). A case judges the licenses the target issues
(kind, product, `event_ids`) and the pool counts it reports. A case whose preparation is
missing (not activated, no pack of the product, no credential) is `unsupported` and says
which; prepared, every case here can fail. Order matters and is kept by the catalogue: the
cases about a server without a User CAL pack run before CAL-7 installs the held-back User CAL
codes (provision.install_deferred), and all of them before the clock cases (cases_ls_time).
"""

from __future__ import annotations

from tslic.protocol import ErrorCode, ServiceError
from tslic.protocol.domain import (
    CalProduct,
    ClientOS,
    LicenseKind,
    LicensingMode,
)
from tslic.protocol.messages.licensing import (
    LicenseGranted,
    LicenseMarked,
    MarkLicense,
    Referral,
)

from .context import Context
from .lsclient import call, grant_permanent, license_request, terminal_server
from .lsprep import (
    NO_PERMANENT_LICENSE,
    Unprepared,
    ask,
    free,
    installed,
    is_2003,
    label,
    list_packs,
    prepared,
    upgrade_policy,
)
from .model import Case, Judgement, Role, Verdict, case
from .provision import install_deferred

CASES: list[Case] = []
E = ErrorCode
LS = frozenset({Role.LICENSE_SERVER})
P = CalProduct


# ---- temporary licenses, post-logon validation (TEMP) --------------------------------------


@case(CASES, "TEMP-4", "first-connection-temporary", "a 2003 terminal server asks a license for "
      "a new device while the target has free 2003 Per Device CALs", ("a temporary license "
      "(post-logon issuance)",), roles=LS)  # fmt: skip
async def first_temporary(ctx: Context) -> Judgement:
    try:
        _, packs = await prepared(ctx)
        if not free(packs, P.W2003_DEVICE_CAL):
            raise Unprepared("needs a free 2003 Per Device CAL (install a pack)")
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    reply = await ask(ctx, 2003, license_request(ctx, client_os=ClientOS.XP_HOME))
    if isinstance(reply, LicenseGranted) and reply.kind is LicenseKind.TEMPORARY:
        return Judgement(Verdict.PASS, label(reply))
    return Judgement(Verdict.FAIL, f"the first connection got {label(reply)}")


@case(CASES, "TEMP-5", "mark-validates", "a temporary license is issued; the terminal server "
      "sends MarkLicense for it after a successful logon", ("LicenseMarked validated=true",),
      roles=LS)  # fmt: skip
async def mark_validates(ctx: Context) -> Judgement:
    req = license_request(ctx, client_os=ClientOS.XP_HOME)
    async with terminal_server(ctx, version=2003 if await is_2003(ctx) else 2000,
                               name="CONF-TSMARK") as (stream, _):  # fmt: skip
        try:
            first = await call(ctx, stream, req)
        except ServiceError as exc:
            return Judgement(Verdict.UNSUPPORTED, f"no license issued: {exc.code.name}")
        if not isinstance(first, LicenseGranted) or first.kind is not LicenseKind.TEMPORARY:
            return Judgement(Verdict.UNSUPPORTED, f"no temporary license: {label(first)}")
        try:
            marked = await call(ctx, stream, MarkLicense(license_id=first.license_id,
                                                         hwid=req.hwid))  # fmt: skip
        except ServiceError as exc:
            return Judgement(Verdict.FAIL, f"MarkLicense refused: {exc.code.name}: {exc.message}")
    if isinstance(marked, LicenseMarked) and marked.validated:
        return Judgement(Verdict.PASS, "LicenseMarked validated=true")
    return Judgement(Verdict.FAIL, f"answered {label(marked)}")


@case(CASES, "TEMP-7", "validated-temporary-upgraded", "a 2003 terminal server gets a "
      "temporary license for a new device, marks it after the logon and presents it again",
      ("a permanent 2003 Per Device CAL, upgraded=true",), roles=LS)  # fmt: skip
async def validated_upgraded(ctx: Context) -> Judgement:
    try:
        _, packs = await prepared(ctx)
        if not free(packs, P.W2003_DEVICE_CAL):
            raise Unprepared("needs a free 2003 Per Device CAL (install a pack)")
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    reply, _, _ = await grant_permanent(ctx, 2003)
    if (
        isinstance(reply, LicenseGranted)
        and reply.kind is LicenseKind.PERMANENT
        and reply.product is P.W2003_DEVICE_CAL
        and reply.upgraded
    ):
        return Judgement(Verdict.PASS, label(reply))
    return Judgement(Verdict.FAIL, f"the validated temporary was answered {label(reply)}"
                     + ("" if not isinstance(reply, LicenseGranted) else
                        f" (upgraded={reply.upgraded})"))  # fmt: skip


@case(CASES, "TEMP-8", "unvalidated-not-upgraded", "a temporary license is issued and presented "
      "again without MarkLicense (the logon failed or never happened)",
      ("the same temporary license, or a refusal; never a permanent CAL",), roles=LS)  # fmt: skip
async def unvalidated(ctx: Context) -> Judgement:
    try:
        _, packs = await prepared(ctx)
        if not free(packs, P.W2003_DEVICE_CAL):
            raise Unprepared("needs a free 2003 Per Device CAL (install a pack)")
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    reply, _, _ = await grant_permanent(ctx, 2003, mark=False)
    if isinstance(reply, LicenseGranted) and reply.kind is LicenseKind.PERMANENT:
        return Judgement(Verdict.FAIL, f"an unvalidated temporary was upgraded: {label(reply)}")
    return Judgement(Verdict.PASS, label(reply))


# ---- Per User (CAL-8, TEMP-9 before CAL-7 installs the User CALs) --------------------------


async def _no_user_pack(ctx: Context) -> None:
    _, packs = await prepared(ctx)
    if installed(packs, P.W2003_USER_CAL):
        raise Unprepared("needs a target without a User CAL pack (give the User CAL code "
                         "to --retail-code: the suite installs it after this case)")  # fmt: skip


@case(CASES, "CAL-8", "no-user-pack-temporary", "a 2003 terminal server in Per User mode asks "
      "a license from an activated target without any User CAL pack", ("a temporary license "
      "with event 21 in event_ids",), roles=LS)  # fmt: skip
async def no_user_pack(ctx: Context) -> Judgement:
    try:
        await _no_user_pack(ctx)
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    req = license_request(ctx, mode=LicensingMode.PER_USER, client_os=ClientOS.XP_PRO)
    reply = await ask(ctx, 2003, req)
    if not isinstance(reply, LicenseGranted) or reply.kind is not LicenseKind.TEMPORARY:
        return Judgement(Verdict.FAIL, f"answered {label(reply)} (expected a temporary)")
    if NO_PERMANENT_LICENSE not in reply.event_ids:
        return Judgement(Verdict.FAIL, f"{label(reply)}: event 21 was not reported")
    return Judgement(Verdict.PASS, label(reply))


@case(CASES, "TEMP-9", "per-user-temporary-not-upgraded", "in Per User mode, without a User "
      "CAL pack, a temporary license is marked after the logon and presented again",
      ("the same temporary license (or a refusal); never a permanent CAL",), roles=LS)  # fmt: skip
async def per_user_not_upgraded(ctx: Context) -> Judgement:
    try:
        await _no_user_pack(ctx)
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    reply, _, _ = await grant_permanent(ctx, 2003, mode=LicensingMode.PER_USER)
    if isinstance(reply, LicenseGranted) and reply.kind is LicenseKind.PERMANENT:
        return Judgement(Verdict.FAIL, f"the Per User temporary was upgraded: {label(reply)}")
    return Judgement(Verdict.PASS, label(reply))


@case(CASES, "CAL-7", "user-cal-uncounted", "the suite installs the User CAL codes it held back; "
      "a 2003 terminal server in Per User mode asks a license for a new device, twice for two "
      "devices", ("a permanent User CAL at once (no temporary, no validation), and the pool's "
      "available count unchanged",), roles=LS)  # fmt: skip
async def user_cal(ctx: Context) -> Judgement:
    try:
        await prepared(ctx)
        if ctx.deferred_codes:
            for line in await install_deferred(ctx):
                ctx.transcript.event(f"prepared: {line}")
        packs = await list_packs(ctx)
        if not installed(packs, P.W2003_USER_CAL):
            raise Unprepared("needs a User CAL pack: give a retail code for w2003-user-cal")
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    except ServiceError as exc:
        return Judgement(Verdict.UNSUPPORTED, f"the User CAL code was refused: {exc.message}")
    before = free(packs, P.W2003_USER_CAL)
    for n in (1, 2):
        req = license_request(ctx, mode=LicensingMode.PER_USER, client_os=ClientOS.WIN98)
        reply = await ask(ctx, 2003, req)
        if not (isinstance(reply, LicenseGranted) and reply.kind is LicenseKind.PERMANENT
                and reply.product is P.W2003_USER_CAL):  # fmt: skip
            return Judgement(Verdict.FAIL, f"request {n} answered {label(reply)}")
    after = free(await list_packs(ctx), P.W2003_USER_CAL)
    if after != before:
        return Judgement(Verdict.FAIL, f"the User CAL pool went from {before} to {after} "
                         "available: User CALs are not counted")  # fmt: skip
    return Judgement(Verdict.PASS, f"two User CALs at once; available stays {after}")


# ---- which CAL for a 2000 terminal server (CAL-2, CAL-3, CAL-13, EVT-9, COMPAT-8) ----------


async def _upgrade_setting(ctx: Context) -> None:
    _, packs = await prepared(ctx)
    if free(packs, P.W2000_TS_CAL):
        raise Unprepared("needs a target without free Windows 2000 TS CALs")
    if not free(packs, P.W2003_DEVICE_CAL):
        raise Unprepared("needs a free 2003 Per Device CAL (install a pack)")


@case(CASES, "CAL-2", "license-upgrade", "with no Windows 2000 TS CAL left and Prevent License "
      "Upgrade off, a 2000 terminal server's Windows XP Home client gets its temporary license, "
      "logs on and presents it again", ("a permanent 2003 Per Device CAL",), roles=LS)  # fmt: skip
async def license_upgrade(ctx: Context) -> Judgement:
    try:
        await _upgrade_setting(ctx)
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    async with upgrade_policy(ctx, False):
        reply, _, _ = await grant_permanent(ctx, 2000, client_os=ClientOS.XP_HOME)
    permanent = isinstance(reply, LicenseGranted) and reply.kind is LicenseKind.PERMANENT
    if permanent and isinstance(reply, LicenseGranted) and reply.product is P.W2003_DEVICE_CAL:
        return Judgement(Verdict.PASS, label(reply))
    return Judgement(Verdict.FAIL, f"answered {label(reply)}, not the 2003 Per Device CAL")


async def _prevented(ctx: Context) -> LicenseGranted | Referral | ServiceError:
    async with upgrade_policy(ctx, True):
        reply, _, _ = await grant_permanent(ctx, 2000, client_os=ClientOS.NT4)
    return reply


@case(CASES, "CAL-3", "prevent-license-upgrade", "with Prevent License Upgrade on (set by the "
      "suite) and no Windows 2000 TS CAL left, a 2000 terminal server's client logs on with its "
      "temporary license and presents it again", ("the temporary license kept, or a refusal; "
      "never a 2003 CAL",), roles=LS)  # fmt: skip
async def prevent_upgrade(ctx: Context) -> Judgement:
    try:
        await _upgrade_setting(ctx)
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    reply = await _prevented(ctx)
    if (
        isinstance(reply, LicenseGranted)
        and reply.product.version > 2000
        and reply.kind is LicenseKind.PERMANENT
    ):
        return Judgement(Verdict.FAIL, f"Prevent License Upgrade ignored: {label(reply)}")
    return Judgement(Verdict.PASS, label(reply))


async def _event_21(ctx: Context) -> Judgement:
    try:
        await _upgrade_setting(ctx)
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    reply = await _prevented(ctx)
    events = reply.event_ids if isinstance(reply, LicenseGranted) else ()
    if isinstance(reply, ServiceError):
        events = tuple(int(e) for e in str(reply.detail.get("event_id", "")).split(",") if e)
    if NO_PERMANENT_LICENSE in events:
        return Judgement(Verdict.PASS, f"{label(reply)}: event 21 reported")
    return Judgement(Verdict.FAIL, f"{label(reply)}: no event 21 although the device qualified "
                     "for a permanent CAL that could not be given")  # fmt: skip


@case(CASES, "CAL-13", "event-21-reported", "a device qualified for a permanent CAL (validated "
      "temporary) that none can be given for (Prevent License Upgrade, no 2000 CAL left)",
      ("event 21 in LicenseGranted.event_ids or the refusal",), roles=LS)  # fmt: skip
async def event_21(ctx: Context) -> Judgement:
    return await _event_21(ctx)


@case(CASES, "EVT-9", "event-21-no-permanent", "as CAL-13: the license server has no permanent "
      "CAL of the type the terminal server needs", ("event 21 reported with the answer",),
      roles=LS)  # fmt: skip
async def evt_21(ctx: Context) -> Judgement:
    return await _event_21(ctx)


@case(CASES, "COMPAT-8", "no-user-cal-for-2000-ts", "a 2000 terminal server's clients (Windows 98, "
      "NT 4, XP Home) log on and present their temporary licenses again, with User CALs "
      "installed", ("no license is a User CAL",), roles=LS)  # fmt: skip
async def no_user_cal_2000(ctx: Context) -> Judgement:
    try:
        _, packs = await prepared(ctx)
        if not installed(packs, P.W2003_USER_CAL):
            raise Unprepared("needs a User CAL pack installed")
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    seen = []
    for client_os in (ClientOS.WIN98, ClientOS.NT4, ClientOS.XP_HOME):
        reply, _, _ = await grant_permanent(ctx, 2000, client_os=client_os)
        if isinstance(reply, LicenseGranted) and reply.product.is_per_user:
            return Judgement(Verdict.FAIL, f"{client_os} client got {label(reply)}")
        seen.append(f"{client_os}: {label(reply)}")
    return Judgement(Verdict.PASS, "; ".join(seen))
