"""Envelope and message cases (docs/PROTOCOL.md §3, §5): signatures, header, fields, replay,
freshness, sender binding.

Contract: each case sends the role's legal opening message (a Hello, or for an agent a
NewLicenseRequest after the greeting) with exactly one thing wrong, signed correctly unless
the signature is the thing under test, and expects the documented fatal Error then a close.
Field cases change the signed inner bytes, so they test decoding after verification.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Unpack

import msgpack
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.protocol import ErrorCode
from tslic.protocol.codec import pack, to_wire
from tslic.protocol.domain import ClientOS
from tslic.protocol.messages import Message
from tslic.protocol.messages.rdp import NewLicenseRequest
from tslic.protocol.rules import Level

from .context import Context
from .crafter import Crafter, EnvelopeOverrides
from .model import REQUEST_REPLY_ROLES, Case, Judgement, Role, Verdict, case

CASES: list[Case] = []
E = ErrorCode


def opening(ctx: Context) -> Message:
    """The message that legally opens the conversation from the suite's side."""
    if ctx.role is Role.AGENT:
        return NewLicenseRequest(
            platform_id=0x04010000,
            client_random=ctx.rng.randbytes(32),
            user_name="conformance",
            machine_name="CONFORMANCE",
            client_os=ClientOS.XP_PRO,
        )
    return ctx.hello()


async def send_opening(
    ctx: Context,
    codes: set[ErrorCode],
    *,
    body: object = None,
    inner: bytes | None = None,
    crafter: Crafter | None = None,
    close_ok: bool = True,
    **envelope: Unpack[EnvelopeOverrides],
) -> Judgement:
    """Send the opening message with the given parts replaced; judge the rejection."""
    crafter = crafter or ctx.crafter()
    msg = opening(ctx)
    if inner is None:
        inner = crafter.inner(int(msg.TYPE), to_wire(msg) if body is None else body)
    client = await ctx.open_raw()
    await client.send(crafter.frame(crafter.envelope(inner, **envelope)))
    return ctx.reject(await client.observe(ctx.timeout), codes, close_ok=close_ok)


def _body(ctx: Context, **changes: object) -> dict[str, object]:
    body: dict[str, object] = dict(to_wire(opening(ctx)))
    for key, value in changes.items():
        if value is _DROP:
            body.pop(key)
        else:
            body[key] = value
    return body


_DROP = object()


def _text_field(ctx: Context) -> str:
    return "machine_name" if ctx.role is Role.AGENT else "name"


# ---- signature ---------------------------------------------------------------------------


@case(CASES, "ENV-2", "flipped-signature-bit", "the opening message with one bit of its "
      "signature flipped", ("Error BAD_SIGNATURE (1007), then close",), negative=True)  # fmt: skip
async def flipped_bit(ctx: Context) -> Judgement:
    crafter = ctx.crafter()
    msg = opening(ctx)
    inner = crafter.inner(int(msg.TYPE), to_wire(msg))
    good = crafter.key.sign(b"tslic-envelope-v1\x00" + inner)
    bad = bytes([good[0] ^ 0x01]) + good[1:]
    return await send_opening(ctx, {E.BAD_SIGNATURE}, inner=inner, crafter=crafter, signature=bad)


@case(CASES, "ENV-2", "zero-signature", "a signature of 64 zero bytes",
      ("Error BAD_SIGNATURE (1007), then close",), negative=True)  # fmt: skip
async def zero_signature(ctx: Context) -> Judgement:
    return await send_opening(ctx, {E.BAD_SIGNATURE}, signature=bytes(64))


@case(CASES, "ENV-2", "absent-signature", "an empty signature (zero-length bin)",
      ("Error BAD_SIGNATURE (1007), then close",), negative=True)  # fmt: skip
async def absent_signature(ctx: Context) -> Judgement:
    return await send_opening(ctx, {E.BAD_SIGNATURE}, signature=b"")


@case(CASES, "ENV-2", "other-key", "a message claiming one sender key but signed by another "
      "(unknown) key", ("Error BAD_SIGNATURE (1007), then close",), negative=True)  # fmt: skip
async def other_key(ctx: Context) -> Judgement:
    return await send_opening(ctx, {E.BAD_SIGNATURE}, signer=ctx.key())


@case(CASES, "ENV-2", "no-context", "a signature over the inner bytes without the "
      "tslic-envelope-v1 context prefix", ("Error BAD_SIGNATURE (1007), then close",),
      negative=True)  # fmt: skip
async def no_context(ctx: Context) -> Judgement:
    crafter = ctx.crafter()
    msg = opening(ctx)
    inner = crafter.inner(int(msg.TYPE), to_wire(msg))
    sig = crafter.key.sign(inner)
    return await send_opening(ctx, {E.BAD_SIGNATURE}, inner=inner, crafter=crafter, signature=sig)


@case(CASES, "ENV-3", "signed-other-bytes", "a valid signature of different inner bytes "
      "(the body changed after signing)", ("Error BAD_SIGNATURE (1007), then close",),
      negative=True)  # fmt: skip
async def signed_other(ctx: Context) -> Judgement:
    crafter = ctx.crafter()
    msg = opening(ctx)
    inner = crafter.inner(int(msg.TYPE), to_wire(msg))
    sig = crafter.key.sign(b"tslic-envelope-v1\x00" + inner)
    tampered = crafter.inner(int(msg.TYPE), _body(ctx, **{_text_field(ctx): "TAMPERED"}))
    return await send_opening(
        ctx, {E.BAD_SIGNATURE}, inner=tampered, crafter=crafter, signature=sig
    )


# ---- header ------------------------------------------------------------------------------


@case(CASES, "ENV-5", "unsupported-version", "a correctly signed message of protocol version 2",
      ("Error UNSUPPORTED_VERSION (1004), then close",), negative=True)  # fmt: skip
async def bad_version(ctx: Context) -> Judgement:
    crafter = ctx.crafter()
    msg = opening(ctx)
    inner = crafter.inner(int(msg.TYPE), to_wire(msg), version=2)
    return await send_opening(ctx, {E.UNSUPPORTED_VERSION}, inner=inner, crafter=crafter)


@case(CASES, "ENV-4", "header-six-items", "an inner header of six items instead of seven",
      ("Error MALFORMED_FRAME (1001), then close",), negative=True)  # fmt: skip
async def six_items(ctx: Context) -> Judgement:
    crafter = ctx.crafter()
    msg = opening(ctx)
    header = [1, int(msg.TYPE), 1, 0, crafter.nonce(), ctx.now()]
    inner = crafter.inner(0, None, header=header)
    return await send_opening(ctx, {E.MALFORMED_FRAME}, inner=inner, crafter=crafter)


@case(CASES, "ENV-6", "short-nonce", "a nonce of 8 bytes instead of 16",
      ("Error INVALID_FIELD (1006), then close",), negative=True)  # fmt: skip
async def short_nonce(ctx: Context) -> Judgement:
    crafter = ctx.crafter()
    msg = opening(ctx)
    inner = crafter.inner(int(msg.TYPE), to_wire(msg), nonce=bytes(8))
    return await send_opening(ctx, {E.INVALID_FIELD}, inner=inner, crafter=crafter)


@case(CASES, "ENV-6", "negative-msg-id", "a msg_id of -1",
      ("Error INVALID_FIELD (1006), then close",), negative=True)  # fmt: skip
async def negative_id(ctx: Context) -> Judgement:
    crafter = ctx.crafter()
    msg = opening(ctx)
    inner = crafter.inner(int(msg.TYPE), to_wire(msg), msg_id=-1)
    return await send_opening(ctx, {E.INVALID_FIELD}, inner=inner, crafter=crafter)


@case(CASES, "MSG-5", "unknown-type", "a correctly signed message of unknown type 0x7ff",
      ("Error UNKNOWN_MESSAGE_TYPE (1005), then close",), negative=True)  # fmt: skip
async def unknown_type(ctx: Context) -> Judgement:
    crafter = ctx.crafter()
    inner = crafter.inner(0x7FF, to_wire(opening(ctx)))
    return await send_opening(ctx, {E.UNKNOWN_MESSAGE_TYPE}, inner=inner, crafter=crafter)


# ---- fields ------------------------------------------------------------------------------


def _field_case(
    rule: str, slug: str, text: str, code: ErrorCode, make: Callable[[Context], object]
) -> None:
    @case(CASES, rule, slug, f"the opening message with {text}",
          (f"Error {code.name} ({int(code)}), then close",), negative=True)  # fmt: skip
    async def run(ctx: Context) -> Judgement:
        return await send_opening(ctx, {code}, body=make(ctx))


_field_case("MSG-1", "missing-field", "a required field left out", E.INVALID_FIELD,
            lambda ctx: _body(ctx, **{_text_field(ctx): _DROP}))  # fmt: skip
_field_case("MSG-1", "extra-field", "an extra field 'conformance_extra'", E.INVALID_FIELD,
            lambda ctx: _body(ctx, conformance_extra=1))  # fmt: skip
_field_case("MSG-2", "wrong-type", "a str field sent as an integer", E.INVALID_FIELD,
            lambda ctx: _body(ctx, **{_text_field(ctx): 12345}))  # fmt: skip
_field_case("MSG-2", "bool-for-int", "an integer field sent as a boolean", E.INVALID_FIELD,
            lambda ctx: _body(ctx, **{"platform_id" if ctx.role is Role.AGENT else "version":
                                      True}))  # fmt: skip
_field_case("MSG-3", "unknown-enum", "an enumeration field with an unknown value", E.INVALID_FIELD,
            lambda ctx: _body(ctx, **{"client_os" if ctx.role is Role.AGENT else "role":
                                      "no-such-value"}))  # fmt: skip
_field_case("ENV-6", "body-not-map", "a body that is an array, not a map", E.INVALID_FIELD,
            lambda ctx: [1, 2, 3])  # fmt: skip
_field_case("ENV-15", "ext-in-body", "a msgpack ext type as a field value", E.BAD_ENCODING,
            lambda ctx: _body(ctx, **{_text_field(ctx): msgpack.ExtType(7, b"x")}))  # fmt: skip
_field_case("ENV-15", "deep-nesting", "a field nested 40 arrays deep", E.BAD_ENCODING,
            lambda ctx: _body(ctx, conformance_deep=_deep(40)))  # fmt: skip
_field_case("ENV-15", "oversized-array", "an array field of 5000 items", E.BAD_ENCODING,
            lambda ctx: _body(ctx, conformance_big=list(range(5000))))  # fmt: skip
_field_case("ENV-15", "oversized-map", "a map field of 300 entries", E.BAD_ENCODING,
            lambda ctx: _body(ctx, conformance_big={f"k{i}": i for i in range(300)}))  # fmt: skip


def _deep(depth: int) -> object:
    value: object = 0
    for _ in range(depth):
        value = [value]
    return value


@case(CASES, "ENV-15", "invalid-utf8", "a str field whose bytes are not valid UTF-8 (signed)",
      ("Error BAD_ENCODING (1003), then close",), negative=True)  # fmt: skip
async def invalid_utf8(ctx: Context) -> Judgement:
    crafter = ctx.crafter()
    msg = opening(ctx)
    marker = "UTF8MARK"
    inner = crafter.inner(int(msg.TYPE), _body(ctx, **{_text_field(ctx): marker}))
    packed_marker = pack(marker)
    assert packed_marker in inner
    inner = inner.replace(packed_marker, packed_marker[:1] + b"\xff\xfe\xfd\xfc\xc3\x28\xa0\xa1")
    return await send_opening(ctx, {E.BAD_ENCODING}, inner=inner, crafter=crafter)


# ---- freshness and replay ----------------------------------------------------------------


@case(CASES, "ENV-10", "stale-timestamp", "the opening message stamped two freshness windows "
      "in the past", ("Error STALE_TIMESTAMP (1009), then close",), negative=True)  # fmt: skip
async def stale(ctx: Context) -> Judgement:
    crafter = ctx.crafter()
    msg = opening(ctx)
    stamp = ctx.now() - 2 * ctx.config.window_ms - 60_000
    inner = crafter.inner(int(msg.TYPE), to_wire(msg), timestamp=max(0, stamp))
    return await send_opening(ctx, {E.STALE_TIMESTAMP}, inner=inner, crafter=crafter)


@case(CASES, "ENV-10", "future-timestamp", "the opening message stamped two freshness windows "
      "in the future", ("Error FUTURE_TIMESTAMP (1010), then close",), negative=True)  # fmt: skip
async def future(ctx: Context) -> Judgement:
    crafter = ctx.crafter()
    msg = opening(ctx)
    stamp = ctx.now() + 2 * ctx.config.window_ms + 60_000
    inner = crafter.inner(int(msg.TYPE), to_wire(msg), timestamp=stamp)
    return await send_opening(ctx, {E.FUTURE_TIMESTAMP}, inner=inner, crafter=crafter)


@case(CASES, "ENV-11", "replay-same-connection", "the opening frame sent twice on one "
      "connection (same sender, same nonce)", ("Error REPLAYED_MESSAGE (1008), then close",),
      negative=True)  # fmt: skip
async def replay_same(ctx: Context) -> Judgement:
    crafter = ctx.crafter()
    frame = crafter.message(opening(ctx))
    client = await ctx.open_raw()
    await client.send(frame, "original")
    await client.send(frame, "replay")
    return ctx.reject(await client.observe(ctx.timeout), {E.REPLAYED_MESSAGE})


# ENV-11 across connections, for every role: cases_replay.py.


@case(CASES, "ENV-13", "sender-switch", "after the Welcome, a request signed (correctly) by a "
      "different key than the Hello", ("Error WRONG_SENDER (1012), then close",),
      roles=REQUEST_REPLY_ROLES, negative=True)  # fmt: skip
async def sender_switch(ctx: Context) -> Judgement:
    client = await ctx.open_raw()
    welcome = await ctx.handshake(client, ctx.crafter())
    if welcome is None or welcome.name != "Welcome":
        return Judgement(Verdict.FAIL, "Hello not welcomed: "
                         + (welcome.label() if welcome else "no reply"))  # fmt: skip
    intruder = ctx.crafter(Ed25519PrivateKey.from_private_bytes(ctx.rng.randbytes(32)))
    await client.send(intruder.message(ctx.simple_request()), "request by another key")
    return ctx.reject(await client.observe(ctx.timeout), {E.WRONG_SENDER})


@case(CASES, "ERR-1", "fatal-error-closes", "a frame of length zero after the handshake: the "
      "target must send its fatal Error and then close the connection",
      ("Error MALFORMED_FRAME (1001) followed by the close",), negative=True)  # fmt: skip
async def fatal_closes(ctx: Context) -> Judgement:
    client = await ctx.open_raw()
    if ctx.role is not Role.AGENT:
        welcome = await ctx.handshake(client, ctx.crafter())
        if welcome is None or welcome.name != "Welcome":
            return Judgement(Verdict.FAIL, "Hello not welcomed")
    await client.send(b"\x00\x00\x00\x00")
    obs = await client.observe(ctx.timeout)
    judgement = ctx.reject(obs, {E.MALFORMED_FRAME}, close_ok=False)
    if judgement.verdict is Verdict.NON_STRICT:  # the Error came, but no close
        judgement.verdict = Verdict.FAIL
    return judgement


case(CASES, "STATE-9", "fatal-error-closes", "a frame of length zero after the handshake",
     ("one fatal Error MALFORMED_FRAME (1001), then the close",),
     negative=True)(fatal_closes)  # fmt: skip
case(CASES, "ERR-3", "error-before-close", "a frame of length zero after the handshake",
     ("the fatal Error MALFORMED_FRAME (1001) before the close",), level=Level.SHOULD,
     negative=True)(fatal_closes)  # fmt: skip
