"""Framing and outer-encoding cases (docs/PROTOCOL.md §2, §3): bytes before any signature.

Contract: every case sends one deliberately malformed frame as the first thing the suite's
peer says (for an agent: right after its LicenseRequest greeting) and expects the documented
fatal Error, then the close. A close without the Error is non-strict where the rule allows
closing; a reset is an unclean close; silence is a timeout. Two positive cases check that
frames split across writes, or several in one write, are reassembled.
"""

from __future__ import annotations

import msgpack
from tslic.protocol import ErrorCode
from tslic.protocol.codec import pack
from tslic.protocol.framing import DEFAULT_MAX_FRAME, PREFIX

from .context import Context
from .model import REQUEST_REPLY_ROLES, Case, Judgement, Verdict, case

CASES: list[Case] = []
E = ErrorCode


async def send_bad(
    ctx: Context, data: bytes, codes: set[ErrorCode], *, half_close: bool = False, note: str = ""
) -> Judgement:
    client = await ctx.open_raw()
    await client.send(data, note)
    if half_close:
        await client.half_close()
    return ctx.reject(await client.observe(ctx.timeout), codes)


def _nested(depth: int) -> object:
    value: object = 0
    for _ in range(depth):
        value = [value]
    return value


@case(CASES, "FRAME-2", "zero-length", "a frame whose length prefix is 0",
      ("Error MALFORMED_FRAME (1001), then close", "close (non-strict)"),
      negative=True)  # fmt: skip
async def zero_length(ctx: Context) -> Judgement:
    return await send_bad(ctx, PREFIX.pack(0), {E.MALFORMED_FRAME})


@case(CASES, "FRAME-3", "over-maximum", "a length prefix one byte over the 64 KiB maximum, and "
      "no body", ("Error FRAME_TOO_LARGE (1002) before any body is sent, then close",),
      negative=True)  # fmt: skip
async def over_maximum(ctx: Context) -> Judgement:
    return await send_bad(ctx, PREFIX.pack(DEFAULT_MAX_FRAME + 1), {E.FRAME_TOO_LARGE})


@case(CASES, "FRAME-3", "huge-length", "a length prefix of 2^32-1 and no body",
      ("Error FRAME_TOO_LARGE (1002) at once, then close",), negative=True)  # fmt: skip
async def huge_length(ctx: Context) -> Judgement:
    return await send_bad(ctx, PREFIX.pack(0xFFFFFFFF), {E.FRAME_TOO_LARGE})


@case(CASES, "FRAME-4", "truncated-prefix", "two bytes of a length prefix, then end of stream",
      ("Error MALFORMED_FRAME (1001), then close", "close (non-strict)"),
      negative=True)  # fmt: skip
async def truncated_prefix(ctx: Context) -> Judgement:
    return await send_bad(ctx, b"\x00\x00", {E.MALFORMED_FRAME}, half_close=True)


@case(CASES, "FRAME-4", "eof-mid-frame", "a prefix announcing 100 bytes, 10 of them, then end "
      "of stream", ("Error MALFORMED_FRAME (1001), then close", "close (non-strict)"),
      negative=True)  # fmt: skip
async def eof_mid_frame(ctx: Context) -> Judgement:
    return await send_bad(ctx, PREFIX.pack(100) + bytes(10), {E.MALFORMED_FRAME}, half_close=True)


@case(CASES, "ENV-15", "not-msgpack", "a frame whose body is the never-used msgpack byte 0xc1",
      ("Error BAD_ENCODING (1003), then close",), negative=True)  # fmt: skip
async def not_msgpack(ctx: Context) -> Judgement:
    return await send_bad(ctx, PREFIX.pack(1) + b"\xc1", {E.BAD_ENCODING})


@case(CASES, "ENV-15", "trailing-bytes", "a correctly signed Hello envelope followed, inside the "
      "same frame, by one extra byte", ("Error BAD_ENCODING (1003), then close",),
      negative=True)  # fmt: skip
async def trailing_bytes(ctx: Context) -> Judgement:
    crafter = ctx.crafter()
    body = crafter.envelope(crafter.inner(1, {"name": "x"})) + b"\x00"
    return await send_bad(ctx, crafter.frame(body), {E.BAD_ENCODING})


_SHAPES: list[tuple[str, str, object]] = [
    ("outer-map", "a msgpack map instead of the [sender, inner, signature] array", {"a": 1}),
    ("outer-two-items", "an array of two items", [bytes(32), b"x"]),
    ("outer-int", "a bare integer", 7),
    ("sender-31-bytes", "a sender of 31 bytes", [bytes(31), pack([1]), bytes(64)]),
    ("inner-as-str", "the inner message as a msgpack str, not bin", [bytes(32), "x", bytes(64)]),
]


def _shape_case(slug: str, text: str, value: object) -> None:
    @case(CASES, "ENV-1", slug, f"a frame holding valid msgpack of the wrong shape: {text}",
          ("Error MALFORMED_FRAME (1001), then close",), negative=True)  # fmt: skip
    async def run(ctx: Context) -> Judgement:
        return await send_bad(ctx, ctx.crafter().frame(pack(value)), {E.MALFORMED_FRAME})


for _slug, _text, _value in _SHAPES:
    _shape_case(_slug, _text, _value)


_OUTER_LIMITS: list[tuple[str, str, bytes]] = [
    ("outer-ext-type", "a msgpack ext type (code 5)",
     msgpack.packb([bytes(32), msgpack.ExtType(5, b"abc"), bytes(64)], use_bin_type=True)),
    ("outer-timestamp-ext", "a msgpack timestamp (ext -1)",
     msgpack.packb([bytes(32), msgpack.Timestamp(1, 0), bytes(64)], use_bin_type=True)),
    ("outer-deep-nesting", "an array nested 40 levels deep", pack(_nested(40))),
    ("outer-oversized-array", "an array of 5000 items (limit 4096)", pack(list(range(5000)))),
    ("outer-oversized-map", "a map of 300 entries (limit 256)",
     pack({f"k{i}": i for i in range(300)})),
    ("outer-invalid-utf8", "a str whose bytes are not UTF-8", b"\x93\xa2\xff\xfe\x01\x02"),
]  # fmt: skip


def _limit_case(slug: str, text: str, body: bytes) -> None:
    @case(CASES, "ENV-15", slug, f"a frame body with {text}",
          ("Error BAD_ENCODING (1003), then close",), negative=True)  # fmt: skip
    async def run(ctx: Context) -> Judgement:
        return await send_bad(ctx, ctx.crafter().frame(body), {E.BAD_ENCODING})


for _slug, _text, _body in _OUTER_LIMITS:
    _limit_case(_slug, _text, _body)


@case(CASES, "FRAME-5", "split-writes", "a valid Hello written in three pieces",
      ("Welcome",), roles=REQUEST_REPLY_ROLES)  # fmt: skip
async def split_writes(ctx: Context) -> Judgement:
    client = await ctx.open_raw()
    frame = ctx.crafter().message(ctx.hello())
    for part in (frame[:3], frame[3:20], frame[20:]):
        await client.send(part)
    reply = await client.read_frame(ctx.timeout)
    if reply is not None and reply.name == "Welcome":
        return Judgement(Verdict.PASS, "Welcome")
    return Judgement(Verdict.FAIL, reply.label() if reply else "no reply")


@case(CASES, "FRAME-5", "two-frames-one-write", "a Hello and a request in one TCP write",
      ("Welcome, then the request's reply or refusal",), roles=REQUEST_REPLY_ROLES)  # fmt: skip
async def two_frames(ctx: Context) -> Judgement:
    client = await ctx.open_raw()
    crafter = ctx.crafter()
    await client.send(crafter.message(ctx.hello()) + crafter.message(ctx.simple_request()))
    first = await client.read_frame(ctx.timeout)
    second = await client.read_frame(ctx.timeout)
    actual = ", ".join(f.label() if f else "nothing" for f in (first, second))
    ok = first is not None and first.name == "Welcome" and second is not None
    fatal = second is not None and (second.error_code or 0) // 1000 == 1
    if ok and not fatal:
        return Judgement(Verdict.PASS, actual)
    return Judgement(Verdict.FAIL, actual)
