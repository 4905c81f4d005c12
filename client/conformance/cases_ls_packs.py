"""Pools and key packs: licensing-rule cases for a license-server target (docs/PROTOCOL.md
§7.7, §7.8, §7.18: CAL-9, COMPAT-4, COMPAT-5, COMPAT-6, EVT-10, EVT-11).

Contract: the suite plays the licensing utility (`--admin-credential`): it lists the pools
around an issuance, and offers key packs of every product with a well-formed retail code no
Clearinghouse sold, so the target's product check (which comes before any Clearinghouse
conversation) is what answers. Nothing is installed. Without the credential, `unsupported`.
"""

from __future__ import annotations

from tslic.protocol import ErrorCode, ServiceError
from tslic.protocol.domain import ActivationMethod, CalProduct, ClientOS, LicenseKind, Program
from tslic.protocol.messages.admin import AdminInstallKeyPack
from tslic.protocol.messages.licensing import LicenseGranted

from .context import Context
from .lsclient import administrator, call, grant_permanent
from .lsprep import (
    KEYPACK_REFUSED,
    NOT_ACTIVATED,
    Unprepared,
    free,
    get_status,
    label,
    list_packs,
    prepared,
)
from .model import Case, Judgement, Role, Verdict, case

CASES: list[Case] = []
E = ErrorCode
LS = frozenset({Role.LICENSE_SERVER})
P = CalProduct


# ---- pools (CAL-9) and unactivated servers (EVT-11) ------------------------------------------


@case(CASES, "CAL-9", "pool-accounting", "a permanent Per Device CAL is issued (temporary, logon, "
      "upgrade); the suite lists the key packs before and after", ("one CAL fewer available and "
      "one more issued in the product's packs; issued + available = total in every pack",),
      roles=LS)  # fmt: skip
async def pool_accounting(ctx: Context) -> Judgement:
    try:
        status, before = await prepared(ctx, version=None)
        version = int(status.version)
        product = P.W2003_DEVICE_CAL if version == 2003 else P.W2000_TS_CAL
        if not free(before, product):
            raise Unprepared(f"needs a free {product}")
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    reply, _, _ = await grant_permanent(ctx, version)
    if not isinstance(reply, LicenseGranted) or reply.kind is not LicenseKind.PERMANENT:
        return Judgement(Verdict.FAIL, f"no permanent CAL issued: {label(reply)}")
    after = await list_packs(ctx)
    broken = [
        f"pack {p.keypack_id}: {p.issued} + {p.available} != {p.total}"
        for p in after
        if p.program is not None and p.issued + p.available != p.total
    ]
    taken = free(before, reply.product) - free(after, reply.product)
    if broken:
        return Judgement(Verdict.FAIL, "; ".join(broken))
    if taken != 1:
        return Judgement(Verdict.FAIL, f"{label(reply)} took {taken} CALs from the pool")
    return Judgement(Verdict.PASS, f"{label(reply)} took one CAL; every pack adds up")


@case(CASES, "EVT-11", "event-18-unactivated", "an unactivated target: a Windows 98 client "
      "gets its temporary license, logs on (MarkLicense) and presents it again, so that it "
      "qualifies for a permanent CAL the target cannot give", ("the temporary license kept (or "
      "a refusal) with event 18 reported",), roles=LS)  # fmt: skip
async def event_18(ctx: Context) -> Judgement:
    try:
        status = await get_status(ctx)
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    if status.activation.may_issue_permanent:
        return Judgement(Verdict.UNSUPPORTED, "a rule for an unactivated target (it is "
                         f"{status.activation}); run it before activation")  # fmt: skip
    reply, _, _ = await grant_permanent(ctx, int(status.version), client_os=ClientOS.WIN98)
    events = reply.event_ids if isinstance(reply, LicenseGranted) else ()
    if isinstance(reply, ServiceError):
        events = tuple(int(e) for e in str(reply.detail.get("event_id", "")).split(",") if e)
    if isinstance(reply, LicenseGranted) and reply.kind is LicenseKind.PERMANENT:
        return Judgement(Verdict.FAIL, f"an unactivated server issued {label(reply)}")
    if NOT_ACTIVATED in events:
        return Judgement(Verdict.PASS, label(reply))
    return Judgement(Verdict.FAIL, f"{label(reply)}: event 18 was not reported")


# ---- key packs a server accepts (COMPAT-4, COMPAT-5, COMPAT-6, EVT-10) -----------------------

# A well-formed retail code that no Clearinghouse sold: the target checks the product first.
_UNSOLD = "BBBBBBBBBBBBBBBBBBBBBBBBB"


async def _install_refusal(ctx: Context, product: CalProduct) -> ServiceError | None:
    request = AdminInstallKeyPack(program=Program.RETAIL, product=product, count=1,
                                  method=ActivationMethod.AUTOMATIC,
                                  retail_code=_UNSOLD)  # fmt: skip
    async with administrator(ctx) as admin:
        try:
            await call(ctx, admin, request)
        except ServiceError as exc:
            return exc
    return None


async def _installability(ctx: Context) -> tuple[int, dict[CalProduct, ServiceError | None]]:
    status = await get_status(ctx)
    products = (P.W2000_TS_CAL, P.W2003_DEVICE_CAL, P.W2003_USER_CAL, P.W2000_BUILT_IN)
    return int(status.version), {p: await _install_refusal(ctx, p) for p in products}


def _not_supported(answer: ServiceError | None) -> bool:
    return answer is not None and answer.code is E.KEYPACK_NOT_SUPPORTED


@case(CASES, "COMPAT-4", "2000-ls-refuses-2003-packs", "AdminInstallKeyPack of 2003 Per Device "
      "and Per User CALs (an unsold retail code)", ("a 2000 license server: refusal "
      "KEYPACK_NOT_SUPPORTED (4005)", "a 2003 license server: not KEYPACK_NOT_SUPPORTED"),
      roles=LS)  # fmt: skip
async def refuses_2003_packs(ctx: Context) -> Judgement:
    try:
        version, answers = await _installability(ctx)
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    shown = "; ".join(f"{p}: {label(a) if a else 'installed'}" for p, a in answers.items())
    refused = [_not_supported(answers[p]) for p in (P.W2003_DEVICE_CAL, P.W2003_USER_CAL)]
    if version == 2000 and not all(refused):
        return Judgement(Verdict.FAIL, f"a 2000 license server took 2003 CALs: {shown}")
    return Judgement(Verdict.PASS, shown)


@case(CASES, "EVT-10", "event-41-unsupported-pack", "AdminInstallKeyPack of a product the target "
      "cannot hold (the built-in pool; 2003 CALs on a 2000 server)", ("refusal "
      "KEYPACK_NOT_SUPPORTED naming event 41 (detail event_id)",), roles=LS)  # fmt: skip
async def event_41(ctx: Context) -> Judgement:
    try:
        answer = await _install_refusal(ctx, P.W2000_BUILT_IN)
    except ServiceError as exc:
        return Judgement(Verdict.UNSUPPORTED, f"the licensing utility was refused: {exc}")
    if ctx.config.admin_credential is None:
        return Judgement(Verdict.UNSUPPORTED, "needs --admin-credential")
    if answer is None or answer.code is not E.KEYPACK_NOT_SUPPORTED:
        return Judgement(Verdict.FAIL, f"answered {label(answer) if answer else 'installed'}")
    if str(answer.detail.get("event_id")) != str(KEYPACK_REFUSED):
        return Judgement(Verdict.FAIL, f"no event 41 in the refusal: {answer.detail}")
    return Judgement(Verdict.PASS, f"KEYPACK_NOT_SUPPORTED, event {answer.detail['event_id']}")


@case(CASES, "COMPAT-5", "packs-by-server-version", "AdminInstallKeyPack of each CAL product "
      "with an unsold retail code", ("2003: none refused KEYPACK_NOT_SUPPORTED; 2000: only the "
      "Windows 2000 TS CAL not refused so",), roles=LS)  # fmt: skip
async def packs_by_version(ctx: Context) -> Judgement:
    try:
        version, answers = await _installability(ctx)
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    expected = {P.W2000_TS_CAL: False, P.W2003_DEVICE_CAL: version == 2000,
                P.W2003_USER_CAL: version == 2000}  # fmt: skip
    wrong = [
        f"{p}: {label(answers[p]) if answers[p] else 'installed'}"
        for p, refused in expected.items()
        if _not_supported(answers[p]) != refused
    ]
    if wrong:
        return Judgement(Verdict.FAIL, f"a {version} license server: {'; '.join(wrong)}")
    return Judgement(Verdict.PASS, f"a {version} license server takes the right products")


@case(CASES, "COMPAT-6", "built-in-not-installable", "AdminInstallKeyPack of the built-in pool "
      "(product w2000-built-in)", ("refusal KEYPACK_NOT_SUPPORTED (4005)",), roles=LS,
      negative=True)  # fmt: skip
async def built_in_pack(ctx: Context) -> Judgement:
    try:
        version, answers = await _installability(ctx)
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    answer = answers[P.W2000_BUILT_IN]
    if _not_supported(answer):
        return Judgement(Verdict.PASS, "refusal KEYPACK_NOT_SUPPORTED")
    return Judgement(Verdict.FAIL, f"a {version} server answered "
                     f"{label(answer) if answer else 'installed'}")  # fmt: skip
