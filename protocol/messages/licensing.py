"""Terminal server <-> license server (docs/PROTOCOL.md §5.3).

Contract: the real TS-to-LS RPC interface is not public (no open specification covers it), so
these names
are tslic's, after the calls that are known (TLSRpcRequestTermServCert) and the documented
behaviour (issue, upgrade or renew, mark validated after logon, return). After Hello/Welcome
(in which a 2000 license server refuses a 2003 terminal server with LOWER_VERSION), the
terminal server may ask for its certificate; every other request needs a Hello that presented
that certificate. Licenses travel as signed blobs (protocol/licenses.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..domain import CalProduct, ClientOS, LicenseKind, LicensingMode, WindowsVersion
from ..names import REMOTE_NAME_MAX, REMOTE_USER_MAX
from .base import Conversation, Message, MessageType, message, require_len, require_text
from .records import ServerRef

LIC = Conversation.LICENSING


@message(MessageType.LS_REQUEST_TS_CERT, LIC)
@dataclass(frozen=True, slots=True, kw_only=True)
class RequestTermServCert(Message):
    """TS -> LS: issue me a terminal-server certificate for this key (TLSRpcRequestTermServCert).
    The public key must be the one signing this conversation's envelopes."""

    name: str
    domain: str
    site: str
    version: WindowsVersion
    public_key: bytes

    def check(self) -> None:
        require_len(self.public_key, "public_key", 32)
        require_len(self.name, "name", 1, REMOTE_NAME_MAX)
        require_text(self.name, "name", REMOTE_NAME_MAX)


@message(MessageType.LS_TS_CERT, LIC)
@dataclass(frozen=True, slots=True, kw_only=True)
class TermServCert(Message):
    """LS -> TS: the chain for the terminal server, root first, its own certificate last."""

    cert_chain: tuple[bytes, ...]


@message(MessageType.LS_ISSUE_LICENSE, LIC)
@dataclass(frozen=True, slots=True, kw_only=True)
class IssueLicense(Message):
    """TS -> LS: a client without a usable license asks for one."""

    hwid: bytes
    machine: str
    user: str
    client_os: ClientOS
    mode: LicensingMode
    had_temporary: bool = False  # the client presented an expired temporary license

    def check(self) -> None:
        if _usual_client(self.hwid, self.machine, self.user):
            return
        require_len(self.hwid, "hwid", 32)
        require_len(self.machine, "machine", 1, REMOTE_NAME_MAX)
        require_text(self.machine, "machine", REMOTE_NAME_MAX)
        require_text(self.user, "user", REMOTE_USER_MAX)


def _usual_client(hwid: bytes, machine: str, user: str) -> bool:
    """Whether a license request's client fields pass every check of its `check`: a 32-byte
    hardware id, a machine name of 1 to 64 characters and a user name of at most 255, both
    printable (a printable string holds no character `text_problem` refuses). Asked on
    every license request: the usual answer is this one expression, and only a request that
    fails it goes through the checks that say what is wrong (issue 19).
    tests/protocol/test_client_fields_fast_path.py holds it to that."""
    return (
        len(hwid) == 32
        and 0 < len(machine) <= REMOTE_NAME_MAX
        and len(user) <= REMOTE_USER_MAX
        and machine.isprintable()
        and user.isprintable()
    )


@message(MessageType.LS_UPGRADE_LICENSE, LIC)
@dataclass(frozen=True, slots=True, kw_only=True)
class UpgradeLicenseRequest(Message):
    """TS -> LS: the client presented this license; upgrade a validated temporary to a
    permanent CAL, or renew a permanent one within 7 days of expiry."""

    license: bytes
    hwid: bytes
    machine: str
    user: str
    client_os: ClientOS
    mode: LicensingMode
    # Set only when forwarding a Referral that says so: the referring license server marked
    # this (its own) temporary license validated after a logon (CAL-12, docs/PROTOCOL.md §7).
    temporary_validated: bool = False

    def check(self) -> None:
        if _usual_client(self.hwid, self.machine, self.user):
            require_len(self.license, "license", 1, 8192)
            return
        require_len(self.hwid, "hwid", 32)
        require_len(self.license, "license", 1, 8192)
        require_len(self.machine, "machine", 1, REMOTE_NAME_MAX)
        require_text(self.machine, "machine", REMOTE_NAME_MAX)
        require_text(self.user, "user", REMOTE_USER_MAX)


@message(MessageType.LS_LICENSE_GRANTED, LIC)
@dataclass(frozen=True, slots=True, kw_only=True)
class LicenseGranted(Message):
    """LS -> TS: the license to hand to the client (or the same one, if nothing changed)."""

    license: bytes
    license_id: int
    kind: LicenseKind
    product: CalProduct
    expires_at: int  # ms on the virtual clock; 0: never (built-in)
    upgraded: bool = False  # True if this replaces the presented license
    event_ids: tuple[int, ...] = ()  # license-server events logged for this request


@message(MessageType.LS_REFERRAL, LIC)
@dataclass(frozen=True, slots=True, kw_only=True)
class Referral(Message):
    """LS -> TS: I have no CALs of the needed type; these license servers do (TSFAQ)."""

    product: CalProduct
    servers: tuple[ServerRef, ...]
    reason: str = ""
    # The referring server issued the presented temporary license and it was validated by a
    # logon (MarkLicense): the target may upgrade it although it did not issue it (CAL-12).
    temporary_validated: bool = False


@message(MessageType.LS_MARK_LICENSE, LIC)
@dataclass(frozen=True, slots=True, kw_only=True)
class MarkLicense(Message):
    """TS -> LS: the user of this device logged on successfully (post-logon validation)."""

    license_id: int
    hwid: bytes

    def check(self) -> None:
        require_len(self.hwid, "hwid", 32)


@message(MessageType.LS_LICENSE_MARKED, LIC)
@dataclass(frozen=True, slots=True, kw_only=True)
class LicenseMarked(Message):
    """LS -> TS: the temporary license is now marked validated."""

    license_id: int
    validated: bool


@message(MessageType.LS_RETURN_LICENSE, LIC)
@dataclass(frozen=True, slots=True, kw_only=True)
class ReturnLicense(Message):
    """TS -> LS: give this license back to its pool."""

    license_id: int
    hwid: bytes

    def check(self) -> None:
        require_len(self.hwid, "hwid", 32)


@message(MessageType.LS_LICENSE_RETURNED, LIC)
@dataclass(frozen=True, slots=True, kw_only=True)
class LicenseReturned(Message):
    """LS -> TS: the license is back in the pool."""

    license_id: int
