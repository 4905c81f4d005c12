"""License-server cases under the target's virtual clock (--clock-file): an expired temporary
license (TEMP-2), the renewal of a permanent lease (LEASE-4) and a Hello presenting a
terminal-server certificate the target issued that has since expired (SEC-12, §10.1).

Contract: each case first obtains the license it needs as a well-behaved terminal server,
then moves the target's clock forward with `lsclient.move_clock` (forward only: run these on a
throwaway target) and judges the answer. Without --clock-file, or when the target issues no
license of the needed kind, the case is `unsupported` and says why.
"""

from __future__ import annotations

import trio
from tslic.protocol import ConnectionLost, Conversation, ErrorCode, ProtocolError, ServiceError
from tslic.protocol.certs import cert_from_der, identity_of
from tslic.protocol.clock import from_datetime
from tslic.protocol.connection import raw_public
from tslic.protocol.domain import ClientOS, LicenseKind, PeerRole, WindowsVersion
from tslic.protocol.messages.licensing import (
    IssueLicense,
    LicenseGranted,
    RequestTermServCert,
    TermServCert,
    UpgradeLicenseRequest,
)
from tslic.protocol.policy import LEASE_MAX_DAYS, LEASE_MIN_DAYS, TEMPORARY_DAYS
from tslic.runtime.peer import open_peer

from .cases_license_server import DAY, LS, _grant, _is_2003, _label
from .context import Context
from .lsclient import (
    as_datetime,
    call,
    grant_permanent,
    license_request,
    move_clock,
    terminal_server,
)
from .model import Case, Judgement, Verdict, case

CASES: list[Case] = []
E = ErrorCode


@case(CASES, "TEMP-2", "expired-temporary-not-reissued", "a device's temporary license is "
      "issued; the suite moves the target's clock 91 days ahead and the terminal server asks "
      "again for that device, saying it presented an expired temporary license",
      ("a permanent CAL", "refusal NO_LICENSE_AVAILABLE (3002)"), roles=LS)  # fmt: skip
async def expired_temporary(ctx: Context) -> Judgement:
    if ctx.config.clock_file is None:
        return Judgement(Verdict.UNSUPPORTED, "needs --clock-file (docs/CONFORMANCE.md)")
    # a Windows XP Home client: no built-in license from an activated server (CAL-4)
    reply, req = await _grant(ctx, 2000, license_request(ctx, client_os=ClientOS.XP_HOME))
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
    reply, req, _ = await grant_permanent(ctx, version)
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


# Last of the clock cases: it moves the target's clock years ahead (past a certificate's
# not-after), after which no other licensing case could obtain anything meaningful.
@case(CASES, "SEC-12", "expired-ts-certificate", "the target issues a terminal-server "
      "certificate (RequestTermServCert); the suite moves the target's clock past its not-after "
      "and presents that chain in a Hello signed by the certified key",
      ("refusal CERTIFICATE_EXPIRED (2002): an otherwise trustworthy chain outside its "
       "validity at now (§10.1)",), roles=LS, negative=True)  # fmt: skip
async def expired_certificate(ctx: Context) -> Judgement:
    if ctx.config.clock_file is None:
        return Judgement(Verdict.UNSUPPORTED, "needs --clock-file (docs/CONFORMANCE.md): the "
                         "certificate must expire on the target's own clock")  # fmt: skip
    version = 2003 if await _is_2003(ctx) else 2000
    name = f"CONF-EXP{ctx.rng.randrange(10**6):06d}"
    async with terminal_server(ctx, version=version, name=name, certified=False) as (s, key):
        try:
            reply = await call(ctx, s, RequestTermServCert(
                name=name, domain="CONFORMANCE", site="Default-First-Site-Name",
                version=WindowsVersion(version), public_key=raw_public(key)))  # fmt: skip
        except ServiceError as exc:
            return Judgement(Verdict.UNSUPPORTED, f"no certificate issued: {exc.code.name}")
    if not isinstance(reply, TermServCert) or not reply.cert_chain:
        return Judgement(Verdict.FAIL, f"RequestTermServCert answered {_label(reply)}")
    try:
        not_after = from_datetime(identity_of(cert_from_der(reply.cert_chain[-1])).not_after)
    except ProtocolError as exc:
        return Judgement(Verdict.FAIL, f"the issued certificate does not parse: {exc.message}")
    now = await move_clock(ctx, max(0, not_after + DAY - ctx.now()))
    ctx.transcript.event(f"certificate expired {(now - not_after) / DAY:.1f} days ago")
    try:
        with trio.fail_after(ctx.timeout * 3):
            async with open_peer(ctx.config.target, conversation=Conversation.LICENSING,
                                 key=key, clock=ctx.clock, role=PeerRole.TERMINAL_SERVER,
                                 name=name, version=version,
                                 cert_chain=reply.cert_chain) as stream:  # fmt: skip
                welcome = stream.welcome
    except ServiceError as exc:
        ctx.transcript.event(f"<- refusal {exc.code.name}: {exc.message}")
        verdict = Verdict.PASS if exc.code is E.CERTIFICATE_EXPIRED else Verdict.WRONG_CODE
        return Judgement(verdict, f"refusal {exc.code.name}: {exc.message}")
    except ConnectionLost as exc:
        return Judgement(Verdict.NON_STRICT, f"closed without an Error: {exc.message}")
    return Judgement(Verdict.FAIL, f"a Hello with a chain that expired on "
                     f"{as_datetime(not_after):%Y-%m-%d} was welcomed (license server "
                     f"{welcome.version})")  # fmt: skip
