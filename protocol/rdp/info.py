"""Client Info PDU and Set Error Info PDU (MS-RDPBCGR §2.2.1.11, §2.2.5.1).

Contract:
- `ClientInfo.parse(body)` reads TS_INFO_PACKET (§2.2.1.11.1.1): code page, flags, domain,
  user name, password, alternate shell and working directory, in UTF-16LE when INFO_UNICODE is
  set and in the code page (read as Latin-1) otherwise. Each cb* length excludes the NUL
  terminator that follows it; lengths are limited to the maxima of §2.2.1.11.1.1 (512 bytes
  for the password and alternate shell, 512 for the others in this implementation).
  `extra` keeps the TS_EXTENDED_INFO_PACKET bytes raw, so `build()` round-trips.
- `SetErrorInfo(error_info)` is the Share Data PDU with pduType2 47 (§2.2.5.1.1) and a LE32
  errorInfo; `build(source)` returns the 22 bytes, `parse` reads them back.
"""

from __future__ import annotations

import dataclasses
import enum

from ._wire import Reader, invalid, local, too_large, u16le, u32le

INFO_UNICODE = 0x00000010
INFO_MOUSE = 0x00000001
INFO_DISABLECTRLALTDEL = 0x00000002
INFO_AUTOLOGON = 0x00000008
INFO_LOGONERRORS = 0x00010000
MAX_INFO_FIELD = 512


def _encode(text: str, unicode: bool) -> bytes:
    return text.encode("utf-16-le") if unicode else text.encode("latin-1", errors="replace")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ClientInfo:
    code_page: int = 0
    flags: int = INFO_UNICODE | INFO_MOUSE | INFO_DISABLECTRLALTDEL
    domain: str = ""
    user_name: str = ""
    password: str = ""
    alternate_shell: str = ""
    working_dir: str = ""
    extra: bytes = b""

    def __repr__(self) -> str:  # never print the password
        return (
            f"ClientInfo(domain={self.domain!r}, user_name={self.user_name!r}, "
            f"flags=0x{self.flags:08x}, password={'***' if self.password else ''!r})"
        )

    @property
    def unicode(self) -> bool:
        return bool(self.flags & INFO_UNICODE)

    def build(self) -> bytes:
        fields = [
            _encode(v, self.unicode)
            for v in (
                self.domain,
                self.user_name,
                self.password,
                self.alternate_shell,
                self.working_dir,
            )
        ]
        for raw in fields:
            if len(raw) > MAX_INFO_FIELD:
                raise local("Client Info", f"a field of {len(raw)} bytes is too long")
        nul = b"\x00\x00" if self.unicode else b"\x00"
        head = u32le(self.code_page) + u32le(self.flags)
        head += b"".join(u16le(len(raw)) for raw in fields)
        return head + b"".join(raw + nul for raw in fields) + self.extra

    @classmethod
    def parse(cls, body: bytes) -> ClientInfo:
        r = Reader(body, "Client Info PDU")
        code_page = r.u32le("CodePage")
        flags = r.u32le("flags")
        sizes = [
            r.u16le(name) for name in ("cbDomain", "cbUserName", "cbPassword", "cbShell", "cbDir")
        ]
        unicode = bool(flags & INFO_UNICODE)
        nul = b"\x00\x00" if unicode else b"\x00"
        values = []
        for size in sizes:
            if size > MAX_INFO_FIELD:
                raise too_large(r.what, f"a string of {size} bytes exceeds {MAX_INFO_FIELD}")
            if unicode and size % 2:
                raise invalid(r.what, f"odd UTF-16 length {size}")
            raw = r.take(size, "string")
            if r.take(len(nul), "terminator") != nul:
                raise invalid(r.what, "a string is not NUL-terminated")
            text = raw.decode("utf-16-le", errors="replace") if unicode else raw.decode("latin-1")
            values.append(text)
        return cls(
            code_page=code_page,
            flags=flags,
            domain=values[0],
            user_name=values[1],
            password=values[2],
            alternate_shell=values[3],
            working_dir=values[4],
            extra=r.rest(),
        )


class ErrorInfo(enum.IntEnum):
    """errorInfo codes used by a licensing front end (§2.2.5.1.1)."""

    NONE = 0x0
    RPC_INITIATED_DISCONNECT = 0x1
    LOGOFF_BY_USER = 0xC
    SERVER_DENIED_CONNECTION = 0x7
    LICENSE_INTERNAL = 0x100
    LICENSE_NO_LICENSE_SERVER = 0x101
    LICENSE_NO_LICENSE = 0x102
    LICENSE_BAD_CLIENT_MSG = 0x103
    LICENSE_HWID_DOESNT_MATCH_LICENSE = 0x104
    LICENSE_BAD_CLIENT_LICENSE = 0x105
    LICENSE_CANT_FINISH_PROTOCOL = 0x106
    LICENSE_CLIENT_ENDED_PROTOCOL = 0x107
    LICENSE_BAD_CLIENT_ENCRYPTION = 0x108
    LICENSE_CANT_UPGRADE_LICENSE = 0x109
    LICENSE_NO_REMOTE_CONNECTIONS = 0x10A


PDUTYPE_DATAPDU = 0x7
TS_PROTOCOL_VERSION = 0x10
PDUTYPE2_SET_ERROR_INFO_PDU = 0x2F
STREAM_LOW = 1
DEFAULT_SHARE_ID = 0x000103EA


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SetErrorInfo:
    error_info: int
    share_id: int = DEFAULT_SHARE_ID

    def build(self, source: int = 1002) -> bytes:
        total = 22
        control = u16le(total) + u16le(TS_PROTOCOL_VERSION | PDUTYPE_DATAPDU) + u16le(source)
        data = u32le(self.share_id) + bytes([0, STREAM_LOW]) + u16le(total - 14)
        data += bytes([PDUTYPE2_SET_ERROR_INFO_PDU, 0]) + u16le(0)
        return control + data + u32le(self.error_info)

    @classmethod
    def parse(cls, body: bytes) -> SetErrorInfo:
        r = Reader(body, "Set Error Info PDU")
        if r.u16le("totalLength") != len(body):
            raise invalid(r.what, "totalLength does not match")
        if r.u16le("pduType") & 0xF != PDUTYPE_DATAPDU:
            raise invalid(r.what, "not a Data PDU")
        r.u16le("pduSource")
        share_id = r.u32le("shareId")
        r.skip(4, "pad, streamId, uncompressedLength")
        if r.u8("pduType2") != PDUTYPE2_SET_ERROR_INFO_PDU:
            raise invalid(r.what, "pduType2 is not 47")
        r.skip(3, "compression")
        value = cls(error_info=r.u32le("errorInfo"), share_id=share_id)
        r.end()
        return value
