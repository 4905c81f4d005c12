"""Licensing-exchange cases for an agent (terminal server) target: the suite is an emulated RDP
client (docs/PROTOCOL.md §5.2, §6.1, §7 RDP, SEC-11).

Contract: the suite reads the LicenseRequest greeting, answers NewLicenseRequest or
LicenseInfo, proves its hardware id in the PlatformChallengeResponse (its envelope key is the
hardware id), and judges how the exchange ends: NewLicense / UpgradeLicense, or an ErrorAlert
whose code, state transition and disconnect reason must fit the situation. Tampered responses
(wrong challenge echo, a hardware id that is not the signing key, a forged license) must end
in ERR_INVALID_CLIENT / ST_TOTAL_ABORT. Outcomes that depend on the target's environment (in
its grace period no challenge is sent) make a case `unsupported`, saying why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypedDict

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.protocol import ErrorCode
from tslic.protocol.codec import Unvalidated, to_wire
from tslic.protocol.domain import ClientOS
from tslic.protocol.messages.rdp import (
    ClientLogon,
    DisconnectReason,
    ErrorAlert,
    LicenseInfo,
    NewLicenseRequest,
    PlatformChallengeResponse,
    RdpError,
    StateTransition,
)

from .context import Context
from .crafter import Crafter
from .model import Case, Judgement, Role, Verdict, case
from .wire import Frame, RawClient

CASES: list[Case] = []
AGENT = frozenset({Role.AGENT})
E = ErrorCode


@dataclass(slots=True)
class Exchange:
    frames: list[Frame] = field(default_factory=list)
    end: str = ""  # how the connection ended after the last frame, if it did
    client: RawClient | None = None
    crafter: Crafter | None = None

    @property
    def last(self) -> Frame | None:
        return self.frames[-1] if self.frames else None

    def names(self) -> str:
        return ", ".join(_label(f) for f in self.frames) or "nothing"


def _int(value: object) -> int:
    """`int(value)` for what msgpack decodes; anything else is a TypeError, as int() says."""
    if isinstance(value, int | float | str | bytes):
        return int(value)
    raise TypeError(f"not a number: {type(value).__name__}")


def _label(frame: Frame) -> str:
    if frame.name == "ErrorAlert" and frame.body:
        code = frame.body.get("error_code")
        st = frame.body.get("state_transition")
        dr = frame.body.get("disconnect_reason", 0)
        try:
            return (f"ErrorAlert({RdpError(_int(code)).name}, "
                    f"{StateTransition(_int(st)).name}, reason 0x{_int(dr):x})")  # fmt: skip
        except (ValueError, TypeError):
            return f"ErrorAlert({code}, {st})"
    return frame.label()


class _Common(TypedDict):
    """The fields NewLicenseRequest and LicenseInfo share."""

    platform_id: int
    client_random: bytes
    user_name: str
    machine_name: str
    client_os: ClientOS


class ExchangeOptions(TypedDict, total=False):
    """`exchange`'s keyword options, for helpers that pass them through."""

    license: bytes | None
    echo: bytes | None
    hwid: bytes | None
    key: Ed25519PrivateKey | None


async def exchange(
    ctx: Context,
    *,
    license: bytes | None = None,
    echo: bytes | None = None,
    hwid: bytes | None = None,
    key: Ed25519PrivateKey | None = None,
) -> Exchange:
    """Run the client side until NewLicense, UpgradeLicense, an ErrorAlert or silence. `key`
    is the client's envelope key, hence its hardware id (default: a fresh one)."""
    ex = Exchange()
    client = await ctx.open_raw()
    ex.client = client
    if ctx.greeting is None:
        return ex
    ex.frames.append(ctx.greeting)
    crafter = ex.crafter = ctx.crafter(key)
    common: _Common = {
        "platform_id": 0x04010000,
        "client_random": ctx.rng.randbytes(32),
        "user_name": "conformance",
        "machine_name": f"CONF-{ctx.rng.randrange(10**6):06d}",
        "client_os": ClientOS.XP_PRO,
    }
    first = LicenseInfo(license=license, **common) if license else NewLicenseRequest(**common)
    await client.send(crafter.message(first), type(first).__name__)
    reply = await client.read_frame(ctx.timeout)
    if reply is None:
        return ex
    ex.frames.append(reply)
    if reply.name != "PlatformChallenge" or reply.body is None:
        return ex
    challenge = echo if echo is not None else reply.body.get("challenge", b"")
    response = {
        **to_wire(PlatformChallengeResponse(challenge=bytes(16), hwid=crafter.sender)),
        "challenge": challenge,
        "hwid": hwid if hwid is not None else crafter.sender,
    }
    await client.send(crafter.raw(0x115, response), "PlatformChallengeResponse")
    final = await client.read_frame(ctx.timeout)
    if final is not None:
        ex.frames.append(final)
    return ex


def _alert(frame: Frame | None) -> tuple[int, int, int] | None:
    if frame is None or frame.name != "ErrorAlert" or frame.body is None:
        return None
    b = frame.body
    return (
        int(b.get("error_code", 0)),
        int(b.get("state_transition", 0)),
        int(b.get("disconnect_reason", 0)),
    )


@case(CASES, "STATE-8", "license-request-first", "connect as an RDP client and wait",
      ("the first frame is LicenseRequest",), roles=AGENT)  # fmt: skip
async def greeting(ctx: Context) -> Judgement:
    await ctx.open_raw()
    g = ctx.greeting
    if g is not None and g.name == "LicenseRequest":
        return Judgement(Verdict.PASS, "LicenseRequest")
    return Judgement(Verdict.FAIL, g.label() if g else "nothing within the timeout")


@case(CASES, "RDP-1", "license-request-content", "two connections' LicenseRequest greetings",
      ("32 fresh random bytes each time, the product information and a chain whose last "
       "certificate is a terminal server's",), roles=AGENT)  # fmt: skip
async def greeting_content(ctx: Context) -> Judgement:
    randoms = []
    chain: Unvalidated = ()  # as the target sent it
    for _ in range(2):
        await ctx.open_raw()
        g = ctx.greeting
        if g is None or g.name != "LicenseRequest" or g.body is None:
            return Judgement(Verdict.FAIL, g.label() if g else "no greeting")
        randoms.append(g.body.get("server_random"))
        chain = g.body.get("cert_chain", ())
    if randoms[0] == randoms[1]:
        return Judgement(Verdict.FAIL, "server_random repeated across connections")
    if not chain:
        return Judgement(Verdict.INFORMATIONAL, "no certificate chain yet (no license server "
                         "has certified this terminal server)")  # fmt: skip
    from tslic.protocol import TslicError
    from tslic.protocol.pki import cert_from_der, identity_of

    try:
        leaf = identity_of(cert_from_der(chain[-1]))
    except TslicError as exc:
        return Judgement(Verdict.FAIL, f"the chain's last certificate is unreadable: {exc}")
    if str(leaf.role) != "terminal-server":
        return Judgement(Verdict.FAIL, f"the last certificate is a {leaf.role}'s")
    return Judgement(Verdict.PASS, f"fresh randoms; chain of {len(chain)} ending in {leaf.name}")


@case(CASES, "RDP-4", "new-license-path", "NewLicenseRequest, then a correct "
      "PlatformChallengeResponse", ("PlatformChallenge then NewLicense",
      "an ErrorAlert (for example STATUS_VALID_CLIENT in the grace period)"),
      roles=AGENT)  # fmt: skip
async def new_license(ctx: Context) -> Judgement:
    ex = await exchange(ctx)
    last = ex.last
    if last is None or len(ex.frames) < 2:
        return Judgement(Verdict.TIMEOUT, ex.names())
    if last.name in ("NewLicense", "ErrorAlert"):
        return Judgement(Verdict.PASS, ex.names())
    return Judgement(Verdict.FAIL, ex.names())


@case(CASES, "RDP-3", "challenge-before-license", "NewLicenseRequest and a correct response",
      ("a NewLicense only after a PlatformChallenge of 16 to 64 bytes",), roles=AGENT)  # fmt: skip
async def challenge_first(ctx: Context) -> Judgement:
    ex = await exchange(ctx)
    names = [f.name for f in ex.frames]
    if "NewLicense" not in names:
        return Judgement(Verdict.UNSUPPORTED, f"no license was issued: {ex.names()}")
    i = names.index("NewLicense")
    challenges = [f for f in ex.frames[:i] if f.name == "PlatformChallenge"]
    size = len(challenges[0].body.get("challenge", b"")) if challenges and challenges[0].body else 0
    if challenges and 16 <= size <= 64:
        return Judgement(Verdict.PASS, ex.names())
    return Judgement(Verdict.FAIL, f"{ex.names()} (challenge of {size} bytes)")


@case(CASES, "RDP-5", "valid-client-alert", "NewLicenseRequest and a correct response",
      ("if STATUS_VALID_CLIENT is sent: with ST_NO_TRANSITION and empty error_info",),
      roles=AGENT)  # fmt: skip
async def valid_client(ctx: Context) -> Judgement:
    ex = await exchange(ctx)
    for f in ex.frames:
        alert = _alert(f)
        if alert and alert[0] == RdpError.STATUS_VALID_CLIENT:
            info = f.body.get("error_info", b"") if f.body else b""
            if alert[1] == StateTransition.ST_NO_TRANSITION and not info:
                return Judgement(Verdict.PASS, _label(f))
            return Judgement(Verdict.FAIL, _label(f))
    return Judgement(Verdict.INFORMATIONAL, f"no STATUS_VALID_CLIENT sent: {ex.names()}")


def _abort_case(
    slug: str, text: str, reason: DisconnectReason, rule: str, **tamper: Callable[[Context], bytes]
) -> None:
    @case(CASES, rule, slug, text, (f"ErrorAlert ERR_INVALID_CLIENT / ST_TOTAL_ABORT, "
          f"disconnect reason {reason.name} (0x{int(reason):x})",), roles=AGENT,
          negative=True)  # fmt: skip
    async def run(ctx: Context) -> Judgement:
        def made(name: str) -> bytes | None:
            make = tamper.get(name)
            return None if make is None else make(ctx)

        ex = await exchange(ctx, license=made("license"), echo=made("echo"), hwid=made("hwid"))
        names = [f.name for f in ex.frames]
        if "PlatformChallenge" not in names and "license" not in tamper:
            return Judgement(Verdict.UNSUPPORTED, f"no challenge was sent: {ex.names()}")
        alert = _alert(ex.last)
        if alert is None:
            if ex.last is not None and (ex.last.error_code or 0) // 1000 == 1:
                return Judgement(Verdict.WRONG_CODE, f"{ex.names()} (an Error, not an alert)")
            verdict = Verdict.TIMEOUT if len(ex.frames) < 3 else Verdict.FAIL
            return Judgement(verdict, ex.names())
        ok = alert[:2] == (RdpError.ERR_INVALID_CLIENT, StateTransition.ST_TOTAL_ABORT)
        if ok and alert[2] == reason:
            return Judgement(Verdict.PASS, ex.names())
        if ok:
            return Judgement(Verdict.WRONG_CODE, f"{ex.names()} (reason 0x{alert[2]:x})")
        if alert[1] != StateTransition.ST_TOTAL_ABORT:
            return Judgement(Verdict.FAIL, f"licensing went on: {ex.names()}")
        return Judgement(Verdict.WRONG_CODE, ex.names())


_abort_case("wrong-challenge-echo", "a PlatformChallengeResponse echoing a different challenge",
            DisconnectReason.LICENSE_BAD_CLIENT_MSG, "SEC-11",
            echo=lambda ctx: ctx.rng.randbytes(16))  # fmt: skip
_abort_case("hwid-not-signing-key", "a PlatformChallengeResponse whose hwid is not the key "
            "signing it", DisconnectReason.LICENSE_BAD_CLIENT_MSG, "SEC-11",
            hwid=lambda ctx: ctx.rng.randbytes(32))  # fmt: skip
_abort_case("forged-license", "LicenseInfo presenting a license that is not a signed license "
            "document", DisconnectReason.LICENSE_BAD_CLIENT_LICENSE, "RDP-11",
            license=lambda ctx: b"\x93\xc4\x01x\x90\xc4\x01y")  # fmt: skip


@case(CASES, "RDP-9", "client-may-only-abort", "an ErrorAlert with ST_RESET_PHASE_TO_START sent "
      "by the client", ("Error ILLEGAL_STATE (1011), then close",), roles=AGENT,
      negative=True)  # fmt: skip
async def client_alert(ctx: Context) -> Judgement:
    client = await ctx.open_raw()
    alert = ErrorAlert(error_code=RdpError.ERR_INVALID_CLIENT,
                       state_transition=StateTransition.ST_RESET_PHASE_TO_START)  # fmt: skip
    await client.send(ctx.crafter().message(alert))
    return ctx.reject(await client.observe(ctx.timeout), {E.ILLEGAL_STATE})


@case(CASES, "RDP-14", "errors-are-fatal", "a NewLicenseRequest with a wrong field type",
      ("a fatal (1xxx) Error, never a refusing one",), roles=AGENT, negative=True)  # fmt: skip
async def fatal_only(ctx: Context) -> Judgement:
    client = await ctx.open_raw()
    body = to_wire(NewLicenseRequest(platform_id=0, client_random=bytes(32), user_name="x",
                                     machine_name="X", client_os=ClientOS.XP_PRO))  # fmt: skip
    body["platform_id"] = "not a number"
    await client.send(ctx.crafter().raw(0x113, body))
    return ctx.reject(await client.observe(ctx.timeout), {E.INVALID_FIELD})


@case(CASES, "RDP-13", "logon-after-licensing", "after licensing ends (license or "
      "STATUS_VALID_CLIENT), a ClientLogon with valid credentials",
      ("LogonComplete(logged_on=true)",), roles=AGENT)  # fmt: skip
async def logon(ctx: Context) -> Judgement:
    ex = await exchange(ctx)
    last = ex.last
    alert = _alert(last)
    licensed = last is not None and (
        last.name in ("NewLicense", "UpgradeLicense")
        or (alert is not None and alert[1] == StateTransition.ST_NO_TRANSITION)
    )
    if not licensed or ex.client is None or ex.crafter is None:
        return Judgement(Verdict.UNSUPPORTED, f"licensing did not succeed: {ex.names()}")
    await ex.client.send(ex.crafter.message(ClientLogon(user_name="conformance",
                                                        domain="CONFORMANCE")))  # fmt: skip
    reply = await ex.client.read_frame(ctx.timeout)
    if reply is not None and reply.name == "LogonComplete" and reply.body:
        if reply.body.get("logged_on") is True:
            return Judgement(Verdict.PASS, f"{ex.names()}, LogonComplete(logged_on=true)")
        return Judgement(Verdict.FAIL, "LogonComplete(logged_on=false) for valid credentials")
    return Judgement(Verdict.FAIL, f"{ex.names()}, then {reply.label() if reply else 'nothing'}")


@case(CASES, "RDP-12", "abort-ends-conversation", "a forged license, so that licensing aborts",
      ("after ST_TOTAL_ABORT the terminal server ends the conversation (Goodbye or close)",),
      roles=AGENT)  # fmt: skip
async def abort_ends(ctx: Context) -> Judgement:
    ex = await exchange(ctx, license=b"\x93\xc4\x01x\x90\xc4\x01y")
    alert = _alert(ex.last)
    if alert is None or alert[1] != StateTransition.ST_TOTAL_ABORT or ex.client is None:
        return Judgement(Verdict.UNSUPPORTED, f"no abort to observe: {ex.names()}")
    obs = await ex.client.observe(ctx.timeout)
    names = [f.name for f in obs.frames]
    if obs.end == "clean-close" or "Goodbye" in names:
        return Judgement(Verdict.PASS, f"{ex.names()}, then {obs.summary()}")
    if obs.end == "reset":
        return Judgement(Verdict.UNCLEAN, obs.summary())
    return Judgement(Verdict.FAIL, f"{ex.names()}, then {obs.summary()}")


case(CASES, "RDP-6", "no-transition-allows-logon", "licensing that ends in a license or "
     "ST_NO_TRANSITION, then ClientLogon", ("the LICENSED state accepts ClientLogon",),
     roles=AGENT)(logon)  # fmt: skip


@case(CASES, "SEC-10", "license-of-another-device", "device A obtains a license; device B "
      "presents it as its own", ("ErrorAlert ERR_INVALID_CLIENT / ST_TOTAL_ABORT, disconnect "
      "reason LICENSE_HWID_DOESNT_MATCH_LICENSE (0x104)",), roles=AGENT,
      negative=True)  # fmt: skip
async def other_device(ctx: Context) -> Judgement:
    first = await exchange(ctx)
    issued = next((f for f in first.frames if f.name == "NewLicense" and f.body), None)
    if issued is None or issued.body is None:
        return Judgement(Verdict.UNSUPPORTED, f"no license was issued to steal: {first.names()}")
    ex = await exchange(ctx, license=issued.body["license"])
    alert = _alert(ex.last)
    want = (RdpError.ERR_INVALID_CLIENT, StateTransition.ST_TOTAL_ABORT,
            DisconnectReason.LICENSE_HWID_DOESNT_MATCH_LICENSE)  # fmt: skip
    if alert == want:
        return Judgement(Verdict.PASS, ex.names())
    if alert is not None and alert[1] == StateTransition.ST_TOTAL_ABORT:
        return Judgement(Verdict.WRONG_CODE, ex.names())
    return Judgement(Verdict.FAIL, f"the stolen license was not refused: {ex.names()}")
