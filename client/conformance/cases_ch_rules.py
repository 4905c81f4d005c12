"""The Clearinghouse's programs, transition offer and codes (docs/PROTOCOL.md §7.14, §7.15:
CH-2..7, CH-10, CH-12, ACT-12, ACT-13), with the suite playing license servers and the person
at the web pages.

Contract: the purchases come from the manifest of `tslic conformance prepare --role
clearinghouse` (the operator registers them with the commands it prints); `--web` gives the
web pages and the manifest's clock file lets the suite move the Clearinghouse's time. Without
them the parts that need them are skipped (a case with nothing left to check is
`unsupported`). Each license server the suite plays is a fresh key it activates by the
automatic method. Order matters: the retail code is spent by CH-3 only, the Open License
purchase (5 CALs) by CH-2 and CH-12 (one each) before CH-4 asks for too many, and CH-6, which
moves the clock past 30 June 2007, runs last.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from cryptography import x509
from tslic.protocol import ErrorCode, ServiceError
from tslic.protocol.codec import Unvalidated
from tslic.protocol.codes import ALPHABET, group5, make_retail_code
from tslic.protocol.connection import raw_public
from tslic.protocol.domain import ActivationMethod, CalProduct, Program, WindowsVersion
from tslic.protocol.licenses import open_grant
from tslic.protocol.messages.clearinghouse import (
    ChActivated,
    ChClaimActivation,
    ChDeactivate,
    ChDeactivated,
    ChInstallKeyPack,
    ChKeyPack,
)
from tslic.protocol.messages.records import KeyPackGrant
from tslic.protocol.names import product_id_for
from tslic.protocol.pki import cert_from_der
from tslic.runtime.peer import PeerStream

from .cases_clearinghouse import CONTACT, _activate
from .context import Context
from .lsclient import call, move_clock, session
from .model import Case, Judgement, Role, Verdict, case
from .webuser import error_code, post_form, strong

CASES: list[Case] = []
CH = frozenset({Role.CLEARINGHOUSE})
E = ErrorCode
DEVICE = CalProduct.W2003_DEVICE_CAL
OFFER_ENDED_AT = 1_183_248_000_000 + 86_400_000  # 2007-07-01, a day after the last day


class Unprepared(Exception):
    pass


def _purchases(ctx: Context) -> dict[str, Unvalidated]:
    found = ctx.manifest.get("purchases")
    if not isinstance(found, dict):
        raise Unprepared("needs --manifest from `tslic conformance prepare --role clearinghouse` "
                         "with its purchases registered (docs/CONFORMANCE.md §2)")  # fmt: skip
    return found


def _web(ctx: Context) -> str:
    if not ctx.config.web:
        raise Unprepared("needs --web HOST:PORT (the Clearinghouse's web pages)")
    return ctx.config.web


@asynccontextmanager
async def _license_server(ctx: Context, version: int = 2003) -> AsyncIterator[
    tuple[PeerStream, str, x509.Certificate]
]:  # fmt: skip
    """A fresh license server activated by the automatic method: (stream, its ID, the root)."""
    key = ctx.key()
    async with session(ctx, key) as s:
        reply = await call(ctx, s, _activate(ctx, raw_public(key),
                                             version=WindowsVersion(version)))  # fmt: skip
        assert isinstance(reply, ChActivated)
        root = cert_from_der(s.welcome.cert_chain[0] if s.welcome.cert_chain else
                             reply.cert_chain[0])  # fmt: skip
        yield s, reply.license_server_id, root


async def _install(s: PeerStream, ctx: Context, lsid: str, **fields: Unvalidated) -> (
    ChKeyPack | ServiceError
):  # fmt: skip
    # The fields come partly from the manifest; ChInstallKeyPack checks them when built.
    values: dict[str, Unvalidated] = {"license_server_id": lsid, "program": Program.RETAIL,
                              "product": DEVICE, "count": 1}  # fmt: skip
    values.update(fields)
    try:
        reply = await call(ctx, s, ChInstallKeyPack(**values))
    except ServiceError as exc:
        return exc
    assert isinstance(reply, ChKeyPack)
    return reply


def _refused(answer: ChKeyPack | ServiceError, code: ErrorCode, what: str) -> str | None:
    """None if `answer` is the refusal `code`, else what is wrong."""
    if isinstance(answer, ServiceError):
        return None if answer.code is code else f"{what}: refusal {answer.code.name}"
    return f"{what}: granted"


def _label(answer: ChKeyPack | ServiceError) -> str:
    return f"refusal {answer.code.name}" if isinstance(answer, ServiceError) else "a grant"


@case(CASES, "CH-2", "program-number-formats", "ChInstallKeyPack for an Open License with a "
      "14-character authorization number (the manifest's minus its last character) and with a "
      "9-digit license number, and for a Select agreement with 6 digits; then the registered "
      "Open License and Select purchases, one CAL each", ("INVALID_LICENSE_CODE for each "
      "malformed number; a grant for each registered purchase",), roles=CH)  # fmt: skip
async def number_formats(ctx: Context) -> Judgement:
    try:
        bought: dict[str, Unvalidated] | None = _purchases(ctx)
    except Unprepared:
        bought = None
    op = (bought or {}).get("open_license") or {
        "license_number": "12345678",
        "authorization_number": "BCDFGHJKMPQRTVW",
    }
    ag = (bought or {}).get("agreement") or {"program": "select", "number": "1234567"}
    wrong = []
    async with _license_server(ctx) as (s, lsid, _):
        open_ = {"program": Program.OPEN_LICENSE, "license_number": op["license_number"]}
        for what, fields in (
            ("a 14-character authorization number",
             {**open_, "authorization_number": op["authorization_number"][:14]}),
            ("a 9-digit license number", {**open_, "license_number": op["license_number"] + "1",
                                          "authorization_number": op["authorization_number"]}),
            ("a 6-digit Select number", {"program": Program(ag["program"]),
                                         "agreement_number": ag["number"][:6]}),
        ):  # fmt: skip
            problem = _refused(await _install(s, ctx, lsid, **fields), E.INVALID_LICENSE_CODE,
                               what)  # fmt: skip
            if problem:
                wrong.append(problem)
        if bought is not None:
            for what, fields in (
                ("the registered Open License", {**open_,
                 "authorization_number": op["authorization_number"]}),
                ("the registered Select agreement", {"program": Program(ag["program"]),
                                                     "agreement_number": ag["number"]}),
            ):  # fmt: skip
                answer = await _install(s, ctx, lsid, **fields)
                if isinstance(answer, ServiceError):
                    wrong.append(f"{what}: refusal {answer.code.name}: {answer.message}")
    if wrong:
        return Judgement(Verdict.FAIL, "; ".join(wrong))
    return Judgement(Verdict.PASS, "malformed numbers refused INVALID_LICENSE_CODE"
                     + ("; registered purchases granted" if bought else ""))  # fmt: skip


@case(CASES, "CH-3", "already-redeemed-and-retry", "license server A installs the manifest's "
      "retail code (count 0: all of it); license server B then offers the same code; A asks "
      "again the same way", ("B: refusal ALREADY_REDEEMED; A: the same grant again (same "
      "grant_id)",), roles=CH)  # fmt: skip
async def already_redeemed(ctx: Context) -> Judgement:
    try:
        code = _purchases(ctx)["retail"]["code"]
    except (Unprepared, KeyError) as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    async with _license_server(ctx) as (a, lsid_a, root):
        first = await _install(a, ctx, lsid_a, retail_code=code, count=0)
        if isinstance(first, ServiceError):
            return Judgement(Verdict.FAIL, f"the registered retail code was refused "
                             f"{first.code.name}: {first.message}")  # fmt: skip
        async with _license_server(ctx) as (b, lsid_b, _):
            other = await _install(b, ctx, lsid_b, retail_code=code, count=0)
        again = await _install(a, ctx, lsid_a, retail_code=code, count=0)
    problem = _refused(other, E.ALREADY_REDEEMED, "another license server")
    if problem:
        return Judgement(Verdict.FAIL, problem)
    if isinstance(again, ServiceError):
        return Judgement(Verdict.FAIL, f"the retry of the same server: refusal {again.code.name}")
    g1, g2 = open_grant(first.grant, root), open_grant(again.grant, root)
    if g1 != g2:
        return Judgement(Verdict.FAIL, f"the retry got grant {g2.grant_id}, not {g1.grant_id}")
    return Judgement(Verdict.PASS, f"B refused ALREADY_REDEEMED; A got grant {g1.grant_id} again")


_TYPES = {Program.RETAIL: 1, Program.OPEN_LICENSE: 5, Program.SELECT: 2}


@case(CASES, "CH-12", "grant-program", "one CAL each from the registered Open License and "
      "Select purchases", ("grants signed by the root whose program is the purchase's (key "
      "pack type 5 for Open License, 2 for an agreement)",), roles=CH)  # fmt: skip
async def grant_program(ctx: Context) -> Judgement:
    try:
        bought = _purchases(ctx)
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    op, ag = bought["open_license"], bought["agreement"]
    seen = []
    async with _license_server(ctx) as (s, lsid, root):
        for program, fields in (
            (Program.OPEN_LICENSE, {"license_number": op["license_number"],
                                    "authorization_number": op["authorization_number"]}),
            (Program(ag["program"]), {"agreement_number": ag["number"]}),
        ):  # fmt: skip
            answer = await _install(s, ctx, lsid, program=program, **fields)
            if isinstance(answer, ServiceError):
                return Judgement(Verdict.FAIL, f"{program}: refusal {answer.code.name}")
            grant: KeyPackGrant = open_grant(answer.grant, root)
            wanted = _TYPES.get(program, 2)
            got = int(grant.program.keypack_type)
            if grant.program is not program or got != wanted:
                return Judgement(Verdict.FAIL, f"a {program} purchase granted as "
                                 f"{grant.program} (type {got})")  # fmt: skip
            seen.append(f"{program}: type {wanted}")
    return Judgement(Verdict.PASS, "; ".join(seen))


@case(CASES, "CH-4", "entitlement-exhausted", "ChInstallKeyPack for 10 CALs from the registered "
      "Open License purchase of 5 (of which CH-2 and CH-12 took one each)",
      ("refusal ENTITLEMENT_EXHAUSTED",), roles=CH, negative=True)  # fmt: skip
async def exhausted(ctx: Context) -> Judgement:
    try:
        op = _purchases(ctx)["open_license"]
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    async with _license_server(ctx) as (s, lsid, _):
        answer = await _install(s, ctx, lsid, program=Program.OPEN_LICENSE, count=10,
                                license_number=op["license_number"],
                                authorization_number=op["authorization_number"])  # fmt: skip
    problem = _refused(answer, E.ENTITLEMENT_EXHAUSTED, "10 CALs of 5")
    return Judgement(Verdict.FAIL if problem else Verdict.PASS, problem or _label(answer))


@case(CASES, "CH-10", "no-2003-cals-for-2000-ls", "a Windows 2000 license server (activated "
      "by the suite) asks for 2003 Per Device CALs with a well-formed retail code",
      ("refusal KEYPACK_NOT_SUPPORTED",), roles=CH, negative=True)  # fmt: skip
async def no_2003_for_2000(ctx: Context) -> Judgement:
    code = make_retail_code(ctx.rng.randbytes(16))
    async with _license_server(ctx, version=2000) as (s, lsid, _):
        answer = await _install(s, ctx, lsid, retail_code=code)
    problem = _refused(answer, E.KEYPACK_NOT_SUPPORTED, "2003 CALs for a 2000 server")
    return Judgement(Verdict.FAIL if problem else Verdict.PASS, problem or _label(answer))


@case(CASES, "ACT-12", "telephone-deactivation-code", "ChDeactivate by telephone for a license "
      "server the suite activated", ("ChDeactivated with a confirmation code in groups of five "
      "of the 24-character alphabet",), roles=CH)  # fmt: skip
async def phone_deactivation(ctx: Context) -> Judgement:
    async with _license_server(ctx) as (s, lsid, _):
        reply = await call(ctx, s, ChDeactivate(license_server_id=lsid, contact=CONTACT,
                                                method=ActivationMethod.TELEPHONE))  # fmt: skip
    assert isinstance(reply, ChDeactivated)
    code = reply.confirmation_code.replace("-", "").replace(" ", "")
    if code and len(code) % 5 == 0 and all(c in ALPHABET for c in code):
        return Judgement(Verdict.PASS, f"confirmation code {group5(code)}")
    return Judgement(Verdict.FAIL, f"confirmation code {reply.confirmation_code!r}")


def _mistype(code: str, group: int) -> str:
    """`code` with one character of group `group` (1-based) replaced."""
    plain = code.replace("-", "")
    at = (group - 1) * 5 + 2
    other = ALPHABET[(ALPHABET.index(plain[at]) + 1) % len(ALPHABET)]
    return group5(plain[:at] + other + plain[at + 1 :])


@case(CASES, "ACT-13", "mistyped-license-server-id", "the web user activates a license server "
      "(/activate) and types its License Server ID with one character of group 2 wrong "
      "(ChClaimActivation), then correctly, in lower case without hyphens",
      ("refusal INVALID_CONFIRMATION_CODE naming group 2; then ChActivated",),
      roles=CH)  # fmt: skip
async def mistyped(ctx: Context) -> Judgement:
    try:
        web = _web(ctx)
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    key = ctx.key()
    # The ID is bound to the product ID it was asked for (ACT-14): the one of this key.
    form = {"product_id": product_id_for(raw_public(key)), "first_name": "Conformance",
            "last_name": "Suite", "company": "tslic", "country": "United States",
            "email": "suite@example.com"}  # fmt: skip
    status, page = await post_form(ctx, web, "/activate", form)
    code = strong(page, "license-server-id")
    if status != 200 or not code:
        return Judgement(Verdict.FAIL, f"/activate answered HTTP {status} without a code "
                         f"({error_code(page) or 'no error code'})")  # fmt: skip
    async with session(ctx, key) as s:
        try:
            await call(ctx, s, ChClaimActivation(license_server_id_code=_mistype(code, 2),
                                                 public_key=raw_public(key)))  # fmt: skip
            return Judgement(Verdict.FAIL, "a License Server ID with a typo was accepted")
        except ServiceError as exc:
            if exc.code is not E.INVALID_CONFIRMATION_CODE:
                return Judgement(Verdict.WRONG_CODE, f"refusal {exc.code.name}: {exc.message}")
            if "2" not in exc.message and "2" not in str(exc.detail):
                return Judgement(Verdict.FAIL, f"the refusal does not name group 2: {exc}")
        typed = code.replace("-", "").lower()
        reply = await call(ctx, s, ChClaimActivation(license_server_id_code=typed,
                                                     public_key=raw_public(key)))  # fmt: skip
    verdict = Verdict.PASS if isinstance(reply, ChActivated) else Verdict.FAIL
    return Judgement(verdict, f"typo refused naming group 2; the code typed loosely: "
                     f"{type(reply).__name__}")  # fmt: skip


async def _transition(ctx: Context, web: str, keys: str, email: str) -> tuple[int, str]:
    return await post_form(ctx, web, "/transition", {
        "license_type": str(DEVICE), "email": email, "confirm_email": email,
        "product_keys": keys})  # fmt: skip


@case(CASES, "CH-5", "xp-acquired-2003-04-24", "the web user asks for transition CALs with the "
      "manifest's Windows XP Professional key acquired on 24 April 2003, then with one acquired "
      "on 23 April 2003", ("the first refused TRANSITION_NOT_ELIGIBLE; the second processed",),
      roles=CH)  # fmt: skip
async def xp_date(ctx: Context) -> Judgement:
    try:
        web, bought = _web(ctx), _purchases(ctx)
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    _, page = await _transition(ctx, web, bought["xp_ineligible"], "it@example.com")
    if error_code(page) != "TRANSITION_NOT_ELIGIBLE":
        return Judgement(Verdict.FAIL, "a key acquired on 24 April 2003: "
                         f"{error_code(page) or 'processed'}")  # fmt: skip
    status, page = await _transition(ctx, web, bought["xp_eligible"][0], "it@example.com")
    if status != 200 or error_code(page):
        return Judgement(Verdict.FAIL, f"a key acquired on 23 April 2003: HTTP {status} "
                         f"{error_code(page)}")  # fmt: skip
    return Judgement(Verdict.PASS, "24 April refused TRANSITION_NOT_ELIGIBLE; 23 April processed")


@case(CASES, "CH-7", "xp-key-with-hyphens", "the web user asks for transition CALs with an "
      "eligible key typed in groups with hyphens", ("processed, naming the e-mail address the "
      "token goes to",), roles=CH)  # fmt: skip
async def xp_hyphens(ctx: Context) -> Judgement:
    try:
        web, bought = _web(ctx), _purchases(ctx)
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    email = "transition@example.com"
    status, page = await _transition(ctx, web, group5(bought["xp_eligible"][1]), email)
    if status != 200 or error_code(page) or email not in page:
        return Judgement(Verdict.FAIL, f"HTTP {status} {error_code(page) or ''}"
                         + ("" if email in page else " without the e-mail address"))  # fmt: skip
    return Judgement(Verdict.PASS, f"processed; the token goes to {email}")


# Last: it moves the Clearinghouse's clock past the end of the transition offer.
@case(CASES, "CH-6", "transition-offer-ended", "the suite moves the Clearinghouse's clock to "
      "1 July 2007; a license server offers a transition token (ChInstallKeyPack) and the web "
      "user asks for transition CALs", ("TRANSITION_OFFER_ENDED both times",),
      roles=CH)  # fmt: skip
async def offer_ended(ctx: Context) -> Judgement:
    if ctx.config.clock_file is None:
        return Judgement(Verdict.UNSUPPORTED, "needs the Clearinghouse's clock file (--manifest "
                         "or --clock-file)")  # fmt: skip
    if ctx.now() >= OFFER_ENDED_AT:
        return Judgement(Verdict.UNSUPPORTED, "the Clearinghouse's clock is past 1 July 2007 "
                         "already; give it a clock before (prepare does)")  # fmt: skip
    await move_clock(ctx, OFFER_ENDED_AT - ctx.now())
    token = make_retail_code(ctx.rng.randbytes(16))
    async with _license_server(ctx) as (s, lsid, _):
        answer = await _install(s, ctx, lsid, transition_token=token)
    problem = _refused(answer, E.TRANSITION_OFFER_ENDED, "a transition token")
    if problem:
        return Judgement(Verdict.FAIL, problem)
    if ctx.config.web and "xp_eligible" in ctx.manifest.get("purchases", {}):
        _, page = await _transition(
            ctx, ctx.config.web, ctx.manifest["purchases"]["xp_eligible"][0], "x@example.com"
        )
        if error_code(page) != "TRANSITION_OFFER_ENDED":
            return Judgement(Verdict.FAIL, f"the web page: {error_code(page) or 'processed'}")
    return Judgement(Verdict.PASS, "TRANSITION_OFFER_ENDED")
