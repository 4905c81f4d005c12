"""Cases that judge the target's own frames (docs/PROTOCOL.md §2, §3, §5): what it sends must
keep the rules it enforces.

Contract: the suite holds one well-behaved conversation (Hello, two requests; for an agent the
LicenseRequest greeting of two connections), keeps the raw bytes, and checks the framing, the
envelope header (fresh 16-byte nonces, msg_id counting 1, 2, 3, reply_to naming our last
message), the Welcome fields, Error codes and certificate chains of every frame it received.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from tslic.protocol import ErrorCode, TslicError
from tslic.protocol.codec import Unvalidated, unpack_untrusted
from tslic.protocol.framing import DEFAULT_MAX_FRAME, PREFIX

from .context import Context
from .model import REQUEST_REPLY_ROLES, Case, Judgement, Role, Verdict, case

CASES: list[Case] = []


@dataclass(slots=True)
class Seen:
    raw: bytes = b""  # every byte the target sent, in order
    headers: list[list[Unvalidated]] = field(default_factory=list)  # inner headers, decoded
    bodies: list[dict[str, Unvalidated]] = field(default_factory=list)
    our_ids: list[int] = field(default_factory=list)  # msg_ids we sent
    problems: list[str] = field(default_factory=list)


async def _conversation(ctx: Context) -> Seen:
    seen = Seen()
    count = 2 if ctx.role is Role.AGENT else 1
    for _ in range(count):
        client = await ctx.open_raw()
        crafter = ctx.crafter()
        if ctx.role is not Role.AGENT:
            await client.send(crafter.message(ctx.hello()))
            seen.our_ids.append(crafter.msg_id)
            await client.read_frame(ctx.timeout)
            for _ in range(2):
                await client.send(crafter.message(ctx.simple_request()))
                seen.our_ids.append(crafter.msg_id)
                await client.read_frame(ctx.timeout)
        seen.raw += b"".join(c.data for c in client.transcript.chunks if c.direction == "in")
    _split(seen)
    return seen


def _split(seen: Seen) -> None:
    data = seen.raw
    while data:
        if len(data) < PREFIX.size:
            seen.problems.append(f"{len(data)} stray bytes after the last frame")
            return
        (length,) = PREFIX.unpack_from(data)
        body = data[PREFIX.size : PREFIX.size + length]
        if length == 0 or length > DEFAULT_MAX_FRAME or len(body) < length:
            seen.problems.append(f"a frame announcing {length} bytes ({len(body)} present)")
            return
        data = data[PREFIX.size + length :]
        try:
            outer = unpack_untrusted(body)
            header = unpack_untrusted(outer[1])
        except (TslicError, IndexError, TypeError, KeyError) as exc:
            seen.problems.append(f"an undecodable frame: {exc}")
            continue
        seen.headers.append(header)
        seen.bodies.append(header[6] if isinstance(header[6], dict) else {})


def _verdict(seen: Seen, problems: list[str], ok: str) -> Judgement:
    if not seen.headers:
        return Judgement(Verdict.TIMEOUT, "the target sent no frame")
    if problems:
        return Judgement(Verdict.FAIL, "; ".join(problems))
    return Judgement(Verdict.PASS, ok)


@case(
    CASES,
    "FRAME-1",
    "target-framing",
    "a well-behaved conversation; the target's bytes are split into frames",
    ("every frame a 4-byte big-endian length and exactly that many bytes",),
)
async def target_framing(ctx: Context) -> Judgement:  # fmt: skip
    seen = await _conversation(ctx)
    return _verdict(seen, seen.problems, f"{len(seen.headers)} well-formed frames")


@case(CASES, "FRAME-6", "target-frame-sizes", "the sizes of the target's frames",
      ("every frame body 1 to 65 536 bytes",))  # fmt: skip
async def target_sizes(ctx: Context) -> Judgement:
    seen = await _conversation(ctx)
    bad = [p for p in seen.problems if "announcing" in p]
    return _verdict(seen, bad, f"{len(seen.headers)} frames within 1..{DEFAULT_MAX_FRAME} bytes")


@case(CASES, "ENV-7", "target-fresh-nonces", "the nonces of the target's frames",
      ("16 bytes each, no two alike",))  # fmt: skip
async def target_nonces(ctx: Context) -> Judgement:
    seen = await _conversation(ctx)
    nonces = [h[4] for h in seen.headers]
    problems = [f"a nonce of {len(n)} bytes" for n in nonces if len(n) != 16]
    if len(set(nonces)) != len(nonces):
        problems.append("a nonce was repeated")
    return _verdict(seen, problems, f"{len(nonces)} distinct 16-byte nonces")


@case(CASES, "ENV-8", "target-numbering", "msg_id and reply_to of the target's frames in one "
      "conversation", ("msg_id 1, 2, 3 … and reply_to = the msg_id of our last message",),
      roles=REQUEST_REPLY_ROLES)  # fmt: skip
async def target_numbering(ctx: Context) -> Judgement:
    seen = await _conversation(ctx)
    ids = [h[2] for h in seen.headers]
    replies = [h[3] for h in seen.headers]
    problems = []
    if ids != list(range(1, len(ids) + 1)):
        problems.append(f"msg_ids {ids}")
    if replies != seen.our_ids[: len(replies)]:
        problems.append(f"reply_to {replies} for our msg_ids {seen.our_ids}")
    return _verdict(seen, problems, f"msg_id {ids}, reply_to {replies}")


@case(CASES, "MSG-8", "target-error-codes", "the codes of every Error the target sends during a "
      "well-behaved conversation", ("codes from the documented table only",))  # fmt: skip
async def target_codes(ctx: Context) -> Judgement:
    seen = await _conversation(ctx)
    known = {int(c) for c in ErrorCode}
    codes = [b.get("code") for h, b in zip(seen.headers, seen.bodies, strict=True) if h[1] == 3]
    problems = [f"unknown code {c!r}" for c in codes if c not in known]
    return _verdict(seen, problems, f"Error codes seen: {codes or 'none'}")


@case(CASES, "MSG-9", "target-welcome", "the Welcome the target answers our Hello with",
      ("name 1 to 64 characters; version 2000/2003 for a license server, 0 otherwise",),
      roles=REQUEST_REPLY_ROLES)  # fmt: skip
async def target_welcome(ctx: Context) -> Judgement:
    seen = await _conversation(ctx)
    welcome = next((b for h, b in zip(seen.headers, seen.bodies, strict=True) if h[1] == 2), None)
    if welcome is None:
        return Judgement(Verdict.FAIL, "no Welcome")
    problems = []
    name, version = welcome.get("name", ""), welcome.get("version")
    if not (isinstance(name, str) and 1 <= len(name) <= 64):
        problems.append(f"name {name!r}")
    allowed = (2000, 2003) if ctx.role is Role.LICENSE_SERVER else (0,)
    if version not in allowed:
        problems.append(f"version {version!r} (expected one of {allowed})")
    return _verdict(seen, problems, f"Welcome name {name!r} version {version}")


@case(CASES, "MSG-7", "target-chain-order", "the certificate chain in the target's Welcome or "
      "LicenseRequest", ("DER certificates, root (or the temporary license server) first, the "
      "holder's own last, each issued by the one before",))  # fmt: skip
async def target_chain(ctx: Context) -> Judgement:
    from cryptography import x509
    from tslic.protocol.pki import cert_from_der

    seen = await _conversation(ctx)
    chains: list[list[bytes]] = [list(b["cert_chain"]) for b in seen.bodies if b.get("cert_chain")]
    if not chains:
        return Judgement(Verdict.INFORMATIONAL, "the target presented no certificate chain")
    problems = []
    for chain in chains:
        try:
            certs: list[x509.Certificate] = [cert_from_der(c) for c in chain]
        except TslicError as exc:
            problems.append(f"unreadable certificate: {exc}")
            continue
        for parent, child in itertools.pairwise(certs):
            if child.issuer != parent.subject:
                problems.append(f"{child.subject.rfc4514_string()} does not follow its issuer")
        if certs and certs[0].issuer != certs[0].subject:
            problems.append("the first certificate is not self-signed (root first)")
    return _verdict(seen, problems, f"{len(chains)} chain(s) in root-first order")
