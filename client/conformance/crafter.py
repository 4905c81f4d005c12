"""Frames for black-box probes, right or deliberately wrong.

Contract: `Crafter` builds frames for one simulated peer with the real framing, envelope and
codec functions, and exposes every knob a probe needs (key, claimed sender, nonce, timestamp,
version, type, body, signature) so that one field at a time can be made wrong. It validates
nothing it is given: a wrong type, an oversized length or a bad signature goes out as asked.
`HeaderOverrides` and `EnvelopeOverrides` name the knobs, for the cases' keyword arguments.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TypedDict, Unpack

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.protocol.codec import pack, to_wire
from tslic.protocol.connection import raw_public
from tslic.protocol.envelope import PROTOCOL_VERSION, SIGNATURE_CONTEXT
from tslic.protocol.framing import PREFIX
from tslic.protocol.messages import Message


class HeaderOverrides(TypedDict, total=False):
    """Inner-header fields a case may set to anything (wrong types included), or `header`:
    the whole inner array, sent as given."""

    version: object
    nonce: object
    timestamp: object
    msg_id: object
    reply_to: object
    header: list[object] | None


class EnvelopeOverrides(TypedDict, total=False):
    """`Crafter.envelope`'s optional parts: who signs, the sender key sent, the signature."""

    signer: Ed25519PrivateKey | None
    sender: bytes | None
    signature: bytes | None


class Crafter:
    """Builds frames, right or deliberately wrong, for one simulated peer."""

    def __init__(
        self, *, key: Ed25519PrivateKey, rng: random.Random, now: Callable[[], int]
    ) -> None:
        self.key = key
        self.sender = raw_public(key)
        self.rng = rng
        self.now = now
        self.msg_id = 0

    def nonce(self) -> bytes:
        return self.rng.randbytes(16)

    def inner(
        self,
        type_: int,
        body: object,
        *,
        version: object = PROTOCOL_VERSION,
        nonce: object = None,
        timestamp: object = None,
        msg_id: object = None,
        reply_to: object = 0,
        header: list[object] | None = None,
    ) -> bytes:
        if header is None:
            self.msg_id += 1
            header = [
                version,
                type_,
                self.msg_id if msg_id is None else msg_id,
                reply_to,
                self.nonce() if nonce is None else nonce,
                self.now() if timestamp is None else timestamp,
                body,
            ]
        return pack(header)

    def envelope(
        self,
        inner: bytes,
        *,
        signer: Ed25519PrivateKey | None = None,
        sender: bytes | None = None,
        signature: bytes | None = None,
    ) -> bytes:
        """The frame body [sender, inner, signature], signed by `signer` (default our key)."""
        if signature is None:
            signature = (signer or self.key).sign(SIGNATURE_CONTEXT + inner)
        return pack([self.sender if sender is None else sender, inner, signature])

    def frame(self, body: bytes) -> bytes:
        """Length-prefix a body without any size check (so bad sizes can be sent)."""
        return PREFIX.pack(len(body)) + body

    def message(self, msg: Message, **header: Unpack[HeaderOverrides]) -> bytes:
        """A correct, signed frame of `msg` (header fields may be overridden)."""
        return self.raw(int(msg.TYPE), to_wire(msg), **header)

    def raw(self, type_: int, body: object, **header: Unpack[HeaderOverrides]) -> bytes:
        """A signed frame of any type and body (no validation of either)."""
        return self.frame(self.envelope(self.inner(type_, body, **header)))
