"""Names on the wire (docs/PROTOCOL.md MSG-12) and the product ID a web or telephone License
Server ID is bound to (ACT-14).

Contract: for each role, every field that carries a name with a Windows rule is sent, through
the raw wire (correctly signed, every other field valid, after a Welcome or, for an agent,
after its LicenseRequest greeting), with one name that breaks its rule: a NetBIOS computer
name of 16 characters, with a space or a slash, of digits only or starting with a period; a
site name of 64 characters or with an underscore; a NetBIOS domain name of 17 characters; a
group name with `*` or of 257 characters; a product ID not in the 5-3-7-5 form; a client's
machine name of 65 characters or with an escape character, a user name of 256 characters. The
target must refuse it with INVALID_FIELD whose detail (or text) names the field and whose text
names the rule broken (the limit, the character or the words "digit", "period", "5-3-7-5",
"control"). A name at the edge of its rule (15 characters with the allowed punctuation and a
non-ASCII letter, a 63-character site, a 64-character machine name) must not be refused
INVALID_FIELD. License-server probes of the security group (AdminSetPolicy) need
`--admin-credential`; without it that case is `unsupported`. ACT-14 needs `--web`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tslic.protocol import Conversation, ErrorCode, ServiceError
from tslic.protocol.codec import to_wire
from tslic.protocol.connection import raw_public
from tslic.protocol.domain import ClientOS, PeerRole
from tslic.protocol.messages import Hello, Message
from tslic.protocol.messages.admin import AdminSetPolicy
from tslic.protocol.messages.clearinghouse import ChActivated, ChClaimActivation
from tslic.protocol.messages.directory import (
    DirGroupMembers,
    DirQueryDomainControllers,
    DirQueryEnterprise,
    DirRegister,
)
from tslic.protocol.messages.licensing import RequestTermServCert
from tslic.protocol.messages.rdp import NewLicenseRequest
from tslic.protocol.names import product_id_for
from tslic.runtime.files import load_key

from .cases_clearinghouse import _activate
from .context import Context, judge_rejection
from .lsclient import call, license_request, session
from .model import Case, Judgement, Role, Verdict, case
from .samples import sample
from .webuser import error_code, post_form, strong
from .wire import Observation

CASES: list[Case] = []
E = ErrorCode
LS, AG, CH, DIR = Role.LICENSE_SERVER, Role.AGENT, Role.CLEARINGHOUSE, Role.DIRECTORY
EDGE_COMPUTER = "ÜBER-PC_1!@#$%~"  # 15 characters: a non-ASCII letter and allowed punctuation


class Unreached(Exception):
    """The conversation did not reach the state the probe is sent in."""


@dataclass(frozen=True, slots=True)
class Bad:
    """One name that breaks its rule, the field it is sent in and words naming the rule."""

    field: str
    value: object  # sent as given, whatever its type
    hints: tuple[str, ...]


Body = Callable[[Context, Bad], tuple[Message, dict[str, object]]]


def _body(msg: Message, field: str, value: object) -> tuple[Message, dict[str, object]]:
    body: dict[str, object] = dict(to_wire(msg))
    parts = field.split(".")
    if len(parts) == 2:  # a list field: the bad name as its only item
        body[parts[0]] = [value]
    else:
        body[field] = value
    return msg, body


async def send_raw(
    ctx: Context, msg: Message, body: object, *, admin: bool = False, first_only: bool = False
) -> Observation:
    """`msg`'s type with `body`, signed, after the Welcome (or the agent's greeting)."""
    key = load_key(ctx.config.admin_credential) if admin and ctx.config.admin_credential else None
    crafter = ctx.crafter(key)
    client = await ctx.open_raw()
    if ctx.role is AG:
        if ctx.greeting is None or ctx.greeting.name != "LicenseRequest":
            raise Unreached(ctx.greeting.label() if ctx.greeting else "no LicenseRequest")
    else:
        hello = ctx.hello()
        if admin:
            hello = Hello(role=PeerRole.ADMINISTRATOR, name="CONFORMANCE-ADMIN", version=0,
                          conversation=Conversation.ADMIN)  # fmt: skip
        await client.send(crafter.message(hello), "Hello")
        welcome = await client.read_frame(ctx.timeout)
        if welcome is None or welcome.name != "Welcome":
            raise Unreached(welcome.label() if welcome else "no Welcome")
    await client.send(crafter.raw(int(msg.TYPE), body), type(msg).__name__)
    if first_only:  # an answer is all a valid name needs; nothing more is awaited
        frame = await client.read_frame(ctx.timeout)
        return Observation([frame] if frame else [], "open", 0.0, None)
    return await client.observe(ctx.timeout)


def judge_name(obs: Observation, bad: Bad) -> Judgement:
    """INVALID_FIELD naming `bad.field` and (by one of its hints) the rule."""
    base = judge_rejection(obs, {E.INVALID_FIELD}, close_ok=False)
    err = obs.first_error
    if err is not None and (err.error_code or 0) >= 2000:
        return Judgement(Verdict.FAIL, f"the name was taken, the request refused for another "
                         f"reason: {obs.summary()}", base.time_to_reject)  # fmt: skip
    if base.verdict is not Verdict.PASS or err is None or err.body is None:
        return base
    text = str(err.body.get("message", ""))
    detail = err.body.get("detail") or {}
    field = bad.field.split(".")[0]
    missing = []
    if not (isinstance(detail, dict) and detail.get("field") == field) and field not in text:
        missing.append(f"the field {field!r}")
    if not any(h.lower() in text.lower() for h in bad.hints):
        missing.append(f"the rule (one of {list(bad.hints)})")
    if missing:
        return Judgement(Verdict.FAIL, f"INVALID_FIELD {text!r} detail {detail} does not name "
                         + " or ".join(missing), base.time_to_reject)  # fmt: skip
    return Judgement(Verdict.PASS, f"INVALID_FIELD: {text!r}", base.time_to_reject)


def judge_valid(obs: Observation) -> Judgement:
    """A valid name: answered by anything but INVALID_FIELD or another protocol error."""
    err = obs.first_error
    if err is not None and err.error_code is not None and err.error_code < 2000:
        return Judgement(Verdict.FAIL, f"a valid name was refused: {obs.summary()}")
    if not obs.frames or any(f.problem for f in obs.frames):
        verdict = Verdict.TIMEOUT if obs.end == "open" and not obs.frames else Verdict.FAIL
        return Judgement(verdict, obs.summary())
    return Judgement(Verdict.PASS, f"accepted: {obs.summary()}")


def _names_case(role: Role, slug: str, what: str, make: Body, bads: list[Bad], *,
                admin: bool = False) -> None:  # fmt: skip
    expected = ("Error INVALID_FIELD (1006) naming the field and the rule, for each name",)

    @case(CASES, "MSG-12", slug, f"{what}: " + "; ".join(f"{b.field}={b.value!r}"[:60]
          for b in bads), expected, roles=frozenset({role}), negative=True)  # fmt: skip
    async def run(ctx: Context) -> Judgement:
        if admin and ctx.config.admin_credential is None:
            return Judgement(Verdict.UNSUPPORTED, "needs --admin-credential")
        seen = []
        for bad in bads:
            msg, body = make(ctx, bad)
            try:
                obs = await send_raw(ctx, msg, body, admin=admin)
            except Unreached as why:
                return Judgement(Verdict.FAIL, f"could not reach the request: {why}")
            await ctx.close_clients()
            judged = judge_name(obs, bad)
            if judged.verdict is not Verdict.PASS:
                return Judgement(judged.verdict, f"{bad.field}={bad.value!r}"[:80]
                                 + f": {judged.actual}", judged.time_to_reject)  # fmt: skip
            seen.append(bad.field)
        return Judgement(Verdict.PASS, f"{len(seen)} bad names refused INVALID_FIELD naming "
                         "the field and the rule")  # fmt: skip


def _edge_case(role: Role, slug: str, what: str, make: Callable[[Context], tuple[
    Message, dict[str, object]
]]) -> None:  # fmt: skip
    @case(CASES, "MSG-12", slug, what, ("not refused INVALID_FIELD (answered or refused for "
          "another, non-protocol reason)",), roles=frozenset({role}))  # fmt: skip
    async def run(ctx: Context) -> Judgement:
        msg, body = make(ctx)
        try:
            return judge_valid(await send_raw(ctx, msg, body, first_only=True))
        except Unreached as why:
            return Judgement(Verdict.FAIL, f"could not reach the request: {why}")


_COMPUTER_BADS = [
    Bad("name", "CONFORMANCE-LS16", ("15",)),
    Bad("name", "CONF LS", ("space", "' '")),
    Bad("name", "CONF/LS", ("/",)),
    Bad("name", "123456", ("digit",)),
    Bad("name", ".CONFLS", ("period", "'.'")),
]

# ---- clearinghouse: ChActivate --------------------------------------------------------------


def _ch_activate(ctx: Context, bad: Bad | None = None) -> tuple[Message, dict[str, object]]:
    key = raw_public(ctx.key())
    msg = _activate(ctx, key, product_id=product_id_for(key))
    if bad is None:
        return _body(msg, "name", EDGE_COMPUTER)
    return _body(msg, bad.field, bad.value)


_names_case(CH, "ch-activate-names", "ChActivate with a bad license server name or product "
            "ID", _ch_activate, [*_COMPUTER_BADS,
            Bad("product_id", "69712-640-000000-00000", ("5-3-7-5",)),
            Bad("product_id", "6971264000000000000000", ("5-3-7-5",))])  # fmt: skip
_edge_case(CH, "ch-activate-edge-name", f"ChActivate naming the license server "
           f"{EDGE_COMPUTER!r} (15 characters, a non-ASCII letter, allowed punctuation)",
           _ch_activate)  # fmt: skip

# ---- directory ------------------------------------------------------------------------------


def _dir(ctx: Context, bad: Bad) -> tuple[Message, dict[str, object]]:
    msg: Message = {
        "site": DirQueryEnterprise(site="conformance"),
        "domain": DirQueryDomainControllers(domain="CONFORMANCE"),
        "group": DirGroupMembers(group="CONF\\Terminal Server Computers"),
        "computer": DirRegister(computer="CONF-PC", address="127.0.0.1:1"),
    }[bad.field]
    return _body(msg, bad.field, bad.value)


_names_case(DIR, "directory-names", "directory queries with a bad site, domain, group or "
            "computer name", _dir, [
                Bad("site", "s" * 64, ("63",)), Bad("site", "conf_site", ("hyphen",)),
                Bad("domain", "CONFORMANCEDOMAIN", ("15",)),
                Bad("group", "CONF\\Terminal*Computers", ("*",)),
                Bad("group", "g" * 257, ("256",)),
                Bad("computer", "CONFORMANCE-PC16", ("15",)),
                Bad("computer", "2003", ("digit",)),
            ])  # fmt: skip
_edge_case(
    DIR,
    "directory-edge-site",
    "DirQueryEnterprise for a 63-character site name",
    lambda ctx: _body(DirQueryEnterprise(site="conformance"), "site", "s-" * 31 + "s"),
)
_edge_case(DIR, "directory-edge-group", "DirGroupMembers of 'CONF\\Terminal Server Computers' "
           "(a scope, spaces)", lambda ctx: _body(DirGroupMembers(group="x"), "group",
                                                 "CONF\\Terminal Server Computers"))  # fmt: skip

# ---- license server -------------------------------------------------------------------------


def _ls(ctx: Context, bad: Bad) -> tuple[Message, dict[str, object]]:
    if bad.field == "name":
        return _body(sample(RequestTermServCert), bad.field, bad.value)
    return _body(license_request(ctx), bad.field, bad.value)


_names_case(LS, "client-names-bounded", "RequestTermServCert and IssueLicense with a name over "
            "its bound or with a control character", _ls, [
                Bad("name", "T" * 65, ("64",)),
                Bad("machine", "M" * 65, ("64",)),
                Bad("machine", "CONF\x1b[31mPC", ("control", "U+001B")),
                Bad("user", "u" * 256, ("255",)),
            ])  # fmt: skip


def _admin(ctx: Context, bad: Bad) -> tuple[Message, dict[str, object]]:
    return _body(AdminSetPolicy(), bad.field, bad.value)


_names_case(LS, "security-group-members", "AdminSetPolicy adding a License Server Security "
            "Group member with a bad computer name", _admin, [
                Bad("add_members.0", "CONFORMANCE-TS16", ("15",)),
                Bad("add_members.0", "CONF TS", ("space", "' '")),
                Bad("add_members.0", "20031", ("digit",)),
                Bad("add_members.0", ".CONFTS", ("period", "'.'")),
                Bad("add_members.0", "CONF\\BAD?NAME", ("?",)),
            ], admin=True)  # fmt: skip


def _ls_edge(ctx: Context) -> tuple[Message, dict[str, object]]:
    msg = license_request(ctx)
    return msg, {**to_wire(msg), "machine": "Ü" * 64, "user": "ü" * 255}


_edge_case(
    LS,
    "client-edge-names",
    "IssueLicense from a client whose machine name has 64 "
    "characters with non-ASCII letters and whose user name has 255",
    _ls_edge,
)

# ---- agent ----------------------------------------------------------------------------------


def _new_license(ctx: Context) -> NewLicenseRequest:
    return NewLicenseRequest(platform_id=0x04010000, client_random=ctx.rng.randbytes(32),
                             user_name="conformance", machine_name="CONFORMANCE",
                             client_os=ClientOS.XP_PRO)  # fmt: skip


_names_case(AG, "rdp-client-names-bounded", "NewLicenseRequest with a machine or user name "
            "over its "
            "bound, empty, or with a control character",
            lambda ctx, bad: _body(_new_license(ctx), bad.field, bad.value), [
                Bad("machine_name", "M" * 65, ("64",)),
                Bad("machine_name", "", ("64", "empty", "1 to")),
                Bad("machine_name", "CONF\x1b[31mPC", ("control", "U+001B")),
                Bad("user_name", "u" * 256, ("255",)),
            ])  # fmt: skip


def _agent_edge(ctx: Context) -> tuple[Message, dict[str, object]]:
    msg = _new_license(ctx)
    return msg, {**to_wire(msg), "machine_name": "Ü" * 64, "user_name": "ü" * 255}


_edge_case(
    AG,
    "rdp-client-edge-names",
    "NewLicenseRequest whose machine name has 64 characters "
    "with non-ASCII letters and whose user name has 255",
    _agent_edge,
)


# ---- ACT-14 ---------------------------------------------------------------------------------


@case(CASES, "ACT-14", "id-bound-to-product-id", "the web user asks for a License Server ID "
      "for one license server's product ID; another license server (another key, so another "
      "product ID) claims it with ChClaimActivation, then the right one",
      ("refusal INVALID_CONFIRMATION_CODE for the other key; then ChActivated for the right "
       "one",), roles=frozenset({CH}))  # fmt: skip
async def bound_to_product_id(ctx: Context) -> Judgement:
    web = ctx.config.web
    if not web:
        return Judgement(Verdict.UNSUPPORTED, "needs --web HOST:PORT (the Clearinghouse's web "
                         "pages)")  # fmt: skip
    right, other = ctx.key(), ctx.key()
    form = {"product_id": product_id_for(raw_public(right)), "first_name": "Conformance",
            "last_name": "Suite", "company": "tslic", "country": "United States",
            "email": "suite@example.com"}  # fmt: skip
    status, page = await post_form(ctx, web, "/activate", form)
    code = strong(page, "license-server-id")
    if status != 200 or not code:
        return Judgement(Verdict.FAIL, f"/activate answered HTTP {status} without a code "
                         f"({error_code(page) or 'no error code'})")  # fmt: skip
    async with session(ctx, other) as s:
        try:
            reply = await call(ctx, s, ChClaimActivation(license_server_id_code=code,
                                                         public_key=raw_public(other)))  # fmt: skip
            return Judgement(Verdict.FAIL, f"another key's claim was answered "
                             f"{type(reply).__name__}")  # fmt: skip
        except ServiceError as exc:
            if exc.code is not E.INVALID_CONFIRMATION_CODE:
                return Judgement(Verdict.WRONG_CODE, f"refusal {exc.code.name}: {exc.message}")
    async with session(ctx, right) as s:
        try:
            reply = await call(ctx, s, ChClaimActivation(license_server_id_code=code,
                                                         public_key=raw_public(right)))  # fmt: skip
        except ServiceError as exc:
            return Judgement(Verdict.FAIL, f"the other key's claim spent the ID: the right key "
                             f"was refused {exc.code.name}: {exc.message}")  # fmt: skip
    verdict = Verdict.PASS if isinstance(reply, ChActivated) else Verdict.FAIL
    return Judgement(verdict, f"other key refused INVALID_CONFIRMATION_CODE; the right key: "
                     f"{type(reply).__name__}")  # fmt: skip
