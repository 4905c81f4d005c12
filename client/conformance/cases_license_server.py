"""Licensing-rule cases for a license-server target (docs/PROTOCOL.md §7: COMPAT, CAL, TEMP,
LEASE, SEC, ACT).

Contract: each case plays a well-behaved terminal server (or administrator) through the real
client stack and judges the licensing answer. Cases that need preparation say so with the
verdict `unsupported` and the option to give: `--admin-credential` (security group, admin
access), `--clock-file` (expiry under the virtual clock). A license is judged by its signed
content (protocol/licenses.open_license), not only by the LicenseGranted fields.
"""

from __future__ import annotations

from tslic.protocol import ErrorCode, ServiceError
from tslic.protocol.connection import raw_public
from tslic.protocol.domain import ClientOS, LicenseKind, LicensingMode, WindowsVersion
from tslic.protocol.messages.admin import AdminGetStatus, AdminSetPolicy, AdminStatus
from tslic.protocol.messages.licensing import (
    IssueLicense,
    LicenseGranted,
    Referral,
    RequestTermServCert,
    ReturnLicense,
)
from tslic.protocol.policy import LEASE_MAX_DAYS, LEASE_MIN_DAYS, TEMPORARY_DAYS
from tslic.runtime.peer import open_peer

from .context import Context
from .lsclient import (
    administrator,
    call,
    grant_permanent,
    license_problems,
    license_request,
    terminal_server,
)
from .model import Case, Judgement, Role, Verdict, case

CASES: list[Case] = []
E = ErrorCode
LS = frozenset({Role.LICENSE_SERVER})
DAY = 86_400_000


async def _grant(ctx: Context, version: int, request: IssueLicense | None = None) -> tuple[
    LicenseGranted | Referral | ServiceError, IssueLicense
]:  # fmt: skip
    """Certify a terminal server of `version` and ask for one license."""
    req = request or license_request(ctx)
    async with terminal_server(ctx, version=version, name=f"CONF-TS{version}") as (stream, _):
        try:
            reply = await call(ctx, stream, req)
        except ServiceError as exc:
            return exc, req
    assert isinstance(reply, LicenseGranted | Referral)
    return reply, req


@case(CASES, "COMPAT-2", "2000-ls-refuses-2003-ts", "a Windows Server 2003 terminal server says "
      "Hello", ("a 2003 license server: Welcome", "a 2000 license server: refusal LOWER_VERSION "
      "(3001)"), roles=LS)  # fmt: skip
async def lower_version(ctx: Context) -> Judgement:
    try:
        async with terminal_server(ctx, version=2003, name="CONF-TS2003", certified=False) as (
            stream, _,
        ):  # fmt: skip
            version = stream.welcome.version
    except ServiceError as exc:
        if exc.code is E.LOWER_VERSION:
            return Judgement(Verdict.PASS, f"refused: LOWER_VERSION ({exc.message})")
        return Judgement(Verdict.WRONG_CODE, f"refused with {exc.code.name}: {exc.message}")
    if version == 2000:
        return Judgement(Verdict.FAIL, "a Windows 2000 license server welcomed a 2003 TS")
    return Judgement(Verdict.PASS, f"Welcome from a {version} license server")


@case(CASES, "COMPAT-1", "no-2000-license-for-2003-ts", "a 2003 terminal server asks for a "
      "Per Device license for a new device", ("a license whose product and issuer are Windows "
      "Server 2003", "a refusal or referral", "LOWER_VERSION from a 2000 license server"),
      roles=LS)  # fmt: skip
async def no_2000_license(ctx: Context) -> Judgement:
    try:
        reply, req = await _grant(ctx, 2003)
    except ServiceError as exc:
        if exc.code is E.LOWER_VERSION:
            return Judgement(Verdict.PASS, "the 2000 license server refused the 2003 TS")
        if exc.code is E.NOT_IN_SECURITY_GROUP:
            return Judgement(Verdict.UNSUPPORTED, "the security group refuses the suite's TS")
        return Judgement(Verdict.FAIL, f"certificate request refused: {exc}")
    if isinstance(reply, ServiceError):
        return Judgement(Verdict.PASS, f"no license: refusal {reply.code.name}")
    if isinstance(reply, Referral):
        return Judgement(Verdict.PASS, f"referral to {len(reply.servers)} server(s)")
    problems = license_problems(reply, 2003, req.hwid)
    actual = f"{reply.kind} {reply.product}"
    if problems:
        return Judgement(Verdict.FAIL, f"{actual}: {'; '.join(problems)}")
    return Judgement(Verdict.PASS, actual)


@case(CASES, "CAL-1", "2000-ts-gets-valid-license", "a Windows 2000 terminal server asks for a "
      "Per Device license for a new device", ("a correctly signed license bound to the device",
      "a refusal or referral"), roles=LS)  # fmt: skip
async def w2000_license(ctx: Context) -> Judgement:
    reply, req = await _grant(ctx, 2000)
    if isinstance(reply, ServiceError):
        return Judgement(Verdict.PASS, f"no license: refusal {reply.code.name}")
    if isinstance(reply, Referral):
        return Judgement(Verdict.PASS, "referral")
    problems = license_problems(reply, 2000, req.hwid)
    actual = f"{reply.kind} {reply.product}"
    return Judgement(Verdict.FAIL if problems else Verdict.PASS,
                     f"{actual}{': ' + '; '.join(problems) if problems else ''}")  # fmt: skip


@case(CASES, "COMPAT-7", "per-user-needs-2003", "a Windows 2000 terminal server asks for a "
      "Per User license", ("refusal MODE_NOT_SUPPORTED (3009)",), roles=LS,
      negative=True)  # fmt: skip
async def per_user_2000(ctx: Context) -> Judgement:
    reply, _ = await _grant(ctx, 2000, license_request(ctx, mode=LicensingMode.PER_USER))
    if isinstance(reply, ServiceError):
        verdict = Verdict.PASS if reply.code is E.MODE_NOT_SUPPORTED else Verdict.WRONG_CODE
        return Judgement(verdict, f"refusal {reply.code.name}: {reply.message}")
    return Judgement(Verdict.FAIL, f"granted: {type(reply).__name__}")


@case(CASES, "ACT-2", "unactivated-issues-temporary-only", "a license request to a target whose "
      "certificate is the temporary self-signed one of an unactivated server",
      ("an unactivated server: only temporary (or built-in) licenses",
       "an activated server: informational"), roles=LS)  # fmt: skip
async def unactivated(ctx: Context) -> Judgement:
    reply, _req = await _grant(ctx, 2000)
    if not isinstance(reply, LicenseGranted):
        return Judgement(Verdict.INFORMATIONAL, f"no license to judge: {_label(reply)}")
    from tslic.protocol.licenses import open_license

    issuer = open_license(reply.license).issuer
    if issuer.temporary and reply.kind is LicenseKind.PERMANENT:
        return Judgement(Verdict.FAIL, "an unactivated server issued a permanent CAL")
    if not issuer.temporary:
        return Judgement(Verdict.INFORMATIONAL, f"the target is activated; got {reply.kind}")
    return Judgement(Verdict.PASS, f"unactivated server issued a {reply.kind} license")


@case(CASES, "TEMP-1", "temporary-90-days", "a license request answered with a temporary license",
      ("a temporary license expires 90 days after it is issued",), roles=LS)  # fmt: skip
async def temporary_days(ctx: Context) -> Judgement:
    now = ctx.now()
    reply, _ = await _grant(ctx, 2003 if await _is_2003(ctx) else 2000)
    if not isinstance(reply, LicenseGranted) or reply.kind is not LicenseKind.TEMPORARY:
        return Judgement(Verdict.UNSUPPORTED, f"no temporary license issued: {_label(reply)}")
    days = (reply.expires_at - now) / DAY
    if abs(days - TEMPORARY_DAYS) <= 1:
        return Judgement(Verdict.PASS, f"temporary license for {days:.2f} days")
    return Judgement(Verdict.FAIL, f"temporary license for {days:.2f} days")


@case(CASES, "LEASE-1", "lease-52-to-89-days", "a license request answered with a permanent "
      "Per Device CAL (after a temporary one is marked and presented again, TEMP-4/TEMP-7)",
      ("a lease of 52 to 89 days",), roles=LS)  # fmt: skip
async def lease_days(ctx: Context) -> Judgement:
    reply, _, now = await grant_permanent(ctx, 2003 if await _is_2003(ctx) else 2000)
    if not isinstance(reply, LicenseGranted) or reply.kind is not LicenseKind.PERMANENT:
        return Judgement(Verdict.UNSUPPORTED, "no permanent CAL issued (activate the target and "
                         f"install a key pack, docs/CONFORMANCE.md): {_label(reply)}")  # fmt: skip
    days = (reply.expires_at - now) / DAY
    if LEASE_MIN_DAYS - 0.01 <= days <= LEASE_MAX_DAYS + 1:
        return Judgement(Verdict.PASS, f"lease of {days:.2f} days")
    return Judgement(Verdict.FAIL, f"lease of {days:.2f} days")


@case(CASES, "SEC-9", "license-needs-certificate", "IssueLicense from a terminal server that "
      "presented no certificate", ("refusal ACCESS_DENIED (2003)",), roles=LS,
      negative=True)  # fmt: skip
async def needs_cert(ctx: Context) -> Judgement:
    async with terminal_server(ctx, version=2000, name="CONF-NOCERT", certified=False) as (s, _):
        try:
            reply = await call(ctx, s, license_request(ctx))
        except ServiceError as exc:
            verdict = Verdict.PASS if exc.code is E.ACCESS_DENIED else Verdict.WRONG_CODE
            return Judgement(verdict, f"refusal {exc.code.name}")
    return Judgement(Verdict.FAIL, f"answered {type(reply).__name__} without a certificate")


@case(CASES, "SEC-8", "certificate-for-own-key", "RequestTermServCert for a public key other than "
      "the one signing the conversation", ("refusal ACCESS_DENIED (2003)",), roles=LS,
      negative=True)  # fmt: skip
async def cert_own_key(ctx: Context) -> Judgement:
    async with terminal_server(ctx, version=2000, name="CONF-OTHERKEY", certified=False) as (
        s, _,
    ):  # fmt: skip
        try:
            reply = await call(
                ctx,
                s,
                RequestTermServCert(
                    name="CONF-OTHERKEY",
                    domain="CONFORMANCE",
                    site="Default-First-Site-Name",
                    version=WindowsVersion.W2000,
                    public_key=raw_public(ctx.key()),
                ),
            )
        except ServiceError as exc:
            verdict = Verdict.PASS if exc.code is E.ACCESS_DENIED else Verdict.WRONG_CODE
            return Judgement(verdict, f"refusal {exc.code.name}")
    return Judgement(Verdict.FAIL, f"issued a certificate for someone else's key: {reply}")


@case(CASES, "SEC-9", "other-ts-license", "terminal server B returns a license that terminal "
      "server A obtained", ("refusal WRONG_TERMINAL_SERVER (2006)",), roles=LS,
      negative=True)  # fmt: skip
async def other_ts(ctx: Context) -> Judgement:
    reply, req = await _grant(ctx, 2000)
    if not isinstance(reply, LicenseGranted):
        return Judgement(Verdict.UNSUPPORTED, f"no license to steal: {_label(reply)}")
    async with terminal_server(ctx, version=2000, name="CONF-THIEF") as (stream, _):
        try:
            answer = await call(ctx, stream, ReturnLicense(license_id=reply.license_id,
                                                           hwid=req.hwid))  # fmt: skip
        except ServiceError as exc:
            verdict = Verdict.PASS if exc.code is E.WRONG_TERMINAL_SERVER else Verdict.WRONG_CODE
            return Judgement(verdict, f"refusal {exc.code.name}")
    return Judgement(Verdict.FAIL, f"another terminal server's license accepted: {answer}")


@case(CASES, "SEC-5", "admin-needs-credential", "the licensing utility's AdminGetStatus from a key "
      "that is not the administrator credential", ("refusal ACCESS_DENIED (2003)",), roles=LS,
      negative=True)  # fmt: skip
async def admin_credential(ctx: Context) -> Judgement:
    from tslic.protocol import Conversation
    from tslic.protocol.domain import PeerRole

    try:
        async with open_peer(ctx.config.target, conversation=Conversation.ADMIN, key=ctx.key(),
                             clock=ctx.clock, role=PeerRole.ADMINISTRATOR, name="INTRUDER",
                             version=0) as stream:  # fmt: skip
            reply = await call(ctx, stream, AdminGetStatus())
    except ServiceError as exc:
        verdict = Verdict.PASS if exc.code is E.ACCESS_DENIED else Verdict.WRONG_CODE
        return Judgement(verdict, f"refusal {exc.code.name}")
    return Judgement(Verdict.FAIL, f"a stranger got {type(reply).__name__}")


@case(CASES, "SEC-1", "security-group", "with the License Server Security Group enabled (by the "
      "suite, through the administrator credential), a terminal server outside the group asks "
      "for its certificate (adding it takes effect at a restart: SEC-14, cases_spec16)",
      ("refusal NOT_IN_SECURITY_GROUP (2004)",), roles=LS, negative=True)  # fmt: skip
async def security_group(ctx: Context) -> Judgement:
    if ctx.config.admin_credential is None:
        return Judgement(Verdict.UNSUPPORTED, "needs --admin-credential")
    name = f"CONF-SG{ctx.rng.randrange(10**6):06d}"
    async with administrator(ctx) as admin:
        status = await call(ctx, admin, AdminGetStatus())
        assert isinstance(status, AdminStatus)
        before = status.status.security_group_enabled
        await call(ctx, admin, AdminSetPolicy(security_group_enabled=True))
        try:
            async with terminal_server(ctx, version=2000, name=name):
                pass
            return Judgement(Verdict.FAIL, "a TS outside the group got its certificate")
        except ServiceError as exc:
            if exc.code is not E.NOT_IN_SECURITY_GROUP:
                return Judgement(Verdict.WRONG_CODE, f"refusal {exc.code.name}")
        finally:
            await call(ctx, admin, AdminSetPolicy(security_group_enabled=before,
                                                  remove_members=(name,)))  # fmt: skip
    return Judgement(Verdict.PASS, "outsider refused NOT_IN_SECURITY_GROUP")


async def _is_2003(ctx: Context) -> bool:
    try:
        async with terminal_server(ctx, version=2003, name="CONF-PROBE", certified=False):
            return True
    except ServiceError:
        return False


def _label(reply: object) -> str:
    if isinstance(reply, ServiceError):
        return f"refusal {reply.code.name}"
    if isinstance(reply, LicenseGranted):
        return f"{reply.kind} {reply.product}"
    return type(reply).__name__


@case(CASES, "COMPAT-3", "2003-ls-serves-both", "Hellos from a 2000 and a 2003 terminal server",
      ("a 2003 license server welcomes both", "a 2000 license server: not applicable"),
      roles=LS)  # fmt: skip
async def serves_both(ctx: Context) -> Judgement:
    welcomed = []
    for version in (2000, 2003):
        try:
            async with terminal_server(ctx, version=version, name=f"CONF-TS{version}",
                                       certified=False) as (s, _):  # fmt: skip
                welcomed.append((version, s.welcome.version))
        except ServiceError as exc:
            if version == 2003 and exc.code is E.LOWER_VERSION:
                return Judgement(Verdict.UNSUPPORTED, "the target is a 2000 license server")
            return Judgement(Verdict.FAIL, f"{version} TS refused: {exc.code.name}")
    return Judgement(Verdict.PASS, f"both welcomed (license server {welcomed[0][1]})")


@case(CASES, "CAL-6", "no-built-in-for-2003-ts", "a 2003 terminal server asks a license for a "
      "Windows XP Professional client", ("never a built-in license",), roles=LS)  # fmt: skip
async def no_built_in_2003(ctx: Context) -> Judgement:
    if not await _is_2003(ctx):
        return Judgement(Verdict.UNSUPPORTED, "the target is a 2000 license server")
    reply, _ = await _grant(ctx, 2003)
    if isinstance(reply, LicenseGranted) and reply.kind is LicenseKind.BUILT_IN:
        return Judgement(Verdict.FAIL, f"built-in license {reply.product} for a 2003 TS")
    return Judgement(Verdict.PASS, _label(reply))


@case(CASES, "CAL-4", "built-in-for-w2k-pro", "a 2000 terminal server asks a license for a "
      "Windows 2000 Professional client", ("an activated server: the built-in license",
      "an unactivated server: informational (CAL-5)"), roles=LS)  # fmt: skip
async def built_in(ctx: Context) -> Judgement:
    from tslic.protocol.domain import ClientOS
    from tslic.protocol.licenses import open_license

    reply, _ = await _grant(ctx, 2000, license_request(ctx, client_os=ClientOS.W2000_PRO))
    if not isinstance(reply, LicenseGranted):
        return Judgement(Verdict.FAIL, f"no license: {_label(reply)}")
    if reply.kind is LicenseKind.BUILT_IN:
        return Judgement(Verdict.PASS, _label(reply))
    if open_license(reply.license).issuer.temporary:
        return Judgement(Verdict.INFORMATIONAL, f"unactivated server gave {_label(reply)}")
    return Judgement(Verdict.FAIL, f"an activated server gave {_label(reply)}")


@case(CASES, "TEMP-3", "one-temporary-per-device", "the same device (hardware id, a Windows XP "
      "Home client, which has no built-in license) asks twice",
      ("the second answer is the same temporary license (same number, same expiry), or not "
       "a temporary one",), roles=LS)  # fmt: skip
async def one_temporary(ctx: Context) -> Judgement:
    req = license_request(ctx, client_os=ClientOS.XP_HOME)
    first, _ = await _grant(ctx, 2000, req)
    second, _ = await _grant(ctx, 2000, req)
    if not (isinstance(first, LicenseGranted) and first.kind is LicenseKind.TEMPORARY):
        return Judgement(Verdict.UNSUPPORTED, f"no temporary license: {_label(first)}")
    if (
        isinstance(second, LicenseGranted)
        and second.kind is LicenseKind.TEMPORARY
        and (second.license_id != first.license_id or second.expires_at != first.expires_at)
    ):
        return Judgement(Verdict.FAIL, f"a second temporary license: number {first.license_id} "
                         f"then {second.license_id}, expiry {first.expires_at} then "
                         f"{second.expires_at}")  # fmt: skip
    return Judgement(Verdict.PASS, f"{_label(first)}, then {_label(second)}")


@case(CASES, "SEC-2", "any-ts-without-group", "a terminal server of a random name asks for its "
      "certificate (the security group is off unless the suite turned it on)",
      ("the certificate",), roles=LS)  # fmt: skip
async def any_ts(ctx: Context) -> Judgement:
    name = f"CONF-ANY{ctx.rng.randrange(10**6):06d}"
    try:
        async with terminal_server(ctx, version=2000, name=name):
            return Judgement(Verdict.PASS, f"{name} certified")
    except ServiceError as exc:
        if exc.code is E.NOT_IN_SECURITY_GROUP:
            return Judgement(Verdict.UNSUPPORTED, "the target runs with the security group on")
        return Judgement(Verdict.FAIL, f"refused: {exc.code.name}")


@case(CASES, "ACT-1", "activation-state", "AdminGetStatus with the administrator credential",
      ("activation one of unactivated, activated, deactivated, reactivated; the certificate "
       "temporary exactly when unactivated",), roles=LS)  # fmt: skip
async def activation_state(ctx: Context) -> Judgement:
    from tslic.protocol.domain import ActivationState

    if ctx.config.admin_credential is None:
        return Judgement(Verdict.UNSUPPORTED, "needs --admin-credential")
    async with administrator(ctx) as admin:
        reply = await call(ctx, admin, AdminGetStatus())
    assert isinstance(reply, AdminStatus)
    st = reply.status
    unactivated = st.activation is ActivationState.UNACTIVATED
    if unactivated != st.certificate_temporary:
        return Judgement(Verdict.FAIL, f"{st.activation} with temporary={st.certificate_temporary}")
    return Judgement(Verdict.PASS, f"{st.activation}, temporary certificate "
                     f"{st.certificate_temporary}")  # fmt: skip


case(CASES, "CAL-10", "unactivated-no-permanent", "a license request to an unactivated target",
     ("only temporary (or built-in) licenses from an unactivated server",),
     roles=LS)(unactivated)  # fmt: skip
