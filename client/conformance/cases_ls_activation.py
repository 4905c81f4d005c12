"""Activation of a license-server target: methods, deactivation, reactivation, two-step
methods and key pack grants (docs/PROTOCOL.md §7.10, §7.14, §7.15: ACT-3, ACT-8, ACT-9,
ACT-11, LEASE-5, CH-8).

Contract: the suite plays the licensing utility (`--admin-credential`) and, with the manifest
of `tslic conformance prepare --role license-server`, the Clearinghouse the target was started
with (chdouble.py; ACT-11 and CH-8 need it, the others also work through a real Clearinghouse
given with `--clearinghouse`). The cases run in order on one activated target: ACT-8
deactivates it (after a permanent CAL was issued) and leaves it so for LEASE-5, which moves the
clock to 5 days before that CAL's expiry; ACT-9 reactivates it; ACT-11 deactivates and
reactivates it again by telephone. A case that finds the target in another state than it
needs is `unsupported` and says so.
"""

from __future__ import annotations

from tslic.protocol import ErrorCode, ServiceError
from tslic.protocol.domain import (
    ActivationMethod,
    ActivationState,
    CalProduct,
    LicenseKind,
    Program,
)
from tslic.protocol.messages.admin import (
    ActivationAction,
    AdminActivate,
    AdminActivationStep,
    AdminCompleteActivation,
    AdminInstallKeyPack,
    AdminSetProperties,
    AdminStatus,
)
from tslic.protocol.messages.licensing import (
    IssueLicense,
    LicenseGranted,
    UpgradeLicenseRequest,
)

from .context import Context
from .lsclient import administrator, call, grant_permanent, move_clock, terminal_server
from .lsprep import Unprepared, free, get_status, label, list_packs, prepared
from .model import Case, Judgement, Role, Verdict, case

CASES: list[Case] = []
LS = frozenset({Role.LICENSE_SERVER})
E = ErrorCode
DAY = 86_400_000
M = ActivationMethod
A = ActivationAction


async def _admin(ctx: Context, request: AdminActivate | AdminCompleteActivation) -> object:
    async with administrator(ctx) as admin:
        return await call(ctx, admin, request)


async def _present(ctx: Context, granted: LicenseGranted, req: IssueLicense) -> (
    LicenseGranted | ServiceError
):  # fmt: skip
    """A 2003 terminal server presents `granted` again for the device of `req`."""
    async with terminal_server(ctx, version=2003, name="CONF-TS2003") as (stream, _):
        try:
            reply = await call(ctx, stream, UpgradeLicenseRequest(
                license=granted.license, hwid=req.hwid, machine=req.machine, user=req.user,
                client_os=req.client_os, mode=req.mode))  # fmt: skip
        except ServiceError as exc:
            return exc
    assert isinstance(reply, LicenseGranted)
    return reply


@case(CASES, "ACT-3", "three-methods", "AdminSetProperties with each connection method: "
      "automatic, web, telephone (the suite restores the target's own)", ("each accepted and "
      "reported in AdminStatus",), roles=LS)  # fmt: skip
async def three_methods(ctx: Context) -> Judgement:
    try:
        status = await get_status(ctx)
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    if int(status.version) != 2003:
        return Judgement(Verdict.UNSUPPORTED, "a rule of 2003 license servers")
    seen = []
    async with administrator(ctx) as admin:
        try:
            for method in (M.AUTOMATIC, M.WEB, M.TELEPHONE, status.method):
                reply = await call(ctx, admin, AdminSetProperties(contact=status.contact,
                                                                  method=method))  # fmt: skip
                assert isinstance(reply, AdminStatus)
                if reply.status.method is not method:
                    return Judgement(Verdict.FAIL, f"{method} set, {reply.status.method} reported")
                seen.append(str(method))
        except ServiceError as exc:
            return Judgement(Verdict.FAIL, f"{method} refused: {exc.code.name}: {exc.message}")
    return Judgement(Verdict.PASS, ", ".join(seen[:3]) + " accepted")


@case(CASES, "CH-8", "bad-grant-refused", "the suite's Clearinghouse answers an installation "
      "with a grant signed by another key than its root", ("refusal INVALID_LICENSE, nothing "
      "installed",), roles=LS, negative=True)  # fmt: skip
async def bad_grant(ctx: Context) -> Judgement:
    ch = ctx.peers.clearinghouse if ctx.peers else None
    try:
        if ch is None:
            raise Unprepared("needs the suite's Clearinghouse (--manifest of `tslic conformance "
                             "prepare --role license-server`)")  # fmt: skip
        _, before = await prepared(ctx)
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    from tslic.protocol.codes import make_retail_code

    code = make_retail_code(ctx.rng.randbytes(16))
    ch.catalogue[code] = (CalProduct.W2003_DEVICE_CAL, 5)
    ch.bad_grant = True
    try:
        async with administrator(ctx) as admin:
            try:
                await call(ctx, admin, AdminInstallKeyPack(
                    program=Program.RETAIL, product=CalProduct.W2003_DEVICE_CAL, count=0,
                    method=M.AUTOMATIC, retail_code=code))  # fmt: skip
                outcome: ServiceError | None = None
            except ServiceError as exc:
                outcome = exc
    finally:
        ch.bad_grant = False
    after = await list_packs(ctx)
    added = free(after, CalProduct.W2003_DEVICE_CAL) - free(before, CalProduct.W2003_DEVICE_CAL)
    if outcome is None or added:
        return Judgement(Verdict.FAIL, f"a grant with a bad signature was installed ({added})")
    if outcome.code is not E.INVALID_LICENSE:
        return Judgement(Verdict.WRONG_CODE, f"refusal {outcome.code.name}: {outcome.message}")
    return Judgement(Verdict.PASS, "refusal INVALID_LICENSE")


@case(CASES, "ACT-8", "deactivated-issues-no-permanent", "a permanent CAL is issued; the suite "
      "deactivates the target (automatic) and asks a permanent CAL for a new device, then "
      "presents the CAL issued before", ("no permanent CAL for the new device; the old CAL "
      "handed back, still valid",), roles=LS)  # fmt: skip
async def deactivated(ctx: Context) -> Judgement:
    try:
        _, packs = await prepared(ctx)
        if not free(packs, CalProduct.W2003_DEVICE_CAL):
            raise Unprepared("needs a free 2003 Per Device CAL")
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    old, req, _ = await grant_permanent(ctx, 2003)
    if not isinstance(old, LicenseGranted) or old.kind is not LicenseKind.PERMANENT:
        return Judgement(Verdict.UNSUPPORTED, f"no permanent CAL before: {label(old)}")
    ctx.shared.update(permanent=old, request=req)
    try:
        reply = await _admin(ctx, AdminActivate(action=A.DEACTIVATE, method=M.AUTOMATIC))
    except ServiceError as exc:
        return Judgement(Verdict.FAIL, f"deactivation refused: {exc.code.name}: {exc.message}")
    state = reply.status.activation if isinstance(reply, AdminStatus) else None
    if state is not ActivationState.DEACTIVATED:
        return Judgement(Verdict.FAIL, f"after deactivation the target says {state}")
    new, _, _ = await grant_permanent(ctx, 2003)
    if isinstance(new, LicenseGranted) and new.kind is LicenseKind.PERMANENT:
        return Judgement(Verdict.FAIL, f"deactivated, it issued {label(new)}")
    kept = await _present(ctx, old, req)
    if isinstance(kept, ServiceError):
        return Judgement(Verdict.FAIL, f"the CAL issued before was refused {kept.code.name}")
    return Judgement(Verdict.PASS, f"new device: {label(new)}; old CAL: {label(kept)}")


@case(CASES, "LEASE-5", "deactivated-refuses-renewal", "while deactivated (ACT-8), the suite "
      "moves the clock to 5 days before the expiry of the CAL issued before and asks to renew "
      "it", ("refusal NOT_ACTIVATED",), roles=LS, negative=True)  # fmt: skip
async def no_renewal(ctx: Context) -> Judgement:
    old = ctx.shared.get("permanent")
    req = ctx.shared.get("request")
    try:
        status = await get_status(ctx)
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    if old is None or req is None or status.activation is not ActivationState.DEACTIVATED:
        return Judgement(Verdict.UNSUPPORTED, "needs ACT-8 to have deactivated the target")
    if ctx.config.clock_file is None:
        return Judgement(Verdict.UNSUPPORTED, "needs --clock-file")
    await move_clock(ctx, max(0, old.expires_at - 5 * DAY - ctx.now()))
    answer = await _present(ctx, old, req)
    if isinstance(answer, ServiceError):
        verdict = Verdict.PASS if answer.code is E.NOT_ACTIVATED else Verdict.WRONG_CODE
        return Judgement(verdict, f"refusal {answer.code.name}")
    return Judgement(Verdict.FAIL, f"a deactivated server answered {label(answer)}")


@case(CASES, "ACT-9", "reactivated-keeps-licenses", "the suite reactivates the target "
      "(automatic, with a reason), presents the CAL issued before and asks a CAL for a new "
      "device", ("reactivated; the old CAL renewed; a permanent CAL for the new device",),
      roles=LS)  # fmt: skip
async def reactivated(ctx: Context) -> Judgement:
    old, req = ctx.shared.get("permanent"), ctx.shared.get("request")
    try:
        status = await get_status(ctx)
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    if old is None or req is None or status.activation is not ActivationState.DEACTIVATED:
        return Judgement(Verdict.UNSUPPORTED, "needs ACT-8 to have deactivated the target")
    try:
        reply = await _admin(ctx, AdminActivate(action=A.REACTIVATE, method=M.AUTOMATIC,
                                                reason="conformance suite"))  # fmt: skip
    except ServiceError as exc:
        return Judgement(Verdict.FAIL, f"reactivation refused: {exc.code.name}: {exc.message}")
    state = reply.status.activation if isinstance(reply, AdminStatus) else None
    if state is not ActivationState.REACTIVATED:
        return Judgement(Verdict.FAIL, f"after reactivation the target says {state}")
    kept = await _present(ctx, old, req)
    new, _, _ = await grant_permanent(ctx, 2003)
    if isinstance(kept, ServiceError):
        return Judgement(Verdict.FAIL, f"the CAL issued before: refusal {kept.code.name}")
    if not (isinstance(new, LicenseGranted) and new.kind is LicenseKind.PERMANENT):
        return Judgement(Verdict.FAIL, f"reactivated, a new device got {label(new)}")
    return Judgement(Verdict.PASS, f"old CAL: {label(kept)}; new device: {label(new)}")


@case(CASES, "ACT-11", "telephone-two-steps", "the suite deactivates the target, then "
      "reactivates it by telephone: AdminActivate, the operator's code (the suite plays the "
      "Clearinghouse), AdminCompleteActivation", ("AdminActivationStep with a request code; "
      "then reactivated through ChClaimActivation",), roles=LS)  # fmt: skip
async def two_steps(ctx: Context) -> Judgement:
    ch = ctx.peers.clearinghouse if ctx.peers else None
    try:
        if ch is None:
            raise Unprepared("needs the suite's Clearinghouse (--manifest)")
        status = await get_status(ctx)
        if not status.activation.may_issue_permanent:
            raise Unprepared(f"needs an activated target (it is {status.activation})")
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    await _admin(ctx, AdminActivate(action=A.DEACTIVATE, method=M.AUTOMATIC))
    step = await _admin(ctx, AdminActivate(action=A.REACTIVATE, method=M.TELEPHONE,
                                           reason="conformance suite"))  # fmt: skip
    if not isinstance(step, AdminActivationStep) or not step.request_code:
        return Judgement(Verdict.FAIL, f"AdminActivate by telephone answered {step!r:.120}")
    claims = ch.requests["ChClaimActivation"]
    code = ch.web_activation(status.license_server_id)
    done = await _admin(ctx, AdminCompleteActivation(action=A.REACTIVATE, code=code))
    state = done.status.activation if isinstance(done, AdminStatus) else None
    claimed = ch.requests["ChClaimActivation"] - claims
    if state is not ActivationState.REACTIVATED or not claimed:
        return Judgement(Verdict.FAIL, f"after the operator's code: {state}, "
                         f"{claimed} ChClaimActivation")  # fmt: skip
    return Judgement(Verdict.PASS, f"request code {step.request_code}; reactivated by claim")
