"""TPKT framing and the X.224 Class 0 TPDUs that carry RDP (MS-RDPBCGR §2.2.1.1-2.2.1.2).

Contract:
- `tpkt_length(buffer)` looks at the first four bytes of a stream buffer and returns the total
  TPKT length, or None when fewer than 4 bytes are buffered. It refuses, before any body is
  buffered, a version other than 3 (this includes fast-path input, which we do not accept
  before the connection is active) and a length below 7 (the smallest X.224 TPDU).
- `ConnectionRequest`, `ConnectionConfirm` and `NegotiationFailure` round-trip byte for byte
  with `build()` / `parse()`: `parse(x.build()) == x` and, for the §4.1.1/§4.1.2 examples,
  `parse(b).build() == b`.
- `wrap_data(payload)` / `unwrap_data(frame)` add and remove the TPKT header plus the 3-byte
  X.224 Data TPDU (`02 f0 80`).
- Parsers raise `RemoteProtocolError`; builders raise `LocalProtocolError`.

Checks follow §3.3.5.3.1: the TPKT length must match the data, the CR must be at least 11
bytes and Class 0; the cookie and routing token are carried but never interpreted.
"""

from __future__ import annotations

import dataclasses
import enum

from ._wire import Reader, as_remote, invalid, local, malformed, u16be, u32le

TPKT_VERSION = 3
TPKT_HEADER = 4
MIN_TPKT = 7  # TPKT header plus the 3-byte X.224 Data TPDU
MAX_TPKT = 0xFFFF  # the TPKT length field is 16 bits: no frame can be larger

CR_CODE = 0xE0
CC_CODE = 0xD0
DT_CODE = 0xF0
DATA_HEADER = b"\x02\xf0\x80"

COOKIE_PREFIX = b"Cookie: mstshash="
ROUTING_PREFIX = b"Cookie: msts="
MAX_COOKIE = 256  # a CR is "well under 512 bytes"; the TPKT length bounds it anyway

TYPE_RDP_NEG_REQ = 0x01
TYPE_RDP_NEG_RSP = 0x02
TYPE_RDP_NEG_FAILURE = 0x03
CORRELATION_INFO_PRESENT = 0x08
CORRELATION_INFO_LEN = 36


class Protocol(enum.IntFlag):
    """requestedProtocols / selectedProtocol values (§2.2.1.1.1)."""

    RDP = 0x0
    SSL = 0x1
    HYBRID = 0x2
    RDSTLS = 0x4
    HYBRID_EX = 0x8


class FailureCode(enum.IntEnum):
    """RDP_NEG_FAILURE failureCode values (§2.2.1.2.2)."""

    SSL_REQUIRED_BY_SERVER = 1
    SSL_NOT_ALLOWED_BY_SERVER = 2
    SSL_CERT_NOT_ON_SERVER = 3
    INCONSISTENT_FLAGS = 4
    HYBRID_REQUIRED_BY_SERVER = 5
    SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER = 6


def tpkt_length(buffer: bytes | bytearray) -> int | None:
    """Total length of the TPKT at the start of `buffer`, or None if its header is incomplete.

    Raises:
        RemoteProtocolError: not TPKT version 3 (INVALID_FIELD), or a length below 7
            (MALFORMED_FRAME).
    """
    if len(buffer) < TPKT_HEADER:
        return None
    if buffer[0] != TPKT_VERSION:
        raise invalid("TPKT", f"version {buffer[0]} (only 3 is accepted; no fast-path yet)")
    length = (buffer[2] << 8) | buffer[3]
    if length < MIN_TPKT:
        raise malformed("TPKT", f"length {length} is below the minimum of {MIN_TPKT}")
    return length


def wrap_tpkt(body: bytes) -> bytes:
    """Prefix `body` (an X.224 TPDU) with a TPKT header."""
    total = len(body) + TPKT_HEADER
    if total > MAX_TPKT:
        raise local("TPKT", f"{total} bytes do not fit the 16-bit length")
    return bytes([TPKT_VERSION, 0]) + u16be(total) + body


def unwrap_tpkt(frame: bytes) -> bytes:
    """The X.224 TPDU inside one complete TPKT frame."""
    length = tpkt_length(frame)
    if length is None or length != len(frame):
        raise malformed("TPKT", f"length field {length} does not match {len(frame)} bytes")
    return frame[TPKT_HEADER:]


def wrap_data(payload: bytes) -> bytes:
    """TPKT + X.224 Data TPDU around an MCS PDU."""
    return wrap_tpkt(DATA_HEADER + payload)


def unwrap_data(frame: bytes) -> bytes:
    """The MCS PDU inside a TPKT + X.224 Data TPDU."""
    tpdu = unwrap_tpkt(frame)
    if tpdu[:3] != DATA_HEADER:
        raise invalid("X.224 Data", f"header {tpdu[:3].hex()} is not 02f080")
    return tpdu[3:]


def is_data(frame: bytes) -> bool:
    return frame[TPKT_HEADER + 1 : TPKT_HEADER + 2] == bytes([DT_CODE])


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionRequest:
    """Client X.224 Connection Request PDU (§2.2.1.1).

    `cookie` is the IDENTIFIER of "Cookie: mstshash=IDENTIFIER", `routing_token` the whole
    token line without CR LF; at most one is present. `requested_protocols` is None when the
    client sent no RDP_NEG_REQ (it then does not support Enhanced Security, §3.3.5.3.1).
    """

    cookie: bytes | None = None
    routing_token: bytes | None = None
    requested_protocols: int | None = None
    neg_flags: int = 0
    correlation_info: bytes | None = None

    def __post_init__(self) -> None:
        for name, value in (("cookie", self.cookie), ("routing_token", self.routing_token)):
            if value is not None and (len(value) > MAX_COOKIE or b"\r\n" in value):
                raise local("X.224 CR", f"{name} is longer than {MAX_COOKIE} or holds CR LF")
        if self.cookie is not None and self.routing_token is not None:
            raise local("X.224 CR", "cookie and routing token are exclusive")
        if self.requested_protocols is None and (self.neg_flags or self.correlation_info):
            raise local("X.224 CR", "negotiation flags without an RDP_NEG_REQ")
        if self.correlation_info is not None and len(self.correlation_info) != 36:
            raise local("X.224 CR", "correlation info is 36 bytes")

    def build(self) -> bytes:
        body = bytearray()
        if self.cookie is not None:
            body += COOKIE_PREFIX + self.cookie + b"\r\n"
        elif self.routing_token is not None:
            body += self.routing_token + b"\r\n"
        if self.requested_protocols is not None:
            flags = self.neg_flags
            if self.correlation_info is not None:
                flags |= CORRELATION_INFO_PRESENT
            body += bytes([TYPE_RDP_NEG_REQ, flags]) + b"\x08\x00"
            body += u32le(self.requested_protocols)
            if self.correlation_info is not None:
                body += self.correlation_info
        tpdu = bytes([6 + len(body), CR_CODE]) + b"\x00\x00\x00\x00\x00" + body
        return wrap_tpkt(tpdu)

    @classmethod
    def parse(cls, frame: bytes) -> ConnectionRequest:
        tpdu = unwrap_tpkt(frame)
        r = Reader(tpdu, "X.224 Connection Request")
        if len(frame) < 11:
            raise malformed(r.what, f"{len(frame)} bytes is below the minimum of 11")
        li = r.u8("length indicator")
        if li != len(tpdu) - 1:
            raise malformed(r.what, f"length indicator {li} does not match {len(tpdu) - 1}")
        code = r.u8("type")
        if code & 0xF0 != CR_CODE:
            raise invalid(r.what, f"TPDU code 0x{code:02x} is not a Connection Request")
        r.skip(4, "references")
        if r.u8("class") & 0xF0:
            raise invalid(r.what, "not class 0")
        cookie = token = None
        if r.peek(len(ROUTING_PREFIX)) == ROUTING_PREFIX or r.peek(6) == b"Cookie":
            rest = r.peek(r.remaining)
            end = rest.find(b"\r\n")
            if end < 0:
                raise malformed(r.what, "cookie is not terminated by CR LF")
            line = r.take(end, "cookie")
            r.skip(2, "CR LF")
            if len(line) > MAX_COOKIE + len(COOKIE_PREFIX):
                raise invalid(r.what, f"cookie of {len(line)} bytes exceeds {MAX_COOKIE}")
            if line.startswith(COOKIE_PREFIX):
                cookie = line[len(COOKIE_PREFIX) :]
            else:
                token = line
        requested = correlation = None
        flags = 0
        if r.remaining:
            if r.u8("RDP_NEG_REQ type") != TYPE_RDP_NEG_REQ:
                raise invalid(r.what, "unexpected bytes where RDP_NEG_REQ belongs")
            flags = r.u8("RDP_NEG_REQ flags")
            if r.u16le("RDP_NEG_REQ length") != 8:
                raise invalid(r.what, "RDP_NEG_REQ length is not 8")
            requested = r.u32le("requestedProtocols")
            if flags & CORRELATION_INFO_PRESENT:
                correlation = r.take(CORRELATION_INFO_LEN, "rdpCorrelationInfo")
                flags &= ~CORRELATION_INFO_PRESENT
        r.end()
        with as_remote(r.what):
            return cls(
                cookie=cookie,
                routing_token=token,
                requested_protocols=requested,
                neg_flags=flags,
                correlation_info=correlation,
            )


def _confirm_tpdu(neg: bytes) -> bytes:
    # dst-ref 0, src-ref 0x1234, class 0, as §3.3.5.3.2 and the §4.1.2 example show
    return wrap_tpkt(bytes([6 + len(neg), CC_CODE]) + b"\x00\x00\x12\x34\x00" + neg)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionConfirm:
    """Server X.224 Connection Confirm with an RDP_NEG_RSP, or none if the CR had no
    RDP_NEG_REQ (`selected_protocol` None) (§2.2.1.2, §2.2.1.2.1)."""

    selected_protocol: int | None = None
    flags: int = 0

    def build(self) -> bytes:
        if self.selected_protocol is None:
            return _confirm_tpdu(b"")
        neg = bytes([TYPE_RDP_NEG_RSP, self.flags]) + b"\x08\x00"
        return _confirm_tpdu(neg + u32le(self.selected_protocol))


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class NegotiationFailure:
    """Server X.224 Connection Confirm carrying RDP_NEG_FAILURE (§2.2.1.2.2); the server
    closes the connection after sending it."""

    code: int

    def build(self) -> bytes:
        return _confirm_tpdu(bytes([TYPE_RDP_NEG_FAILURE, 0]) + b"\x08\x00" + u32le(self.code))


def parse_confirm(frame: bytes) -> ConnectionConfirm | NegotiationFailure:
    """Parse a server Connection Confirm (used by tests and by a client driver)."""
    r = Reader(unwrap_tpkt(frame), "X.224 Connection Confirm")
    li = r.u8("length indicator")
    if li != r.remaining:
        raise malformed(r.what, f"length indicator {li} does not match {r.remaining}")
    if r.u8("type") & 0xF0 != CC_CODE:
        raise invalid(r.what, "TPDU is not a Connection Confirm")
    r.skip(5, "references and class")
    if not r.remaining:
        return ConnectionConfirm()
    kind = r.u8("negotiation type")
    flags = r.u8("flags")
    if r.u16le("length") != 8:
        raise invalid(r.what, "negotiation length is not 8")
    value = r.u32le("value")
    r.end()
    if kind == TYPE_RDP_NEG_RSP:
        return ConnectionConfirm(selected_protocol=value, flags=flags)
    if kind == TYPE_RDP_NEG_FAILURE:
        return NegotiationFailure(code=value)
    raise invalid(r.what, f"negotiation type {kind}")
