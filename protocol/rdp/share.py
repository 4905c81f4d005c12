"""The Share PDUs of a minimal session after licensing (MS-RDPBCGR §2.2.1.13-§2.2.1.22, §2.2.3.1).

Contract:
- Builders return a whole Share Control PDU (TS_SHARECONTROLHEADER first, §2.2.8.1.1.1.1);
  the connection (connection.py) wraps it in the security layer and MCS. `demand_active()`
  (§2.2.1.13.1) carries the capability sets a server must send (General, Bitmap, Order,
  Pointer, Input, Virtual Channel, Share, Font, Color Cache); `synchronize()`, `control()`,
  `font_map()` are the server's Connection Finalization PDUs (§2.2.1.19-§2.2.1.22);
  `bitmap_update()` is a slow-path Bitmap Update (§2.2.9.1.1.3.1.2) with uncompressed
  rectangles; `deactivate_all()` is §2.2.3.1.
- `parse_client_pdu(data)` reads what a client sends in this phase and returns a
  `ClientSharePdu` (the Share Control type, for Data PDUs the pduType2, the body after the
  headers, and for Confirm Active its shareId); lengths are checked against the bytes present.
  Nothing here holds state: the share id and channel ids are passed in.
"""

from __future__ import annotations

import dataclasses
import enum

from ._wire import Reader, invalid, local, malformed, u16le, u32le
from .info import DEFAULT_SHARE_ID, STREAM_LOW, TS_PROTOCOL_VERSION

SOURCE_DESCRIPTOR = b"RDP\x00"


class PduType(enum.IntEnum):
    DEMAND_ACTIVE = 0x1
    CONFIRM_ACTIVE = 0x3
    DEACTIVATE_ALL = 0x6
    DATA = 0x7


class PduType2(enum.IntEnum):
    UPDATE = 2
    CONTROL = 20
    POINTER = 27
    INPUT = 28
    SYNCHRONIZE = 31
    REFRESH_RECT = 33
    SUPPRESS_OUTPUT = 35
    SHUTDOWN_REQUEST = 36
    SHUTDOWN_DENIED = 37
    FONT_LIST = 39
    FONT_MAP = 40
    BITMAPCACHE_PERSISTENT_LIST = 43
    SET_ERROR_INFO = 47


class ControlAction(enum.IntEnum):
    REQUEST_CONTROL = 1
    GRANTED_CONTROL = 2
    DETACH = 3
    COOPERATE = 4


UPDATETYPE_BITMAP = 0x0001
MAX_RECTANGLE_BYTES = 0xFFFF  # bitmapLength is a 16-bit field (§2.2.9.1.1.3.1.2.2)


def share_control(pdu_type: int, source: int, body: bytes) -> bytes:
    total = 6 + len(body)
    if total > 0xFFFF:
        raise local("Share Control PDU", f"{total} bytes do not fit its 16-bit length")
    return u16le(total) + u16le(TS_PROTOCOL_VERSION | pdu_type) + u16le(source) + body


def share_data(pdu_type2: int, source: int, body: bytes, share_id: int = DEFAULT_SHARE_ID) -> bytes:
    """TS_SHAREDATAHEADER (§2.2.8.1.1.1.2); uncompressedLength counts from pduType2 on, as
    the Set Error Info PDU of info.py does."""
    header = u32le(share_id) + bytes([0, STREAM_LOW]) + u16le(len(body) + 4)
    header += bytes([pdu_type2, 0]) + u16le(0)
    return share_control(PduType.DATA, source, header + body)


def _cap(kind: int, body: bytes) -> bytes:
    return u16le(kind) + u16le(4 + len(body)) + body


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SessionSettings:
    """What the Demand Active announces: the desktop the client asked for (CS_CORE) and the
    colour depth of the bitmaps we send."""

    width: int = 1024
    height: int = 768
    bits_per_pixel: int = 16
    share_id: int = DEFAULT_SHARE_ID

    def __post_init__(self) -> None:
        if not (8 <= self.width <= 8192 and 8 <= self.height <= 8192):
            raise local("Demand Active", f"desktop {self.width}x{self.height}")
        if self.bits_per_pixel not in (15, 16, 24, 32):
            raise local("Demand Active", f"{self.bits_per_pixel} bits per pixel")


def capability_sets(s: SessionSettings) -> list[bytes]:
    general = (
        u16le(1) + u16le(3) + u16le(0x0200) + u16le(0) + u16le(0)  # Windows NT, protocol 2
        + u16le(0x0004 | 0x0400)  # LONG_CREDENTIALS_SUPPORTED | NO_BITMAP_COMPRESSION_HDR
        + u16le(0) + u16le(0) + u16le(0) + bytes([0, 0])
    )  # fmt: skip
    bitmap = (
        u16le(s.bits_per_pixel) + u16le(1) + u16le(1) + u16le(1)
        + u16le(s.width) + u16le(s.height) + u16le(0) + u16le(0)
        + u16le(1) + bytes([0, 0]) + u16le(1) + u16le(0)
    )  # fmt: skip
    order = (
        bytes(16) + u32le(0) + u16le(1) + u16le(20) + u16le(0) + u16le(1) + u16le(0)
        + u16le(0x0022)  # NEGOTIATEORDERSUPPORT | COLORINDEXSUPPORT; no order is supported
        + bytes(32) + u16le(0) + u16le(0) + u32le(0) + u32le(480 * 480)
        + u16le(0) + u16le(0) + u16le(0) + u16le(0)
    )  # fmt: skip
    pointer = u16le(1) + u16le(25) + u16le(25)
    input_ = u16le(0x0001) + u16le(0) + u32le(0x409) + u32le(4) + u32le(0) + u32le(12) + bytes(64)
    return [
        _cap(1, general),
        _cap(2, bitmap),
        _cap(3, order),
        _cap(8, pointer),
        _cap(13, input_),
        _cap(20, u32le(0)),  # virtual channel: no compression
        _cap(9, u16le(1002) + u16le(0)),  # share: nodeId
        _cap(14, u16le(1) + u16le(0)),  # font: FONTSUPPORT_FONTLIST
        _cap(10, u16le(6) + u16le(0)),  # color cache
    ]


def demand_active(s: SessionSettings, source: int = 1002) -> bytes:
    caps = capability_sets(s)
    combined = u16le(len(caps)) + u16le(0) + b"".join(caps)
    body = (
        u32le(s.share_id) + u16le(len(SOURCE_DESCRIPTOR)) + u16le(len(combined))
        + SOURCE_DESCRIPTOR + combined + u32le(0)  # sessionId
    )  # fmt: skip
    return share_control(PduType.DEMAND_ACTIVE, source, body)


def synchronize(target_user: int, source: int = 1002, share_id: int = DEFAULT_SHARE_ID) -> bytes:
    return share_data(PduType2.SYNCHRONIZE, source, u16le(1) + u16le(target_user), share_id)


def control(
    action: ControlAction,
    *,
    grant_id: int = 0,
    control_id: int = 0,
    source: int = 1002,
    share_id: int = DEFAULT_SHARE_ID,
) -> bytes:
    body = u16le(action) + u16le(grant_id) + u32le(control_id)
    return share_data(PduType2.CONTROL, source, body, share_id)


def font_map(source: int = 1002, share_id: int = DEFAULT_SHARE_ID) -> bytes:
    # no entries; FONTMAP_FIRST | FONTMAP_LAST; entrySize 4 (§2.2.1.22.1)
    body = u16le(0) + u16le(0) + u16le(0x0003) + u16le(4)
    return share_data(PduType2.FONT_MAP, source, body, share_id)


def deactivate_all(source: int = 1002, share_id: int = DEFAULT_SHARE_ID) -> bytes:
    return share_control(PduType.DEACTIVATE_ALL, source, u32le(share_id) + u16le(1) + b"\x00")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class BitmapRect:
    """One uncompressed TS_BITMAP_DATA: `pixels` are rows bottom-up, each `width` pixels of
    `bits_per_pixel` and padded to 4 bytes, as §2.2.9.1.1.3.1.2.2 lays them out."""

    left: int
    top: int
    width: int
    height: int
    bits_per_pixel: int
    pixels: bytes

    def __post_init__(self) -> None:
        row = -(-self.width * ((self.bits_per_pixel + 7) // 8) // 4) * 4
        if len(self.pixels) != row * self.height:
            raise local(
                "TS_BITMAP_DATA", f"{len(self.pixels)} bytes for {self.width}x{self.height}"
            )
        if len(self.pixels) > MAX_RECTANGLE_BYTES:
            raise local("TS_BITMAP_DATA", "more than 65535 bytes in one rectangle")

    def build(self) -> bytes:
        right = self.left + self.width - 1
        bottom = self.top + self.height - 1
        head = u16le(self.left) + u16le(self.top) + u16le(right) + u16le(bottom)
        head += u16le(self.width) + u16le(self.height) + u16le(self.bits_per_pixel)
        return head + u16le(0) + u16le(len(self.pixels)) + self.pixels  # flags 0: uncompressed


def bitmap_update(
    rects: list[BitmapRect], source: int = 1002, share_id: int = DEFAULT_SHARE_ID
) -> bytes:
    # TS_UPDATE_BITMAP_DATA: updateType, numberRectangles, rectangles
    body = u16le(UPDATETYPE_BITMAP) + u16le(len(rects)) + b"".join(r.build() for r in rects)
    return share_data(PduType2.UPDATE, source, body, share_id)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ClientSharePdu:
    pdu_type: int
    source: int
    share_id: int
    pdu_type2: int | None
    body: bytes


def parse_client_pdu(data: bytes) -> ClientSharePdu:
    """A client Share Control PDU: Confirm Active, or a Data PDU with its pduType2."""
    r = Reader(data, "Share Control PDU")
    total = r.u16le("totalLength")
    if total == 0x8000:  # a flow PDU (§2.2.8.1.1.1.1): nothing to answer
        return ClientSharePdu(pdu_type=0x8000, source=0, share_id=0, pdu_type2=None, body=b"")
    if total != len(data):
        raise malformed(r.what, f"totalLength {total} for {len(data)} bytes")
    pdu_type = r.u16le("pduType") & 0xF
    source = r.u16le("pduSource")
    share_id = r.u32le("shareId")
    if pdu_type == PduType.DATA:
        r.skip(4, "pad1, streamId, uncompressedLength")
        kind = r.u8("pduType2")
        if r.u8("compressedType") & 0x20:  # PACKET_COMPRESSED: we announced no compression
            raise invalid(r.what, "a compressed Data PDU")
        r.skip(2, "compressedLength")
        return ClientSharePdu(
            pdu_type=pdu_type, source=source, share_id=share_id, pdu_type2=kind, body=r.rest()
        )
    if pdu_type == PduType.CONFIRM_ACTIVE:
        return ClientSharePdu(
            pdu_type=pdu_type, source=source, share_id=share_id, pdu_type2=None, body=r.rest()
        )
    raise invalid(r.what, f"pduType {pdu_type} from a client")


def control_action(pdu: ClientSharePdu) -> int:
    return Reader(pdu.body, "Control PDU").u16le("action")
