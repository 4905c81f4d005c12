"""The signed envelope every frame carries, and replay/freshness checks.

Contract (docs/PROTOCOL.md §3):
- Frame body = msgpack array `[sender, inner, signature]`: `sender` is the signer's raw 32-byte
  Ed25519 public key, `inner` is a msgpack *bin* holding the serialized inner message, and
  `signature` is the 64-byte Ed25519 signature of `SIGNATURE_CONTEXT + inner`.
- The signature is checked over the exact received `inner` bytes before they are decoded;
  nothing is ever re-encoded in order to verify it.
- Inner = msgpack array `[version, type, msg_id, reply_to, nonce, timestamp, body]`.
- Freshness and replay are judged against a `now` the caller passes (virtual milliseconds) and
  a window the caller chooses; `ReplayGuard` remembers (sender, nonce) pairs only as long as
  the window makes them acceptable, so its memory is bounded by the message rate.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .clock import format_date
from .codec import Unvalidated, pack, unpack_untrusted
from .errors import ErrorCode, RemoteProtocolError

PROTOCOL_VERSION = 1
SIGNATURE_CONTEXT = b"tslic-envelope-v1\x00"
NONCE_LEN = 16
KEY_LEN = 32
SIG_LEN = 64
DEFAULT_WINDOW_MS = 300_000
"""Default freshness window: 300 s either side (Kerberos' customary skew). Daemons on a fast
virtual clock scale it by the clock's speed (`window_for_speed`), so it always spans 300 real
seconds."""


def window_for_speed(speed: float, real_ms: int = DEFAULT_WINDOW_MS) -> int:
    """The freshness window in virtual ms for a clock running `speed` times real time, so
    that it spans `real_ms` real milliseconds (never less than `real_ms` virtual ones)."""
    return int(real_ms * max(1.0, speed))


@dataclass(frozen=True, slots=True)
class Sealed:
    """A verified, decoded envelope: the header fields and the still-untyped body map."""

    sender: bytes
    version: int
    type: int
    msg_id: int
    reply_to: int
    nonce: bytes
    timestamp: int
    body: dict[str, Unvalidated]  # decoded, not yet checked against the message's schema
    inner: bytes  # the exact signed bytes, for transcripts and evidence bundles


def seal(
    key: Ed25519PrivateKey,
    sender: bytes,
    *,
    type_: int,
    msg_id: int,
    reply_to: int,
    nonce: bytes,
    timestamp: int,
    body: Mapping[str, object],
    version: int = PROTOCOL_VERSION,
) -> bytes:
    """Serialize and sign one message; return the frame body (without the length prefix).

    `sender` is `key`'s raw public key, passed in so callers compute it once per connection.
    """
    inner = pack([version, type_, msg_id, reply_to, nonce, timestamp, body])
    signature = key.sign(SIGNATURE_CONTEXT + inner)
    return pack([sender, inner, signature])


_KEY_CACHE: OrderedDict[bytes, Ed25519PublicKey] = OrderedDict()
_KEY_CACHE_SIZE = 4096


def public_key(raw: bytes) -> Ed25519PublicKey:
    """Load a raw Ed25519 public key, caching recent ones (loading costs a point decode).

    Raises:
        RemoteProtocolError: BAD_SIGNATURE if the bytes are not a valid public key.
    """
    cached = _KEY_CACHE.get(raw)
    if cached is not None:
        _KEY_CACHE.move_to_end(raw)
        return cached
    try:
        loaded = Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise RemoteProtocolError(
            "sender is not a valid Ed25519 public key", code=ErrorCode.BAD_SIGNATURE
        ) from None
    _KEY_CACHE[raw] = loaded
    if len(_KEY_CACHE) > _KEY_CACHE_SIZE:
        _KEY_CACHE.popitem(last=False)
    return loaded


def open_envelope(frame_body: bytes) -> Sealed:
    """Check the outer shape and the signature, then decode the inner header.

    Raises:
        RemoteProtocolError: BAD_ENCODING, MALFORMED_FRAME, BAD_SIGNATURE,
            UNSUPPORTED_VERSION or INVALID_FIELD; never anything else.
    """
    outer = unpack_untrusted(frame_body)
    if not (isinstance(outer, list) and len(outer) == 3):
        raise RemoteProtocolError(
            "frame body must be an array [sender, inner, signature]",
            code=ErrorCode.MALFORMED_FRAME,
        )
    sender, inner, signature = outer
    if not (type(sender) is bytes and len(sender) == KEY_LEN):
        raise RemoteProtocolError(
            "envelope sender must be a 32-byte Ed25519 public key", code=ErrorCode.MALFORMED_FRAME
        )
    if type(inner) is not bytes or not inner:
        # An empty inner is a shape fault (§3.1: bin of at least 1 byte), judged before the
        # signature like the rest of the outer shape, not a decoding one (ENV-1).
        raise RemoteProtocolError(
            "envelope inner must be a non-empty bin", code=ErrorCode.MALFORMED_FRAME
        )
    if not (type(signature) is bytes and len(signature) == SIG_LEN):
        raise RemoteProtocolError(
            "envelope signature must be 64 bytes", code=ErrorCode.BAD_SIGNATURE
        )
    try:
        public_key(sender).verify(signature, SIGNATURE_CONTEXT + inner)
    except InvalidSignature:
        raise RemoteProtocolError(
            "signature does not verify with the sender's key", code=ErrorCode.BAD_SIGNATURE
        ) from None
    header = unpack_untrusted(inner)
    if not (isinstance(header, list) and len(header) == 7):
        raise RemoteProtocolError(
            "inner message must be an array of 7 items", code=ErrorCode.MALFORMED_FRAME
        )
    version, type_, msg_id, reply_to, nonce, timestamp, body = header
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise RemoteProtocolError(
            f"protocol version {version!r} is not supported (this peer speaks {PROTOCOL_VERSION})",
            code=ErrorCode.UNSUPPORTED_VERSION,
        )
    for name, value in (("type", type_), ("msg_id", msg_id), ("reply_to", reply_to)):
        if type(value) is not int or not 0 <= value < 2**63:
            raise RemoteProtocolError(
                f"header field '{name}' must be a non-negative integer",
                code=ErrorCode.INVALID_FIELD,
            )
    if type(timestamp) is not int or not 0 <= timestamp < 2**63:
        raise RemoteProtocolError(
            "header field 'timestamp' must be a non-negative integer", code=ErrorCode.INVALID_FIELD
        )
    if not (type(nonce) is bytes and len(nonce) == NONCE_LEN):
        raise RemoteProtocolError("nonce must be 16 bytes", code=ErrorCode.INVALID_FIELD)
    if not isinstance(body, dict):
        raise RemoteProtocolError("message body must be a map", code=ErrorCode.INVALID_FIELD)
    return Sealed(sender, version, type_, msg_id, reply_to, nonce, timestamp, body, inner)


CLOCK_HINT = "give this deployment's clock (--clock-file FILE or TSLIC_CLOCK_FILE)"


def check_freshness(
    timestamp: int, now: int, window: int = DEFAULT_WINDOW_MS, *, also: Sequence[int] = ()
) -> None:
    """Refuse a timestamp more than `window` ms before or after `now` (and every reading in
    `also`: the receiver's clock just before a change of its shared clock, CLOCK-3).

    The refusal says both times as dates and what a peer on the wrong clock should pass
    (CLOCK-4), so a person reading it knows which clock is wrong.

    Raises:
        RemoteProtocolError: STALE_TIMESTAMP or FUTURE_TIMESTAMP.
    """
    if abs(timestamp - now) <= window or any(abs(timestamp - t) <= window for t in also):
        return
    code = ErrorCode.STALE_TIMESTAMP if timestamp < now else ErrorCode.FUTURE_TIMESTAMP
    gap = abs(now - timestamp) // 1000
    span = f"{gap} s" if gap < 86_400 else f"{gap} s ({gap // 86_400} days)"
    where = "before" if timestamp < now else "after"
    raise RemoteProtocolError(
        f"the peer's timestamp {format_date(timestamp)} is {span} {where} this side's clock "
        f"{format_date(now)} (window {window // 1000} s): the two follow different clocks; "
        f"{CLOCK_HINT}",
        code=code,
        detail={"timestamp": str(timestamp), "now": str(now)},
    )


class ReplayGuard:
    """Remembers (sender, nonce) pairs seen within the freshness window.

    Entries are dropped once their timestamp has left the window: a replay of such a message
    is then refused as stale instead, so nothing is lost by forgetting it. `capacity` is a
    hard ceiling for a flood within one window; beyond it the oldest entries go first.
    """

    __slots__ = ("_seen", "capacity", "window")

    def __init__(self, *, window: int = DEFAULT_WINDOW_MS, capacity: int = 1_000_000) -> None:
        self.window = window
        self.capacity = capacity
        self._seen: OrderedDict[tuple[bytes, bytes], int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def check(
        self, sender: bytes, nonce: bytes, timestamp: int, now: int, *, also: Sequence[int] = ()
    ) -> None:
        """Judge one message's freshness and novelty, and remember it. `also`: readings of
        the receiver's clock before a change of its shared clock (CLOCK-3); entries are kept
        until they are old for every one of them, so a message accepted under the clock just
        left cannot be replayed while that clock is still accepted.

        Raises:
            RemoteProtocolError: STALE_TIMESTAMP, FUTURE_TIMESTAMP or REPLAYED_MESSAGE.
        """
        check_freshness(timestamp, now, self.window, also=also)
        self._expire(min(now, *also) if also else now)
        key = (sender, nonce)
        if key in self._seen:
            raise RemoteProtocolError(
                "this nonce was already used by this sender (replay)",
                code=ErrorCode.REPLAYED_MESSAGE,
            )
        # Remember until the message would be refused as stale anyway.
        self._seen[key] = max(timestamp, now)
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)

    def _expire(self, now: int) -> None:
        horizon = now - 2 * self.window
        seen = self._seen
        while seen:
            _key, stamp = next(iter(seen.items()))
            if stamp >= horizon:
                break
            seen.popitem(last=False)
