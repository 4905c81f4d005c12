"""T.125 MCS PDUs as RDP uses them (MS-RDPBCGR §2.2.1.3-§2.2.1.9, §2.2.2.3, §2.2.8.1.1.1).

Contract:
- BER (definite lengths) for Connect-Initial (application tag 101, bytes 7F 65) and
  Connect-Response (tag 102, 7F 66). Integers are written as the shortest unsigned big-endian
  byte string and lengths in the shortest form (the §4.1.3 example is reproduced byte for
  byte). Lengths over `MAX_BER_LENGTH` are refused before anything is read.
- ALIGNED PER for the domain PDUs: Erect Domain Request, Attach User Request/Confirm, Channel
  Join Request/Confirm, Send Data Request/Indication and Disconnect Provider Ultimatum. User ids
  travel as offsets from 1001 (T.125 UserId), channel ids as plain 16-bit values.
- `parse_domain_pdu(payload)` returns one of the PER dataclasses below and raises
  `RemoteProtocolError` for anything else; every dataclass has `build() -> bytes` (the MCS PDU
  without TPKT/X.224, see x224.wrap_data).
"""

from __future__ import annotations

import dataclasses
import enum

from ._wire import Reader, invalid, local, malformed, too_large, u16be

MAX_BER_LENGTH = 0xFFFF  # everything travels inside one TPKT (16-bit length)
MCS_BASE_CHANNEL = 1001  # T.125 UserId offset in PER
CONNECT_INITIAL_TAG = b"\x7f\x65"
CONNECT_RESPONSE_TAG = b"\x7f\x66"


# ---- BER -----------------------------------------------------------------------------------


def ber_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    if n <= 0xFF:
        return bytes([0x81, n])
    if n <= 0xFFFF:
        return b"\x82" + u16be(n)
    raise local("BER", f"length {n} does not fit one TPKT")


def ber_tlv(tag: bytes, value: bytes) -> bytes:
    return tag + ber_length(len(value)) + value


def ber_uint(value: int) -> bytes:
    if value < 0:
        raise local("BER", "negative integer")
    raw = value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
    return ber_tlv(b"\x02", raw)


def _read_ber_length(r: Reader) -> int:
    first = r.u8("BER length")
    if first < 0x80:
        return first
    count = first & 0x7F
    if count == 0 or count > 4:
        raise malformed(r.what, f"BER length form 0x{first:02x} is not supported")
    n = int.from_bytes(r.take(count, "BER long length"), "big")
    if n > MAX_BER_LENGTH:
        raise too_large(r.what, f"BER length {n} exceeds {MAX_BER_LENGTH}")
    return n


def _read_ber(r: Reader, tag: bytes, field: str) -> bytes:
    got = r.take(len(tag), f"{field} tag")
    if got != tag:
        raise invalid(r.what, f"{field}: tag {got.hex()} where {tag.hex()} was expected")
    return r.take(_read_ber_length(r), field)


def _read_ber_uint(r: Reader, field: str, tag: bytes = b"\x02") -> int:
    raw = _read_ber(r, tag, field)
    if not 1 <= len(raw) <= 4:
        raise invalid(r.what, f"{field}: integer of {len(raw)} bytes")
    return int.from_bytes(raw, "big")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DomainParameters:
    """T.125 DomainParameters (§2.2.1.3, §3.2.5.3.3 table)."""

    max_channel_ids: int = 34
    max_user_ids: int = 2
    max_token_ids: int = 0
    num_priorities: int = 1
    min_throughput: int = 0
    max_height: int = 1
    max_mcs_pdu_size: int = 65535
    protocol_version: int = 2

    def build(self) -> bytes:
        fields = dataclasses.astuple(self)
        return ber_tlv(b"\x30", b"".join(ber_uint(v) for v in fields))

    @classmethod
    def read(cls, r: Reader) -> DomainParameters:
        inner = Reader(_read_ber(r, b"\x30", "DomainParameters"), "MCS DomainParameters")
        names = [f.name for f in dataclasses.fields(cls)]
        values = {name: _read_ber_uint(inner, name) for name in names}
        inner.end()
        return cls(**values)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ConnectInitial:
    """MCS Connect-Initial; `user_data` holds the GCC Conference Create Request."""

    calling_domain_selector: bytes = b"\x01"
    called_domain_selector: bytes = b"\x01"
    upward_flag: bool = True
    target: DomainParameters = DomainParameters()
    minimum: DomainParameters = DomainParameters(
        max_channel_ids=1, max_user_ids=1, max_token_ids=1, max_mcs_pdu_size=1056
    )
    maximum: DomainParameters = DomainParameters(
        max_channel_ids=65535, max_user_ids=64535, max_token_ids=65535
    )
    user_data: bytes = b""

    def build(self) -> bytes:
        body = (
            ber_tlv(b"\x04", self.calling_domain_selector)
            + ber_tlv(b"\x04", self.called_domain_selector)
            + ber_tlv(b"\x01", b"\xff" if self.upward_flag else b"\x00")
            + self.target.build()
            + self.minimum.build()
            + self.maximum.build()
            + ber_tlv(b"\x04", self.user_data)
        )
        return ber_tlv(CONNECT_INITIAL_TAG, body)

    @classmethod
    def parse(cls, payload: bytes) -> ConnectInitial:
        outer = Reader(payload, "MCS Connect-Initial")
        r = Reader(_read_ber(outer, CONNECT_INITIAL_TAG, "Connect-Initial"), outer.what)
        outer.end()
        calling = _read_ber(r, b"\x04", "callingDomainSelector")
        called = _read_ber(r, b"\x04", "calledDomainSelector")
        upward = _read_ber(r, b"\x01", "upwardFlag")
        if len(upward) != 1:
            raise invalid(r.what, "upwardFlag is not one byte")
        target, minimum, maximum = (DomainParameters.read(r) for _ in range(3))
        user_data = _read_ber(r, b"\x04", "userData")
        r.end()
        return cls(
            calling_domain_selector=calling,
            called_domain_selector=called,
            upward_flag=upward != b"\x00",
            target=target,
            minimum=minimum,
            maximum=maximum,
            user_data=user_data,
        )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ConnectResponse:
    """MCS Connect-Response; `user_data` holds the GCC Conference Create Response."""

    result: int = 0  # rt-successful
    called_connect_id: int = 0
    parameters: DomainParameters = DomainParameters(max_user_ids=3, max_token_ids=0)
    user_data: bytes = b""

    def build(self) -> bytes:
        body = (
            ber_tlv(b"\x0a", bytes([self.result]))
            + ber_uint(self.called_connect_id)
            + self.parameters.build()
            + ber_tlv(b"\x04", self.user_data)
        )
        return ber_tlv(CONNECT_RESPONSE_TAG, body)

    @classmethod
    def parse(cls, payload: bytes) -> ConnectResponse:
        outer = Reader(payload, "MCS Connect-Response")
        r = Reader(_read_ber(outer, CONNECT_RESPONSE_TAG, "Connect-Response"), outer.what)
        outer.end()
        result = _read_ber_uint(r, "result", b"\x0a")
        connect_id = _read_ber_uint(r, "calledConnectId")
        params = DomainParameters.read(r)
        user_data = _read_ber(r, b"\x04", "userData")
        r.end()
        return cls(
            result=result, called_connect_id=connect_id, parameters=params, user_data=user_data
        )


# ---- PER domain PDUs ----------------------------------------------------------------------


class DomainPdu(enum.IntEnum):
    """DomainMCSPDU CHOICE indexes (T.125 §7 part 10); the first byte is index << 2."""

    ERECT_DOMAIN_REQUEST = 1
    DISCONNECT_PROVIDER_ULTIMATUM = 8
    ATTACH_USER_REQUEST = 10
    ATTACH_USER_CONFIRM = 11
    CHANNEL_JOIN_REQUEST = 14
    CHANNEL_JOIN_CONFIRM = 15
    SEND_DATA_REQUEST = 25
    SEND_DATA_INDICATION = 26


def _user(r: Reader, field: str) -> int:
    return r.u16be(field) + MCS_BASE_CHANNEL


def _put_user(user_id: int) -> bytes:
    if not MCS_BASE_CHANNEL <= user_id <= 0xFFFF:
        raise local("MCS", f"user id {user_id} is outside {MCS_BASE_CHANNEL}..65535")
    return u16be(user_id - MCS_BASE_CHANNEL)


def _per_uint(r: Reader, field: str) -> int:
    n = r.u8(f"{field} length")
    if not 1 <= n <= 4:
        raise invalid(r.what, f"{field}: PER integer of {n} bytes")
    return int.from_bytes(r.take(n, field), "big")


def _put_per_uint(value: int) -> bytes:
    raw = value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
    return bytes([len(raw)]) + raw


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ErectDomainRequest:
    sub_height: int = 0
    sub_interval: int = 0

    def build(self) -> bytes:
        head = bytes([DomainPdu.ERECT_DOMAIN_REQUEST << 2])
        return head + _put_per_uint(self.sub_height) + _put_per_uint(self.sub_interval)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AttachUserRequest:
    def build(self) -> bytes:
        return bytes([DomainPdu.ATTACH_USER_REQUEST << 2])


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AttachUserConfirm:
    """result 0 = rt-successful; `initiator` is the user channel id (e.g. 1007)."""

    result: int = 0
    initiator: int | None = None

    def build(self) -> bytes:
        present = 2 if self.initiator is not None else 0
        out = bytes([DomainPdu.ATTACH_USER_CONFIRM << 2 | present, self.result << 4])
        return out + (_put_user(self.initiator) if self.initiator is not None else b"")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ChannelJoinRequest:
    initiator: int
    channel_id: int

    def build(self) -> bytes:
        head = bytes([DomainPdu.CHANNEL_JOIN_REQUEST << 2])
        return head + _put_user(self.initiator) + u16be(self.channel_id)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ChannelJoinConfirm:
    initiator: int
    requested: int
    channel_id: int | None
    result: int = 0

    def build(self) -> bytes:
        present = 2 if self.channel_id is not None else 0
        out = bytes([DomainPdu.CHANNEL_JOIN_CONFIRM << 2 | present, self.result << 4])
        out += _put_user(self.initiator) + u16be(self.requested)
        return out + (u16be(self.channel_id) if self.channel_id is not None else b"")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DisconnectProviderUltimatum:
    """reason: 1 rn-provider-initiated, 3 rn-user-requested (§2.2.2.3)."""

    reason: int = 1

    def build(self) -> bytes:
        if not 0 <= self.reason <= 7:
            raise local("MCS DPUM", f"reason {self.reason}")
        return u16be((DomainPdu.DISCONNECT_PROVIDER_ULTIMATUM << 3 | self.reason) << 7)


MAX_SEND_DATA = 0x3FFF  # PER length determinant with two bytes; a TPKT is smaller anyway


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SendData:
    """Send Data Request (client) or Indication (server, `indication=True`): user data on a
    channel, priority high and segmentation begin|end as RDP always sends (0x70)."""

    initiator: int
    channel_id: int
    data: bytes
    indication: bool = False
    flags: int = 0x70

    def build(self) -> bytes:
        kind = DomainPdu.SEND_DATA_INDICATION if self.indication else DomainPdu.SEND_DATA_REQUEST
        n = len(self.data)
        if n > MAX_SEND_DATA:
            raise local("MCS Send Data", f"{n} bytes exceed {MAX_SEND_DATA}")
        length = bytes([n]) if n < 0x80 else u16be(0x8000 | n)
        head = bytes([kind << 2]) + _put_user(self.initiator) + u16be(self.channel_id)
        return head + bytes([self.flags]) + length + self.data


DomainMessage = (
    ErectDomainRequest
    | AttachUserRequest
    | AttachUserConfirm
    | ChannelJoinRequest
    | ChannelJoinConfirm
    | DisconnectProviderUltimatum
    | SendData
)


def parse_domain_pdu(payload: bytes) -> DomainMessage:
    """Parse one PER-encoded DomainMCSPDU (the bytes after the X.224 Data header)."""
    r = Reader(payload, "MCS domain PDU")
    first = r.u8("choice")
    choice = first >> 2
    result: DomainMessage
    if choice == DomainPdu.ERECT_DOMAIN_REQUEST:
        if r.remaining == 4 and r.peek(1) == b"\x00":
            # rdesktop 1.9.0 writes subHeight and subInterval as two big-endian 16-bit values
            # instead of PER integers; the server ignores both (§3.3.5.3.5), so accept it
            result = ErectDomainRequest(sub_height=r.u16be("subHeight"), sub_interval=r.u16be("x"))
        else:
            result = ErectDomainRequest(
                sub_height=_per_uint(r, "subHeight"), sub_interval=_per_uint(r, "subInterval")
            )
    elif choice == DomainPdu.ATTACH_USER_REQUEST:
        result = AttachUserRequest()
    elif choice == DomainPdu.ATTACH_USER_CONFIRM:
        res = r.u8("result") >> 4
        result = AttachUserConfirm(
            result=res, initiator=_user(r, "initiator") if first & 2 else None
        )
    elif choice == DomainPdu.CHANNEL_JOIN_REQUEST:
        result = ChannelJoinRequest(
            initiator=_user(r, "initiator"), channel_id=r.u16be("channelId")
        )
    elif choice == DomainPdu.CHANNEL_JOIN_CONFIRM:
        res = r.u8("result") >> 4
        initiator = _user(r, "initiator")
        requested = r.u16be("requested")
        channel = r.u16be("channelId") if first & 2 else None
        result = ChannelJoinConfirm(
            result=res, initiator=initiator, requested=requested, channel_id=channel
        )
    elif choice == DomainPdu.DISCONNECT_PROVIDER_ULTIMATUM:
        second = r.u8("reason")
        result = DisconnectProviderUltimatum(reason=((first & 0x03) << 1) | (second >> 7))
    elif choice in (DomainPdu.SEND_DATA_REQUEST, DomainPdu.SEND_DATA_INDICATION):
        initiator = _user(r, "initiator")
        channel = r.u16be("channelId")
        flags = r.u8("priority and segmentation")
        n = r.u8("userData length")
        if n & 0x80:
            n = ((n & 0x3F) << 8) | r.u8("userData length")
        result = SendData(
            initiator=initiator,
            channel_id=channel,
            data=r.take(n, "userData"),
            indication=choice == DomainPdu.SEND_DATA_INDICATION,
            flags=flags,
        )
    else:
        raise invalid(r.what, f"unsupported DomainMCSPDU choice {choice}")
    r.end()
    return result
