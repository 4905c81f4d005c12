"""RDP client <-> terminal server: the licensing exchange with MS-RDPELE's semantics.

Contract (docs/PROTOCOL.md §5.2; MS-RDPELE): numbers are 0x100 + bMsgType. The server
opens with `LicenseRequest`; the client answers `NewLicenseRequest` (no stored license) or
`LicenseInfo` (its stored license); the server sends `PlatformChallenge`; the client proves its
hardware id with `PlatformChallengeResponse` (the envelope is signed with the key whose public
half is the hardware id, and the challenge is echoed); the server ends with `NewLicense`,
`UpgradeLicense` or `ErrorAlert`. RC4/MD5 key exchange is replaced by the signed envelope:
the semantics (who proves what, which state follows) are kept, the 1999 cryptography is not.
After licensing, `ClientLogon`/`LogonComplete` emulate the user's logon, which is what lets the
terminal server mark a temporary license validated (KB 287687).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..domain import ClientOS, LicensingMode
from ..names import REMOTE_NAME_MAX, REMOTE_USER_MAX
from .base import (
    Conversation,
    Message,
    MessageType,
    message,
    require_len,
    require_range,
    require_text,
)
from .records import ProductInfo

RDP = Conversation.RDP


class RdpError(enum.IntEnum):
    """LICENSE_ERROR_MESSAGE dwErrorCode (MS-RDPBCGR 2.2.1.12.1.3)."""

    ERR_INVALID_SERVER_CERTIFICATE = 0x01
    ERR_NO_LICENSE = 0x02
    ERR_INVALID_MAC = 0x03
    ERR_INVALID_SCOPE = 0x04
    ERR_NO_LICENSE_SERVER = 0x06
    STATUS_VALID_CLIENT = 0x07
    ERR_INVALID_CLIENT = 0x08
    ERR_INVALID_PRODUCTID = 0x0B
    ERR_INVALID_MESSAGE_LEN = 0x0C


class StateTransition(enum.IntEnum):
    """LICENSE_ERROR_MESSAGE dwStateTransition."""

    ST_TOTAL_ABORT = 1
    ST_NO_TRANSITION = 2
    ST_RESET_PHASE_TO_START = 3
    ST_RESEND_LAST_MESSAGE = 4


class DisconnectReason(enum.IntEnum):
    """Set Error Info PDU licensing codes (MS-RDPBCGR 2.2.5.1.1); 0 = none."""

    NONE = 0
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


@message(MessageType.LICENSE_REQUEST, RDP)
@dataclass(frozen=True, slots=True, kw_only=True)
class LicenseRequest(Message):
    """Server -> client: SERVER_LICENSE_REQUEST with the terminal server's chain."""

    server_random: bytes
    product: ProductInfo
    cert_chain: tuple[bytes, ...]  # root first; the last is the terminal server's own
    scopes: tuple[str, ...]
    mode: LicensingMode

    def check(self) -> None:
        require_len(self.server_random, "server_random", 32)


@message(MessageType.NEW_LICENSE_REQUEST, RDP)
@dataclass(frozen=True, slots=True, kw_only=True)
class NewLicenseRequest(Message):
    """Client -> server: CLIENT_NEW_LICENSE_REQUEST (no usable stored license)."""

    platform_id: int
    client_random: bytes
    user_name: str
    machine_name: str
    client_os: ClientOS

    def check(self) -> None:
        require_len(self.client_random, "client_random", 32)
        require_len(self.machine_name, "machine_name", 1, REMOTE_NAME_MAX)
        require_text(self.machine_name, "machine_name", REMOTE_NAME_MAX)
        require_text(self.user_name, "user_name", REMOTE_USER_MAX)
        require_range(self.platform_id, "platform_id", 0, 0xFFFFFFFF)


@message(MessageType.LICENSE_INFO, RDP)
@dataclass(frozen=True, slots=True, kw_only=True)
class LicenseInfo(Message):
    """Client -> server: CLIENT_LICENSE_INFO, presenting the stored license."""

    platform_id: int
    client_random: bytes
    license: bytes
    user_name: str
    machine_name: str
    client_os: ClientOS

    def check(self) -> None:
        require_len(self.client_random, "client_random", 32)
        require_len(self.license, "license", 1, 8192)
        require_len(self.machine_name, "machine_name", 1, REMOTE_NAME_MAX)
        require_text(self.machine_name, "machine_name", REMOTE_NAME_MAX)
        require_text(self.user_name, "user_name", REMOTE_USER_MAX)
        require_range(self.platform_id, "platform_id", 0, 0xFFFFFFFF)


@message(MessageType.PLATFORM_CHALLENGE, RDP)
@dataclass(frozen=True, slots=True, kw_only=True)
class PlatformChallenge(Message):
    """Server -> client: SERVER_PLATFORM_CHALLENGE."""

    challenge: bytes
    connect_flags: int = 0

    def check(self) -> None:
        require_len(self.challenge, "challenge", 16, 64)


@message(MessageType.PLATFORM_CHALLENGE_RESPONSE, RDP)
@dataclass(frozen=True, slots=True, kw_only=True)
class PlatformChallengeResponse(Message):
    """Client -> server: the challenge echoed and the hardware id, signed by that key."""

    challenge: bytes
    hwid: bytes  # the client's raw Ed25519 public key: MSLicensing\\HardwareID
    client_type: int = 0x0100  # WIN32 0x0100, WIN16 0x0200, WINCE 0x0300, OTHER 0xFF00
    detail_level: int = 3  # LICENSE_DETAIL_DETAIL

    def check(self) -> None:
        require_len(self.challenge, "challenge", 16, 64)
        require_len(self.hwid, "hwid", 32)


@message(MessageType.NEW_LICENSE, RDP)
@dataclass(frozen=True, slots=True, kw_only=True)
class NewLicense(Message):
    """Server -> client: SERVER_NEW_LICENSE, a license for the client to store."""

    license: bytes
    scope: str = "microsoft.com"

    def check(self) -> None:
        require_len(self.license, "license", 1, 8192)


@message(MessageType.UPGRADE_LICENSE, RDP)
@dataclass(frozen=True, slots=True, kw_only=True)
class UpgradeLicense(Message):
    """Server -> client: SERVER_UPGRADE_LICENSE (renewed, upgraded, or the old one echoed
    when no license server could be reached and it is still valid, RDPELE 3.2.5.5)."""

    license: bytes
    scope: str = "microsoft.com"

    def check(self) -> None:
        require_len(self.license, "license", 1, 8192)


@message(MessageType.ERROR_ALERT, RDP)
@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorAlert(Message):
    """Either direction: LICENSE_ERROR_MESSAGE. STATUS_VALID_CLIENT + ST_NO_TRANSITION ends
    licensing successfully without a license (grace period, RDPBCGR 2.2.1.12.1)."""

    error_code: RdpError
    state_transition: StateTransition
    error_info: bytes = b""
    disconnect_reason: DisconnectReason = DisconnectReason.NONE
    text: str = ""  # what the user is shown, in the words of the time

    def variant(self) -> str:
        return self.state_transition.name

    @property
    def is_valid_client(self) -> bool:
        return (
            self.error_code is RdpError.STATUS_VALID_CLIENT
            and self.state_transition is StateTransition.ST_NO_TRANSITION
        )


@message(MessageType.CLIENT_LOGON, RDP)
@dataclass(frozen=True, slots=True, kw_only=True)
class ClientLogon(Message):
    """Client -> server: the user logs on (tslic's stand-in for the logon that follows
    licensing; a successful one lets the server mark a temporary license validated)."""

    user_name: str
    domain: str
    credentials_valid: bool = True


@message(MessageType.LOGON_COMPLETE, RDP)
@dataclass(frozen=True, slots=True, kw_only=True)
class LogonComplete(Message):
    """Server -> client: the session is up (or the logon failed)."""

    logged_on: bool
    session_id: int
    text: str = ""
