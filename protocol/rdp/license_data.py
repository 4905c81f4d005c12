"""The plaintext structures carried inside encrypted licensing blobs (MS-RDPELE).

Contract: `NewLicenseInfo` (ELE §2.2.2.6.1), `ChallengeResponseData` (§2.2.2.5.1) and
`HardwareId` (§2.2.2.3.1) each `build()` and `parse()` byte for byte; parse errors are
`RemoteProtocolError`s and every LE32 length is bounded by `MAX_LICENSE_FIELD`.
"""

from __future__ import annotations

import dataclasses

from ._wire import Reader, u16le, u32le
from .licensing import read_lp32


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class NewLicenseInfo:
    """NEW_LICENSE_INFO (ELE §2.2.2.6.1): the plaintext inside a New/Upgrade License."""

    version: int
    scope: bytes
    company_name: bytes
    product_id: bytes
    license_info: bytes

    def build(self) -> bytes:
        out = u32le(self.version)
        for field in (self.scope, self.company_name, self.product_id, self.license_info):
            out += u32le(len(field)) + field
        return out

    @classmethod
    def parse(cls, data: bytes) -> NewLicenseInfo:
        r = Reader(data, "NEW_LICENSE_INFO")
        value = cls(
            version=r.u32le("dwVersion"),
            scope=read_lp32(r, "Scope"),
            company_name=read_lp32(r, "CompanyName"),
            product_id=read_lp32(r, "ProductId"),
            license_info=read_lp32(r, "LicenseInfo"),
        )
        r.end()
        return value


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ChallengeResponseData:
    """PLATFORM_CHALLENGE_RESPONSE_DATA (ELE §2.2.2.5.1)."""

    challenge: bytes
    version: int = 0x0100
    client_type: int = 0xFF00
    detail_level: int = 3

    def build(self) -> bytes:
        head = u16le(self.version) + u16le(self.client_type) + u16le(self.detail_level)
        return head + u16le(len(self.challenge)) + self.challenge

    @classmethod
    def parse(cls, data: bytes) -> ChallengeResponseData:
        r = Reader(data, "PLATFORM_CHALLENGE_RESPONSE_DATA")
        version, client_type, level = r.u16le("wVersion"), r.u16le("wClientType"), r.u16le("level")
        value = cls(
            version=version,
            client_type=client_type,
            detail_level=level,
            challenge=r.take(r.u16le("cbChallenge"), "pbChallenge"),
        )
        r.end()
        return value


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class HardwareId:
    """CLIENT_HARDWARE_ID (ELE §2.2.2.3.1): 20 bytes."""

    platform_id: int
    data: tuple[int, int, int, int]

    def build(self) -> bytes:
        return u32le(self.platform_id) + b"".join(u32le(d) for d in self.data)

    @classmethod
    def parse(cls, data: bytes) -> HardwareId:
        r = Reader(data, "CLIENT_HARDWARE_ID")
        platform = r.u32le("PlatformId")
        words = (r.u32le("Data1"), r.u32le("Data2"), r.u32le("Data3"), r.u32le("Data4"))
        r.end()
        return cls(platform_id=platform, data=words)
