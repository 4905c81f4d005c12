"""Cases for where the specification and the daemons once parted (issue 16, list 3).

Contract: each case probes one sentence an independent implementer found ambiguous or
unenforced, with the same tools as the other modules (`Crafter`, `RawClient`,
`Context.reject`, the well-behaved peers of `lsclient`). The clock rules' cases (CLOCK-2..4)
are in cases_clock, which runs right after this module and shares its Hello helpers.
"""

from __future__ import annotations

from typing import Unpack

from tslic.protocol import ErrorCode, ServiceError
from tslic.protocol.clock import MS_PER_DAY
from tslic.protocol.codec import to_wire
from tslic.protocol.domain import ClientOS, LicenseKind, LicensingMode, PeerRole
from tslic.protocol.envelope import open_envelope
from tslic.protocol.messages import Conversation
from tslic.protocol.messages.admin import AdminGetStatus, AdminSetPolicy, AdminStatus
from tslic.protocol.messages.licensing import LicenseGranted, MarkLicense, UpgradeLicenseRequest
from tslic.protocol.pki import cert_from_der, identity_of

from .crafter import HeaderOverrides
from .lsclient import administrator, call, license_request, terminal_server
from .model import REQUEST_REPLY_ROLES, Case, Judgement, Role, Verdict, case
from .runner import Context
from .wire import Frame

CASES: list[Case] = []
E = ErrorCode
LS = frozenset({Role.LICENSE_SERVER})
DAY = MS_PER_DAY
_LIBRARY_NAMES = ("ValueError", "TypeError", "KeyError", "UnpackException", "FormatError",
                  "ExtraData", "Traceback", "RecursionError")  # fmt: skip


def hello_body(ctx: Context, **changes: object) -> dict[str, object]:
    """The body map of this target's honest Hello, with `changes` applied (cases_clock.py
    builds its Hellos from it too)."""
    body: dict[str, object] = dict(to_wire(ctx.hello()))
    body.update(changes)
    return body


async def send_hello(
    ctx: Context, body: dict[str, object], **header: Unpack[HeaderOverrides]
) -> Frame | None:
    """Send `body` as a Hello on a new raw connection; the first frame back, or None."""
    client = await ctx.open_raw()
    await client.send(ctx.crafter().raw(0x001, body, **header), "Hello")
    return await client.read_frame(ctx.timeout)


def _sender(frame: Frame) -> bytes:
    return open_envelope(frame.raw).sender


# ---- SEC-9: a certificate obtained on the connection authenticates it -----------------------


@case(CASES, "SEC-9", "certificate-on-this-connection", "Hello without a chain, "
      "RequestTermServCert, then IssueLicense on the same connection",
      ("a license or a licensing refusal, not ACCESS_DENIED",), roles=LS)  # fmt: skip
async def cert_on_connection(ctx: Context) -> Judgement:
    async with terminal_server(ctx, version=2000, name="CONF-SAMECONN") as (stream, _):
        try:
            reply = await call(ctx, stream, license_request(ctx))
        except ServiceError as exc:
            verdict = Verdict.FAIL if exc.code is E.ACCESS_DENIED else Verdict.PASS
            return Judgement(verdict, f"refusal {exc.code.name}")
    return Judgement(Verdict.PASS, type(reply).__name__)


# ---- MSG-1 / ERR-4: the field is in detail, the text is a sentence -------------------------


@case(CASES, "MSG-1", "detail-names-field", "a Hello without its `name` field",
      ("Error INVALID_FIELD (1006) with detail.field = name",), roles=REQUEST_REPLY_ROLES,
      negative=True)  # fmt: skip
async def detail_names_field(ctx: Context) -> Judgement:
    body = hello_body(ctx)
    body.pop("name")
    frame = await send_hello(ctx, body)
    if frame is None or frame.error_code != int(E.INVALID_FIELD) or frame.body is None:
        return Judgement(Verdict.WRONG_CODE, frame.label() if frame else "no answer")
    field = (frame.body.get("detail") or {}).get("field")
    if field != "name":
        return Judgement(Verdict.FAIL, f"INVALID_FIELD with detail {frame.body.get('detail')}")
    return Judgement(Verdict.PASS, "INVALID_FIELD, detail.field = name")


@case(CASES, "ERR-4", "bad-encoding-is-a-sentence", "a frame body that is a truncated msgpack "
      "array", ("Error BAD_ENCODING (1003) whose text names no library exception",),
      negative=True)  # fmt: skip
async def bad_encoding_text(ctx: Context) -> Judgement:
    client = await ctx.open_raw()
    await client.send(ctx.crafter().frame(b"\x93\xc4\x20"), "truncated body")
    frame = await client.read_frame(ctx.timeout)
    if frame is None or frame.error_code != int(E.BAD_ENCODING) or frame.body is None:
        return Judgement(Verdict.WRONG_CODE, frame.label() if frame else "no answer")
    text = str(frame.body.get("message", ""))
    named = [n for n in _LIBRARY_NAMES if n in text]
    if named:
        return Judgement(Verdict.FAIL, f"the text names {', '.join(named)}: {text!r}")
    return Judgement(Verdict.PASS, f"BAD_ENCODING: {text!r}")


# ---- MSG-9: the version goes with the role ----------------------------------------------


def _version_case(slug: str, bad: int) -> None:
    async def run(ctx: Context) -> Judgement:
        versioned = ctx.hello().role in (PeerRole.TERMINAL_SERVER, PeerRole.LICENSE_SERVER)
        version = bad if versioned else 2003
        client = await ctx.open_raw()
        await client.send(ctx.crafter().raw(0x001, hello_body(ctx, version=version)))
        return ctx.reject(await client.observe(ctx.timeout), {E.INVALID_FIELD})

    case(CASES, "MSG-9", slug, f"a Hello whose version does not go with its role ({bad} for a "
         "terminal or license server, 2003 for another role)",
         ("Error INVALID_FIELD (1006), then close",), roles=REQUEST_REPLY_ROLES,
         negative=True)(run)  # fmt: skip


_version_case("version-0-for-versioned-role", 0)
_version_case("version-2001", 2001)


# ---- MSG-11: a port serves its conversations, and only those -----------------------------


_OTHER = {Role.LICENSE_SERVER: Conversation.DIRECTORY, Role.CLEARINGHOUSE: Conversation.LICENSING,
          Role.DIRECTORY: Conversation.CLEARINGHOUSE}  # fmt: skip


@case(CASES, "MSG-11", "conversation-not-served", "a Hello naming a conversation another "
      "daemon serves (directory on a license server's port, licensing elsewhere)",
      ("Error UNSUPPORTED_CONVERSATION (1019), then close",), roles=REQUEST_REPLY_ROLES,
      negative=True)  # fmt: skip
async def conversation_not_served(ctx: Context) -> Judgement:
    client = await ctx.open_raw()
    body = hello_body(ctx, conversation=str(_OTHER[ctx.role]))
    await client.send(ctx.crafter().raw(0x001, body))
    return ctx.reject(await client.observe(ctx.timeout), {E.UNSUPPORTED_CONVERSATION})


@case(CASES, "MSG-11", "admin-on-the-licensing-port", "a Hello naming `admin` on the license "
      "server's one port", ("Welcome (or a refusal of the administrator), never "
      "UNSUPPORTED_CONVERSATION",), roles=LS)  # fmt: skip
async def admin_same_port(ctx: Context) -> Judgement:
    body = hello_body(ctx, role=str(PeerRole.ADMINISTRATOR), version=0,
                       conversation=str(Conversation.ADMIN))  # fmt: skip
    frame = await send_hello(ctx, body)
    if frame is None:
        return Judgement(Verdict.TIMEOUT, "no answer to the admin Hello")
    if frame.error_code == int(E.UNSUPPORTED_CONVERSATION):
        return Judgement(Verdict.FAIL, "the port does not serve admin")
    return Judgement(Verdict.PASS, frame.label())


# ---- ENV-1: an empty inner is a shape fault ---------------------------------------------


@case(CASES, "ENV-1", "empty-inner-signed", "an envelope whose inner is an empty bin, "
      "correctly signed", ("Error MALFORMED_FRAME (1001), then close",),
      negative=True)  # fmt: skip
async def empty_inner(ctx: Context) -> Judgement:
    crafter = ctx.crafter()
    client = await ctx.open_raw()
    await client.send(crafter.frame(crafter.envelope(b"")), "empty inner")
    return ctx.reject(await client.observe(ctx.timeout), {E.MALFORMED_FRAME})


# ---- LIMIT-9: the largest valid frame ----------------------------------------------------


def _padded_hello(ctx: Context, inner_len: int) -> bytes:
    """A Hello whose inner is exactly `inner_len` bytes, padded with unknown feature names
    (three of 16 000 characters and one sized to fit; a str header grows with its length,
    so the last one is adjusted until the size is exact)."""
    crafter = ctx.crafter()
    last = 0
    for _ in range(5):
        features = ["a" * 16_000] * 3 + ["a" * last]
        inner = crafter.inner(0x001, hello_body(ctx, features=features), msg_id=1)
        if len(inner) == inner_len:
            break
        last += inner_len - len(inner)
    return crafter.frame(crafter.envelope(inner))


@case(CASES, "LIMIT-9", "inner-one-over-the-bin-limit", "a Hello whose inner is 49 153 bytes "
      "(frame body 49 257, under max_frame)", ("Error BAD_ENCODING (1003), then close",),
      roles=REQUEST_REPLY_ROLES, negative=True)  # fmt: skip
async def inner_over(ctx: Context) -> Judgement:
    client = await ctx.open_raw()
    await client.send(_padded_hello(ctx, 49_153), "Hello, inner 49 153 bytes")
    return ctx.reject(await client.observe(ctx.timeout), {E.BAD_ENCODING})


@case(CASES, "LIMIT-9", "inner-at-the-bin-limit", "a Hello whose inner is exactly 49 152 "
      "bytes (frame body 49 256)", ("Welcome",), roles=REQUEST_REPLY_ROLES)  # fmt: skip
async def inner_at(ctx: Context) -> Judgement:
    client = await ctx.open_raw()
    await client.send(_padded_hello(ctx, 49_152), "Hello, inner 49 152 bytes")
    frame = await client.read_frame(ctx.timeout)
    if frame is not None and frame.name == "Welcome":
        return Judgement(Verdict.PASS, "Welcome")
    return Judgement(Verdict.FAIL, frame.label() if frame else "no answer")


# ---- STATE-10: judged when processed -----------------------------------------------------


@case(CASES, "STATE-10", "pipelined-requests", "after Welcome, two requests written at once "
      "(the second before the first reply)", ("two replies in order, no ILLEGAL_STATE",),
      roles=REQUEST_REPLY_ROLES)  # fmt: skip
async def pipelined(ctx: Context) -> Judgement:
    crafter = ctx.crafter()
    client = await ctx.open_raw()
    welcome = await ctx.handshake(client, crafter)
    if welcome is None or welcome.name != "Welcome":
        return Judgement(Verdict.UNSUPPORTED, f"Hello not welcomed: {welcome}")
    request = ctx.simple_request()
    await client.send(crafter.message(request) + crafter.message(request), "two requests")
    replies = [await client.read_frame(ctx.timeout) for _ in range(2)]
    labels = [r.label() if r else "nothing" for r in replies]
    if any(r is None or r.error_code == int(E.ILLEGAL_STATE) for r in replies):
        return Judgement(Verdict.FAIL, ", then ".join(labels))
    return Judgement(Verdict.PASS, ", then ".join(labels))


# ---- SEC-7 beyond Hello: a chain presented as one's own ends with the signing key ---------


@case(CASES, "SEC-7", "own-chain-is-for-the-signing-key", "the certificate chain the target "
      "presents as its own (Welcome, or an agent's LicenseRequest)",
      ("empty, or its last certificate is for the key signing the frame (a Clearinghouse: "
       "its root alone)",))  # fmt: skip
async def own_chain(ctx: Context) -> Judgement:
    if ctx.role is Role.AGENT:
        await ctx.open_raw()
        frame = ctx.greeting
    else:
        frame = await send_hello(ctx, hello_body(ctx))
    if frame is None or frame.body is None:
        return Judgement(Verdict.UNSUPPORTED, "no Welcome or LicenseRequest to look at")
    chain = frame.body.get("cert_chain") or []
    if not chain:
        return Judgement(Verdict.PASS, f"{frame.name} with an empty chain")
    leaf = identity_of(cert_from_der(bytes(chain[-1])))
    if ctx.role is Role.CLEARINGHOUSE:  # its root alone, the trust anchor (SEC-7)
        alone = len(chain) == 1 and leaf.role == "clearinghouse"
        seen = f"Welcome with {len(chain)} certificate(s), leaf role {leaf.role}"
        return Judgement(Verdict.PASS if alone else Verdict.FAIL, seen)
    if leaf.public_key != _sender(frame):
        return Judgement(Verdict.FAIL, f"{frame.name}: the chain's leaf {leaf.name!r} is for "
                         "another key than the frame's signer")  # fmt: skip
    return Judgement(Verdict.PASS, f"{frame.name}: leaf {leaf.name!r} is the signer")


# ---- SEC-13: another root is refused at Hello --------------------------------------------


@case(CASES, "SEC-13", "chain-under-another-root", "a Hello with a valid chain for the signing "
      "key under a Clearinghouse root the target does not trust",
      ("Error UNTRUSTED_CERTIFICATE (2001), then close",), roles=LS, negative=True)  # fmt: skip
async def other_root(ctx: Context) -> Judgement:
    from .cases_ls_wire import _foreign_chain

    signer = ctx.key()
    probe = await send_hello(ctx, hello_body(ctx))
    chain = (probe.body or {}).get("cert_chain") if probe else None
    if not chain or identity_of(cert_from_der(bytes(chain[0]))).role != "clearinghouse":
        return Judgement(Verdict.UNSUPPORTED, "the target trusts no Clearinghouse root yet "
                         "(activate it, or give it --trust-root)")  # fmt: skip
    client = await ctx.open_raw()
    hello = hello_body(ctx, cert_chain=list(_foreign_chain(ctx, signer.public_key())))
    await client.send(ctx.crafter(signer).raw(0x001, hello))
    return ctx.reject(await client.observe(ctx.timeout), {E.UNTRUSTED_CERTIFICATE})


# ---- LEASE-1: Per User CALs are leased too -----------------------------------------------


@case(CASES, "LEASE-1", "per-user-lease-52-to-89-days", "a 2003 terminal server in Per User "
      "mode asks a license (temporary first, then marked and presented again, as TEMP-4)",
      ("a permanent Per User CAL leased for 52 to 89 days",), roles=LS)  # fmt: skip
async def per_user_lease(ctx: Context) -> Judgement:
    req = license_request(ctx, mode=LicensingMode.PER_USER, client_os=ClientOS.XP_HOME)
    try:
        async with terminal_server(ctx, version=2003, name="CONF-PERUSER") as (stream, _):
            asked = ctx.now()
            reply = await call(ctx, stream, req)
            if isinstance(reply, LicenseGranted) and reply.kind is LicenseKind.TEMPORARY:
                await call(ctx, stream, MarkLicense(license_id=reply.license_id, hwid=req.hwid))
                asked = ctx.now()
                reply = await call(ctx, stream, UpgradeLicenseRequest(
                    license=reply.license, hwid=req.hwid, machine=req.machine, user=req.user,
                    client_os=req.client_os, mode=req.mode))  # fmt: skip
    except ServiceError as exc:
        return Judgement(Verdict.UNSUPPORTED, f"no Per User CAL: refusal {exc.code.name}")
    if not isinstance(reply, LicenseGranted) or reply.kind is not LicenseKind.PERMANENT:
        kind = reply.kind if isinstance(reply, LicenseGranted) else type(reply).__name__
        return Judgement(Verdict.UNSUPPORTED, f"no permanent Per User CAL ({kind}): activate "
                         "the target and install Per User CALs (docs/CONFORMANCE.md)")  # fmt: skip
    days = (reply.expires_at - asked) / DAY
    verdict = Verdict.PASS if 52 - 0.01 <= days <= 89 + 1 else Verdict.FAIL
    return Judgement(verdict, f"{reply.product} leased for {days:.2f} days")


# ---- SEC-14: security group membership is read at start ---------------------------------


@case(CASES, "SEC-14", "member-added-waits-for-restart", "with the License Server Security "
      "Group enabled, a terminal server is added to the group (AdminSetPolicy) and asks for "
      "its certificate at once", ("refusal NOT_IN_SECURITY_GROUP (2004), and the status lists it "
      "as pending, not enforced",), roles=LS)  # fmt: skip
async def member_waits(ctx: Context) -> Judgement:
    if ctx.config.admin_credential is None:
        return Judgement(Verdict.UNSUPPORTED, "needs --admin-credential")
    name = f"CONF-SGP{ctx.rng.randrange(10**6):06d}"
    async with administrator(ctx) as admin:
        status = await call(ctx, admin, AdminGetStatus())
        assert isinstance(status, AdminStatus)
        before = status.status.security_group_enabled
        try:
            reply = await call(ctx, admin, AdminSetPolicy(security_group_enabled=True,
                                                          add_members=(name,)))  # fmt: skip
            assert isinstance(reply, AdminStatus)
            st = reply.status
            if name not in st.security_group_pending or name in st.security_group_members:
                return Judgement(Verdict.FAIL, f"enforced {st.security_group_members}, pending "
                                 f"{st.security_group_pending}")  # fmt: skip
            async with terminal_server(ctx, version=2000, name=name):
                pass
            return Judgement(Verdict.FAIL, "the new member was served before a restart")
        except ServiceError as exc:
            verdict = Verdict.PASS if exc.code is E.NOT_IN_SECURITY_GROUP else Verdict.WRONG_CODE
            return Judgement(verdict, f"pending member refused {exc.code.name} until a restart")
        finally:
            await call(ctx, admin, AdminSetPolicy(security_group_enabled=before,
                                                  remove_members=(name,)))  # fmt: skip
