"""T.124 GCC Conference Create Request/Response and the RDP settings blocks they carry
(MS-RDPBCGR §2.2.1.3.1-§2.2.1.3.4, §2.2.1.4.1-§2.2.1.4.4).

Contract:
- `ClientSettings.parse(user_data)` reads the GCC Conference Create Request from an MCS
  Connect-Initial userData and keeps every TS_UD block in order: CS_CORE, CS_SECURITY and
  CS_NET are decoded, the rest are `RawBlock`s. `build()` writes the same bytes back.
- `ServerSettings.build()` writes the GCC Conference Create Response for an MCS
  Connect-Response: SC_CORE, SC_NET, SC_SECURITY, in that order (rdesktop 1.9.0 needs
  SC_SECURITY last). The connectPDU length is the one byte 0x2A
  whatever the content, because rdesktop skips exactly 21 bytes before the user-data length
  (the same bytes FreeRDP and the spec example write).
- Limits: at most `MAX_BLOCKS` blocks, 31 channels (§2.2.1.3.4), every block length checked
  against its header and the bytes present.
"""

from __future__ import annotations

import dataclasses
from typing import TypedDict

from ._wire import (
    Reader,
    as_remote,
    encode_utf16z,
    invalid,
    local,
    malformed,
    too_large,
    u16be,
    u16le,
    u32le,
    utf16z,
)

T124_KEY = b"\x00\x05\x00\x14\x7c\x00\x01"  # object key, OID 0.0.20.124.0.1
CCRQ_HEADER = b"\x00\x08\x00\x10\x00\x01\xc0\x00"  # ConferenceCreateRequest, name "1"
CLIENT_H221 = b"Duca"
SERVER_H221 = b"McDn"
# ConferenceCreateResponse: nodeID 0x79F3 (as 0x760A = 0x79F3 - 1001), tag 1, result 0,
# one user-data set, value present, H.221 non-standard key "McDn".
CCRSP_HEADER = b"\x2a\x14\x76\x0a\x01\x01\x00\x01\xc0\x00" + SERVER_H221

CS_CORE = 0xC001
CS_SECURITY = 0xC002
CS_NET = 0xC003
SC_CORE = 0x0C01
SC_SECURITY = 0x0C02
SC_NET = 0x0C03

MAX_BLOCKS = 16
MAX_CHANNELS = 31
IO_CHANNEL = 1003
RNS_UD_CS_SUPPORT_ERRINFO_PDU = 0x0001


def _per_length(r: Reader, field: str) -> int:
    n = r.u8(field)
    if n & 0x80:
        n = ((n & 0x3F) << 8) | r.u8(field)
    return n


def _put_per_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    if n > 0x3FFF:
        raise local("GCC", f"user data of {n} bytes")
    return u16be(0x8000 | n)


def _block(kind: int, body: bytes) -> bytes:
    return u16le(kind) + u16le(len(body) + 4) + body


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RawBlock:
    """A settings block this package does not decode (CS_CLUSTER, CS_MONITOR, ...)."""

    kind: int
    body: bytes

    def build(self) -> bytes:
        return _block(self.kind, self.body)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ClientCoreData:
    """TS_UD_CS_CORE (§2.2.1.3.2). The fields after imeFileName are kept raw in `optional`;
    `early_capability_flags` and `server_selected_protocol` read them when present."""

    version: int = 0x00080004
    desktop_width: int = 1024
    desktop_height: int = 768
    color_depth: int = 0xCA01
    sas_sequence: int = 0xAA03
    keyboard_layout: int = 0x409
    client_build: int = 2600
    client_name: str = ""
    keyboard_type: int = 4
    keyboard_sub_type: int = 0
    keyboard_function_key: int = 12
    ime_file_name: bytes = bytes(64)
    optional: bytes = b""

    def __post_init__(self) -> None:
        if len(self.client_name) > 15:
            raise local("CS_CORE", "clientName holds at most 15 characters")
        if len(self.ime_file_name) != 64:
            raise local("CS_CORE", "imeFileName is 64 bytes")

    @property
    def early_capability_flags(self) -> int:
        o = self.optional
        return int.from_bytes(o[12:14], "little") if len(o) >= 14 else 0

    @property
    def server_selected_protocol(self) -> int | None:
        o = self.optional
        return int.from_bytes(o[80:84], "little") if len(o) >= 84 else None

    def build(self) -> bytes:
        body = (
            u32le(self.version)
            + u16le(self.desktop_width)
            + u16le(self.desktop_height)
            + u16le(self.color_depth)
            + u16le(self.sas_sequence)
            + u32le(self.keyboard_layout)
            + u32le(self.client_build)
            + encode_utf16z(self.client_name, 32, what="clientName")
            + u32le(self.keyboard_type)
            + u32le(self.keyboard_sub_type)
            + u32le(self.keyboard_function_key)
            + self.ime_file_name
            + self.optional
        )
        return _block(CS_CORE, body)

    @classmethod
    def parse(cls, body: bytes) -> ClientCoreData:
        r = Reader(body, "CS_CORE")
        return cls(
            version=r.u32le("version"),
            desktop_width=r.u16le("desktopWidth"),
            desktop_height=r.u16le("desktopHeight"),
            color_depth=r.u16le("colorDepth"),
            sas_sequence=r.u16le("SASSequence"),
            keyboard_layout=r.u32le("keyboardLayout"),
            client_build=r.u32le("clientBuild"),
            client_name=utf16z(r.take(32, "clientName"))[:15],
            keyboard_type=r.u32le("keyboardType"),
            keyboard_sub_type=r.u32le("keyboardSubType"),
            keyboard_function_key=r.u32le("keyboardFunctionKey"),
            ime_file_name=r.take(64, "imeFileName"),
            optional=r.rest(),
        )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ClientSecurityData:
    """TS_UD_CS_SEC (§2.2.1.3.3): the encryption methods the client supports."""

    encryption_methods: int = 0x1B
    ext_encryption_methods: int = 0

    def build(self) -> bytes:
        return _block(
            CS_SECURITY, u32le(self.encryption_methods) + u32le(self.ext_encryption_methods)
        )

    @classmethod
    def parse(cls, body: bytes) -> ClientSecurityData:
        r = Reader(body, "CS_SECURITY")
        value = cls(
            encryption_methods=r.u32le("encryptionMethods"),
            ext_encryption_methods=r.u32le("extEncryptionMethods"),
        )
        r.end()
        return value


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ChannelDef:
    name: bytes  # up to 7 ANSI characters, NUL-padded to 8 on the wire
    options: int

    def __post_init__(self) -> None:
        if len(self.name) > 7 or b"\x00" in self.name:
            raise local("CHANNEL_DEF", f"channel name {self.name!r}")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ClientNetworkData:
    """TS_UD_CS_NET (§2.2.1.3.4): the static virtual channels the client asks for."""

    channels: tuple[ChannelDef, ...] = ()

    def build(self) -> bytes:
        body = u32le(len(self.channels))
        for c in self.channels:
            body += c.name.ljust(8, b"\x00") + u32le(c.options)
        return _block(CS_NET, body)

    @classmethod
    def parse(cls, body: bytes) -> ClientNetworkData:
        r = Reader(body, "CS_NET")
        count = r.u32le("channelCount")
        if count > MAX_CHANNELS:
            raise too_large(r.what, f"{count} channels (at most {MAX_CHANNELS})")
        channels = []
        for _ in range(count):
            name = r.take(8, "name").split(b"\x00", 1)[0][:7]
            channels.append(ChannelDef(name=name, options=r.u32le("options")))
        r.end()
        return cls(channels=tuple(channels))


ClientBlock = ClientCoreData | ClientSecurityData | ClientNetworkData | RawBlock


def _decode_block(kind: int, body: bytes) -> ClientBlock:
    if kind == CS_CORE:
        return ClientCoreData.parse(body)
    if kind == CS_SECURITY:
        return ClientSecurityData.parse(body)
    if kind == CS_NET:
        return ClientNetworkData.parse(body)
    return RawBlock(kind=kind, body=body)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ClientSettings:
    """The GCC Conference Create Request with its client settings blocks, in order."""

    blocks: tuple[ClientBlock, ...]

    def _first(self, kind: type[ClientBlock]) -> ClientBlock | None:
        return next((b for b in self.blocks if isinstance(b, kind)), None)

    @property
    def core(self) -> ClientCoreData:
        block = self._first(ClientCoreData)
        assert isinstance(block, ClientCoreData)  # parse() requires it
        return block

    @property
    def security(self) -> ClientSecurityData:
        block = self._first(ClientSecurityData)
        return block if isinstance(block, ClientSecurityData) else ClientSecurityData()

    @property
    def network(self) -> ClientNetworkData:
        block = self._first(ClientNetworkData)
        return block if isinstance(block, ClientNetworkData) else ClientNetworkData()

    def build(self) -> bytes:
        blocks = b"".join(b.build() for b in self.blocks)
        inner = CCRQ_HEADER + CLIENT_H221 + _put_per_length(len(blocks)) + blocks
        return T124_KEY + _put_per_length(len(inner)) + inner

    @classmethod
    def parse(cls, user_data: bytes) -> ClientSettings:
        r = Reader(user_data, "GCC Conference Create Request")
        if r.take(len(T124_KEY), "T.124 key") != T124_KEY:
            raise invalid(r.what, "the object key is not T.124 0.0.20.124.0.1")
        if _per_length(r, "connectPDU length") != r.remaining:
            raise malformed(r.what, "connectPDU length does not match the data")
        r.skip(len(CCRQ_HEADER), "ConferenceCreateRequest")
        if r.take(4, "H.221 key") != CLIENT_H221:
            raise invalid(r.what, "H.221 key is not 'Duca'")
        if _per_length(r, "user data length") != r.remaining:
            raise malformed(r.what, "user data length does not match the data")
        blocks: list[ClientBlock] = []
        while r.remaining:
            if len(blocks) >= MAX_BLOCKS:
                raise too_large(r.what, f"more than {MAX_BLOCKS} settings blocks")
            kind = r.u16le("TS_UD_HEADER type")
            length = r.u16le("TS_UD_HEADER length")
            if length < 4:
                raise malformed(r.what, f"block 0x{kind:04x} length {length} is below 4")
            body = r.take(length - 4, f"block 0x{kind:04x}")
            with as_remote(r.what):
                blocks.append(_decode_block(kind, body))
        settings = cls(blocks=tuple(blocks))
        if settings._first(ClientCoreData) is None:
            raise invalid(r.what, "no CS_CORE block")
        return settings


class _ServerFields(TypedDict, total=False):
    """`ServerSettings`' fields, as `ServerSettings.parse` finds them block by block."""

    version: int
    client_requested_protocols: int | None
    early_capability_flags: int
    encryption_method: int
    encryption_level: int
    server_random: bytes
    server_certificate: bytes
    io_channel: int
    channel_ids: tuple[int, ...]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ServerSettings:
    """SC_CORE, SC_SECURITY and SC_NET of the GCC Conference Create Response (§2.2.1.4).

    `client_requested_protocols` None leaves it and the later SC_CORE fields out (RDP 4
    clients, §2.2.1.4.2). `server_certificate` is a SERVER_CERTIFICATE (security.py); an
    encryption method of 0 writes the short 12-byte SC_SECURITY of §2.2.1.4.3.
    """

    version: int = 0x00080004
    client_requested_protocols: int | None = 0
    early_capability_flags: int = 0
    encryption_method: int = 0
    encryption_level: int = 0
    server_random: bytes = b""
    server_certificate: bytes = b""
    io_channel: int = IO_CHANNEL
    channel_ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.encryption_method and len(self.server_random) != 32:
            raise local("SC_SECURITY", "server random is 32 bytes")
        if len(self.channel_ids) > MAX_CHANNELS:
            raise local("SC_NET", f"more than {MAX_CHANNELS} channels")

    def blocks(self) -> bytes:
        core = u32le(self.version)
        if self.client_requested_protocols is not None:
            core += u32le(self.client_requested_protocols) + u32le(self.early_capability_flags)
        sec = u32le(self.encryption_method) + u32le(self.encryption_level)
        if self.encryption_method:
            sec += u32le(len(self.server_random)) + u32le(len(self.server_certificate))
            sec += self.server_random + self.server_certificate
        net = u16le(self.io_channel) + u16le(len(self.channel_ids))
        net += b"".join(u16le(c) for c in self.channel_ids)
        if len(self.channel_ids) % 2:
            net += b"\x00\x00"  # pad to a multiple of 4 bytes (§2.2.1.4.4)
        # SC_SECURITY goes last: rdesktop 1.9.0 reads proprietary-certificate tags up to the
        # end of the whole user data, not of the block, so a block after it breaks its parse
        return _block(SC_CORE, core) + _block(SC_NET, net) + _block(SC_SECURITY, sec)

    def build(self) -> bytes:
        blocks = self.blocks()
        return T124_KEY + CCRSP_HEADER + _put_per_length(len(blocks)) + blocks

    @classmethod
    def parse(cls, user_data: bytes) -> ServerSettings:
        """Parse a Conference Create Response as this package writes it (tests, clients)."""
        r = Reader(user_data, "GCC Conference Create Response")
        if r.take(len(T124_KEY), "T.124 key") != T124_KEY:
            raise invalid(r.what, "the object key is not T.124")
        r.skip(len(CCRSP_HEADER), "ConferenceCreateResponse")
        if _per_length(r, "user data length") != r.remaining:
            raise malformed(r.what, "user data length does not match the data")
        values: _ServerFields = {}
        while r.remaining:
            kind = r.u16le("type")
            length = r.u16le("length")
            if length < 4:
                raise malformed(r.what, f"block length {length}")
            b = Reader(r.take(length - 4, "block"), f"block 0x{kind:04x}")
            if kind == SC_CORE:
                values["version"] = b.u32le("version")
                values["client_requested_protocols"] = b.u32le("req") if b.remaining else None
                values["early_capability_flags"] = b.u32le("flags") if b.remaining else 0
            elif kind == SC_SECURITY:
                values["encryption_method"] = b.u32le("encryptionMethod")
                values["encryption_level"] = b.u32le("encryptionLevel")
                if b.remaining:
                    n_random, n_cert = b.u32le("serverRandomLen"), b.u32le("serverCertLen")
                    values["server_random"] = b.take(n_random, "serverRandom")
                    values["server_certificate"] = b.take(n_cert, "serverCertificate")
            elif kind == SC_NET:
                values["io_channel"] = b.u16le("MCSChannelId")
                count = b.u16le("channelCount")
                values["channel_ids"] = tuple(b.u16le("channel") for _ in range(count))
        with as_remote(r.what):
            return cls(**values)
