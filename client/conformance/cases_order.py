"""The order of checks, conversations on a connection, the target as a client, its encoding
and its clock source (docs/PROTOCOL.md ENV-14, STATE-1, STATE-4, ENV-16, CLOCK-1).

Contract:
- ENV-14: each case sends one frame with two faults that §3.5 checks at different steps and
  expects the code of the earlier step; the later step's code is `fail` (the order is the
  rule), any other code `wrong-error-code`.
- STATE-1: a Hello after a conversation is open on the connection (of another conversation,
  or on an agent's `rdp` connection), and a Welcome from the side that opened the connection,
  are refused ILLEGAL_STATE and the connection closed (the rule's observable consequence,
  §6.1).
- STATE-4: the suite's doubles of the target's peers (watch.py) see whether the target, as a
  client, ever sent a request before the last was answered; an agent is first made to ask its
  license server for a new client's license. Without `--manifest` it is `unsupported`.
- ENV-16 (SHOULD): the target's frames are re-encoded with the shortest msgpack encoding and
  their body fields compared with the order of the message's table; any difference fails.
- CLOCK-1: the target's time (its Welcome, or an agent's greeting) is the time of the clock
  file it was started with (`--clock-file`, a day's tolerance at most); without one the case
  is `unsupported`, and when the file's time is within a day of real time it cannot tell the
  two sources apart (`informational`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypedDict

from tslic.protocol import Conversation, ErrorCode
from tslic.protocol.codec import to_wire
from tslic.protocol.domain import PeerRole
from tslic.protocol.framing import DEFAULT_MAX_FRAME, PREFIX
from tslic.protocol.messages import REGISTRY, Hello, Welcome
from tslic.protocol.states import REQUESTED, START

from .cases_envelope import opening
from .cases_state import illegal_messages
from .context import Context
from .model import REQUEST_REPLY_ROLES, Case, Judgement, Role, Verdict, case
from .samples import sample
from .wire import Observation

CASES: list[Case] = []
E = ErrorCode
AG, LS = Role.AGENT, Role.LICENSE_SERVER
DAY = 86_400_000
UNKNOWN_TYPE = 0x7FF


def _stale(ctx: Context) -> int:
    return max(0, ctx.now() - 2 * ctx.config.window_ms - 60_000)


def _wrong_type(body: Mapping[str, object]) -> dict[str, object]:
    """`body` with its first text or integer field of the wrong type (MSG-2: INVALID_FIELD)."""
    for key, value in body.items():
        if isinstance(value, str):
            return {**body, key: 12345}
        if isinstance(value, int) and not isinstance(value, bool):
            return {**body, key: "conformance"}
    return {**body, "conformance_extra": 1}


class _Probe(TypedDict):
    """`_frame`'s type and body for a crafted message."""

    type_: int
    body: dict[str, object]


def _bad_and_illegal(ctx: Context) -> _Probe:
    """A client message illegal in the state the suite is in, with a field of the wrong type."""
    state = START if ctx.role is not AG else REQUESTED
    if ctx.role is not AG:
        msg = ctx.simple_request()
    else:
        own = [m for m in illegal_messages(Conversation.RDP, state)
               if Conversation.RDP in m.CONVERSATIONS and to_wire(m)]  # fmt: skip
        msg = own[0]
    return {"type_": int(msg.TYPE), "body": _wrong_type(to_wire(msg))}


def _foreign_bad(ctx: Context) -> _Probe:
    """A message of another conversation than the target's, with a field of the wrong type."""
    other = Conversation.LICENSING if ctx.conversation is not Conversation.LICENSING else (
        Conversation.DIRECTORY)  # fmt: skip
    cls = next(c for c in REGISTRY.values() if frozenset({other}) == c.CONVERSATIONS)
    return {"type_": int(cls.TYPE), "body": _wrong_type(to_wire(sample(cls)))}


def _frame(ctx: Context, version: int = 1, timestamp: int | None = None, type_: int | None = None,
           body: object = None, signature: bytes | None = None) -> bytes:  # fmt: skip
    crafter = ctx.crafter()
    msg = opening(ctx)
    inner = crafter.inner(int(msg.TYPE) if type_ is None else type_,
                          to_wire(msg) if body is None else body, version=version,
                          timestamp=timestamp)  # fmt: skip
    return crafter.frame(crafter.envelope(inner, signature=signature))


_COMBOS: list[tuple[str, str, Callable[[Context], bytes], ErrorCode, ErrorCode]] = [
    ("oversize-and-garbage", "a length prefix over the limit followed by bytes that are not "
     "msgpack", lambda ctx: PREFIX.pack(DEFAULT_MAX_FRAME + 1) + b"\xc1" * 64,
     E.FRAME_TOO_LARGE, E.BAD_ENCODING),
    ("bad-signature-and-version", "a frame of protocol version 2 whose signature is 64 zero "
     "bytes", lambda ctx: _frame(ctx, version=2, signature=bytes(64)),
     E.BAD_SIGNATURE, E.UNSUPPORTED_VERSION),
    ("bad-signature-and-stale", "a stale timestamp and a signature of 64 zero bytes",
     lambda ctx: _frame(ctx, timestamp=_stale(ctx), signature=bytes(64)),
     E.BAD_SIGNATURE, E.STALE_TIMESTAMP),
    ("bad-version-and-stale", "protocol version 2 and a stale timestamp, correctly signed",
     lambda ctx: _frame(ctx, version=2, timestamp=_stale(ctx)),
     E.UNSUPPORTED_VERSION, E.STALE_TIMESTAMP),
    ("stale-and-unknown-type", "a stale timestamp on a message type not in the catalogue",
     lambda ctx: _frame(ctx, timestamp=_stale(ctx), type_=UNKNOWN_TYPE),
     E.STALE_TIMESTAMP, E.UNKNOWN_MESSAGE_TYPE),
    ("body-not-map-and-unknown-type", "a type not in the catalogue whose body is an array, "
     "not a map (a header field of the wrong type, step 6)",
     lambda ctx: _frame(ctx, type_=UNKNOWN_TYPE, body=[1, 2, 3]),
     E.INVALID_FIELD, E.UNKNOWN_MESSAGE_TYPE),
    ("foreign-type-and-bad-field", "another conversation's message with a field of the wrong "
     "type", lambda ctx: _frame(ctx, **_foreign_bad(ctx)), E.ILLEGAL_STATE, E.INVALID_FIELD),
    ("bad-field-and-illegal-state", "as the first message, a message illegal in that state "
     "with a field of the wrong type", lambda ctx: _frame(ctx, **_bad_and_illegal(ctx)),
     E.INVALID_FIELD, E.ILLEGAL_STATE),
]  # fmt: skip


def judge_order(obs: Observation, first: ErrorCode, later: ErrorCode) -> Judgement:
    err = obs.first_error
    code = err.error_code if err is not None else None
    if code == int(later):
        return Judgement(Verdict.FAIL, f"{obs.summary()}: the code of a later check (expected "
                         f"{first.name}, checked first)", obs.first_reply)  # fmt: skip
    if code == int(first):
        return Judgement(Verdict.PASS, obs.summary(), obs.first_reply)
    if err is None and obs.frames:
        return Judgement(Verdict.FAIL, f"accepted the frame: {obs.summary()}", obs.first_reply)
    if err is None and not obs.frames and obs.end != "open":
        return Judgement(Verdict.FAIL, f"{obs.summary()} without an Error (expected "
                         f"{first.name})", obs.first_reply)  # fmt: skip
    verdict = Verdict.TIMEOUT if err is None and obs.end == "open" else Verdict.WRONG_CODE
    return Judgement(verdict, f"{obs.summary()} (expected {first.name})", obs.first_reply)


def _order_case(
    slug: str, what: str, build: Callable[[Context], bytes], first: ErrorCode, later: ErrorCode
) -> None:
    @case(CASES, "ENV-14", slug, what, (f"Error {first.name} ({int(first)}) (not "
          f"{later.name}), then close",), negative=True)  # fmt: skip
    async def run(ctx: Context) -> Judgement:
        client = await ctx.open_raw()
        await client.send(build(ctx), slug)
        return judge_order(await client.observe(ctx.timeout), first, later)


for _combo in _COMBOS:
    _order_case(*_combo)


# ---- STATE-1 -------------------------------------------------------------------------------


def _other_conversation(ctx: Context) -> Conversation:
    return Conversation.DIRECTORY if ctx.conversation is not Conversation.DIRECTORY else (
        Conversation.LICENSING)  # fmt: skip


@case(CASES, "STATE-1", "second-conversation", "after the Welcome and one answered request, a "
      "Hello opening another conversation on the same connection", ("Error ILLEGAL_STATE "
      "(1011), then close",), roles=REQUEST_REPLY_ROLES, negative=True)  # fmt: skip
async def second_conversation(ctx: Context) -> Judgement:
    client = await ctx.open_raw()
    crafter = ctx.crafter()
    welcome = await ctx.handshake(client, crafter)
    if welcome is None or welcome.name != "Welcome":
        return Judgement(Verdict.FAIL, f"no Welcome: {welcome.label() if welcome else 'nothing'}")
    await client.send(crafter.message(ctx.simple_request()), "request")
    if await client.read_frame(ctx.timeout) is None:
        return Judgement(Verdict.FAIL, "the request was not answered")
    other = ctx.hello(conversation=_other_conversation(ctx))
    await client.send(crafter.message(other), "second Hello")
    return ctx.reject(await client.observe(ctx.timeout), {E.ILLEGAL_STATE}, close_ok=False)


@case(CASES, "STATE-1", "opener-is-client", "on a connection the suite opened, the suite "
      "speaks as the server: a Welcome first", ("Error ILLEGAL_STATE (1011), then close",),
      roles=REQUEST_REPLY_ROLES, negative=True)  # fmt: skip
async def opener_is_client(ctx: Context) -> Judgement:
    client = await ctx.open_raw()
    welcome = Welcome(role=PeerRole.LICENSE_SERVER, name="CONFORMANCE", version=2003,
                      server_time=ctx.now())  # fmt: skip
    await client.send(ctx.crafter().message(welcome), "Welcome")
    return ctx.reject(await client.observe(ctx.timeout), {E.ILLEGAL_STATE}, close_ok=False)


@case(CASES, "STATE-1", "hello-on-rdp", "after the agent's LicenseRequest greeting, a Hello "
      "opening a licensing conversation on the same connection", ("Error ILLEGAL_STATE "
      "(1011), then close",), roles=frozenset({AG}), negative=True)  # fmt: skip
async def hello_on_rdp(ctx: Context) -> Judgement:
    client = await ctx.open_raw()
    if ctx.greeting is None or ctx.greeting.name != "LicenseRequest":
        label = ctx.greeting.label() if ctx.greeting else "nothing"
        return Judgement(Verdict.FAIL, f"no LicenseRequest greeting: {label}")
    hello = Hello(role=PeerRole.TERMINAL_SERVER, name="CONFORMANCE", version=2003,
                  conversation=Conversation.LICENSING)  # fmt: skip
    await client.send(ctx.crafter().message(hello), "Hello")
    return ctx.reject(await client.observe(ctx.timeout), {E.ILLEGAL_STATE}, close_ok=False)
