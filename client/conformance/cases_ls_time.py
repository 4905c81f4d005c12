"""License-server cases under the target's virtual clock (--clock-file): an expired temporary
license (TEMP-2) and the renewal of a permanent lease (LEASE-4).

Contract: each case first obtains the license it needs as a well-behaved terminal server,
then moves the target's clock forward with `lsclient.move_clock` (forward only: run these on a
throwaway target) and judges the answer. Without --clock-file, or when the target issues no
license of the needed kind, the case is `unsupported` and says why.
"""

from __future__ import annotations

from tslic.protocol import ErrorCode, ServiceError
from tslic.protocol.domain import LicenseKind
from tslic.protocol.messages.licensing import IssueLicense, LicenseGranted, UpgradeLicenseRequest
from tslic.protocol.policy import LEASE_MAX_DAYS, LEASE_MIN_DAYS, TEMPORARY_DAYS

from .cases_license_server import DAY, LS, _grant, _is_2003, _label
from .lsclient import call, move_clock, terminal_server
from .model import Case, Judgement, Verdict, case
from .runner import Context

CASES: list[Case] = []
E = ErrorCode


@case(CASES, "TEMP-2", "expired-temporary-not-reissued", "a device's temporary license is "
      "issued; the suite moves the target's clock 91 days ahead and the terminal server asks "
      "again for that device, saying it presented an expired temporary license",
      ("a permanent CAL", "refusal NO_LICENSE_AVAILABLE (3002)"), roles=LS)  # fmt: skip
async def expired_temporary(ctx: Context) -> Judgement:
    if ctx.config.clock_file is None:
        return Judgement(Verdict.UNSUPPORTED, "needs --clock-file (docs/CONFORMANCE.md)")
    reply, req = await _grant(ctx, 2000)
    if not isinstance(reply, LicenseGranted) or reply.kind is not LicenseKind.TEMPORARY:
        return Judgement(Verdict.UNSUPPORTED, f"no temporary license issued: {_label(reply)}")
    await move_clock(ctx, (TEMPORARY_DAYS + 1) * DAY)
    again = IssueLicense(hwid=req.hwid, machine=req.machine, user=req.user,
                         client_os=req.client_os, mode=req.mode, had_temporary=True)  # fmt: skip
    answer, _ = await _grant(ctx, 2000, again)
    if isinstance(answer, ServiceError):
        verdict = Verdict.PASS if answer.code is E.NO_LICENSE_AVAILABLE else Verdict.WRONG_CODE
        return Judgement(verdict, f"refusal {answer.code.name}")
    if isinstance(answer, LicenseGranted) and answer.kind is LicenseKind.TEMPORARY:
        return Judgement(Verdict.FAIL, "a second temporary license for the same device")
    return Judgement(Verdict.PASS, _label(answer))


@case(CASES, "LEASE-4", "renewal-within-7-days", "a permanent CAL is issued; the suite moves the "
      "target's clock to 5 days before its expiry and asks to renew it",
      ("the same license renewed for 52 to 89 days from the renewal",), roles=LS)  # fmt: skip
async def renewal(ctx: Context) -> Judgement:
    if ctx.config.clock_file is None:
        return Judgement(Verdict.UNSUPPORTED, "needs --clock-file (docs/CONFORMANCE.md)")
    version = 2003 if await _is_2003(ctx) else 2000
    reply, req = await _grant(ctx, version)
    if not isinstance(reply, LicenseGranted) or reply.kind is not LicenseKind.PERMANENT:
        return Judgement(Verdict.UNSUPPORTED, "no permanent CAL issued (activate the target "
                         f"and install a key pack first): {_label(reply)}")  # fmt: skip
    now = await move_clock(ctx, max(0, reply.expires_at - 5 * DAY - ctx.now()))
    async with terminal_server(ctx, version=version, name=f"CONF-TS{version}") as (stream, _):
        try:
            renewed = await call(ctx, stream, UpgradeLicenseRequest(
                license=reply.license, hwid=req.hwid, machine=req.machine, user=req.user,
                client_os=req.client_os, mode=req.mode))  # fmt: skip
        except ServiceError as exc:
            return Judgement(Verdict.FAIL, f"renewal refused: {exc.code.name}")
    if not isinstance(renewed, LicenseGranted):
        return Judgement(Verdict.FAIL, f"answered {_label(renewed)}")
    days = (renewed.expires_at - now) / DAY
    if (
        renewed.kind is LicenseKind.PERMANENT
        and LEASE_MIN_DAYS - 0.01 <= days <= LEASE_MAX_DAYS + 1
    ):
        return Judgement(Verdict.PASS, f"renewed for {days:.2f} days")
    return Judgement(Verdict.FAIL, f"{_label(renewed)} for {days:.2f} days")
