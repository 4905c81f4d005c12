"""Events of the RDP server connection (connection.py) that are not plain PDUs.

Contract: received events are what `RdpServerConnection.next_event()` returns besides the
PDU dataclasses of x224.py and mcs.py; sent events are what `send()` accepts besides them.
All are frozen, slotted, keyword-only dataclasses; none holds a socket or a clock.
"""

from __future__ import annotations

import dataclasses

from ..errors import ErrorCode, LocalProtocolError
from .gcc import ClientSettings
from .info import ClientInfo
from .licensing import PREAMBLE_VERSION_3_0, LicensingMessage
from .mcs import ConnectInitial
from .security import EncryptionLevel

# ---- received --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ClientConnect:
    """MCS Connect-Initial with its GCC settings (§2.2.1.3)."""

    mcs: ConnectInitial
    settings: ClientSettings


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SecurityEstablished:
    """The Security Exchange PDU was decrypted and session keys derived (§5.3.4-§5.3.5).
    `client_random` is returned so a caller can log or test the derivation."""

    client_random: bytes
    flags: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ClientInfoReceived:
    """The Client Info PDU (§2.2.1.11); licensing starts now (ELE §1.3.3)."""

    info: ClientInfo
    flags: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class LicensingReceived:
    """A client licensing PDU (ELE §2.2.2); `encrypted` tells whether it came under RC4."""

    message: LicensingMessage
    preamble_flags: int
    encrypted: bool


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DataReceived:
    """Any other slow-path PDU, decrypted, with its security flags (0 under TLS)."""

    channel_id: int
    flags: int
    data: bytes


# ---- sent ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AcceptSettings:
    """Answer the Connect-Initial with an MCS Connect-Response (§2.2.1.4).

    `server_random` (32 bytes, from the caller's randomness) is required under Standard RDP
    Security; `encryption_level` NONE means no RDP-level encryption (TLS, §5.4).
    """

    server_random: bytes = b""
    encryption_level: EncryptionLevel = EncryptionLevel.CLIENT_COMPATIBLE


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SendLicensing:
    """A server licensing PDU; encrypted when the client asked for it (flag 0x0200 in its
    Security Exchange) under Standard RDP Security."""

    message: LicensingMessage
    preamble_flags: int = PREAMBLE_VERSION_3_0


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SendErrorInfo:
    """Set Error Info PDU (§2.2.5.1.1); the caller disconnects afterwards."""

    error_info: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SendSharePdu:
    """A Share Control PDU of the session after licensing (share.py builds them): Demand
    Active, Synchronize, Control, Font Map, Bitmap Update, Deactivate All. The first one ends
    licensing. Encrypted under Standard RDP Security, bare under TLS (§5.4)."""

    pdu: bytes

    def __post_init__(self) -> None:
        if len(self.pdu) < 6:
            raise LocalProtocolError(
                "SendSharePdu: not a Share Control PDU", code=ErrorCode.INVALID_FIELD
            )
