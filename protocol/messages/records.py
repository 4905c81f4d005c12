"""Records: structured values carried inside messages (docs/PROTOCOL.md §4).

Contract: frozen keyword-only dataclasses, validated on construction like messages. Times are
integers of milliseconds since the Unix epoch on the emulated (virtual) clock; 0 means "none"
where a field says so. Hardware ids are the raw 32-byte Ed25519 public key of the client.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..domain import (
    ActivationMethod,
    ActivationState,
    CalProduct,
    ClientOS,
    KeyPackType,
    LicenseKind,
    LicenseStatus,
    LicensingMode,
    Program,
    ServerRole,
    WindowsVersion,
)
from .base import Record, invalid, require_len, require_text

CONTACT_MAX = 64  # first and last name, company, country/region
EMAIL_MAX = 254  # RFC 5321's limit on a forward path, less its angle brackets


@dataclass(frozen=True, slots=True, kw_only=True)
class ProductInfo(Record):
    """MS-RDPELE PRODUCT_INFO: the terminal server's product (2.2.2.1.1)."""

    version: int  # dwVersion: high word major, low word minor of the terminal server
    company: str
    product_id: str

    def check(self) -> None:
        if not self.company:
            raise invalid("must not be empty (cbCompanyName > 0)", "company")


@dataclass(frozen=True, slots=True, kw_only=True)
class ContactInfo(Record):
    """The Required Information tab: who the license server belongs to (Win32_TSLicenseServer)."""

    first_name: str = ""
    last_name: str = ""
    company: str = ""
    country: str = ""
    email: str = ""

    def check(self) -> None:
        for name in ("first_name", "last_name", "company", "country"):
            require_text(getattr(self, name), name, CONTACT_MAX)
        require_text(self.email, "email", EMAIL_MAX)

    def missing(self, *, need_email: bool) -> list[str]:
        """Names of required fields left empty (first/last name, company, country/region;
        e-mail too for the web method)."""
        labels = {
            "first_name": "first name",
            "last_name": "last name",
            "company": "company",
            "country": "country/region",
        }
        if need_email:
            labels["email"] = "e-mail"
        return [label for name, label in labels.items() if not getattr(self, name).strip()]


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyPackInfo(Record):
    """One installed license key pack, as the licensing utility shows it (LSKeyPack fields)."""

    keypack_id: int
    product: CalProduct
    program: Program | None
    keypack_type: KeyPackType
    description: str
    total: int
    issued: int
    available: int
    installed_at: int
    expires_at: int  # 0: never
    # Licenses held from this pack now (active permanent ones recorded against it). For a
    # User CAL pack, whose `issued` stays 0 (User CALs are not taken from a pool, §7.2), the
    # number of users holding a User CAL from it; it may exceed `total`.
    in_use: int = 0

    def check(self) -> None:
        if min(self.total, self.issued, self.available, self.in_use) < 0:
            raise invalid("counts must not be negative", "total")
        if self.issued + self.available != self.total:
            raise invalid("issued + available must equal total", "available")


@dataclass(frozen=True, slots=True, kw_only=True)
class IssuedLicenseInfo(Record):
    """One issued license (LSLicense / Win32_TSIssuedLicense fields)."""

    license_id: int
    keypack_id: int
    product: CalProduct
    kind: LicenseKind
    status: LicenseStatus
    machine: str
    user: str
    hwid: bytes
    terminal_server: str
    issued_at: int
    expires_at: int
    validated: bool

    def check(self) -> None:
        require_len(self.hwid, "hwid", 32)


@dataclass(frozen=True, slots=True, kw_only=True)
class UserUsage(Record):
    """Per-user report line: who used a User CAL, how often, first and last (a 2008-style
    report the 2003 server did not have; KB 823313)."""

    user: str
    product: CalProduct
    connections: int
    first_seen: int
    last_seen: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerStatus(Record):
    """Properties and status of a license server, for the licensing utility."""

    name: str
    version: WindowsVersion
    role: ServerRole
    domain: str
    site: str
    activation: ActivationState
    method: ActivationMethod
    license_server_id: str
    product_id: str
    contact: ContactInfo
    certificate_temporary: bool
    security_group_enabled: bool
    security_group_members: tuple[str, ...]  # enforced: read at start (local and directory)
    prevent_upgrade: bool
    security_group_pending: tuple[str, ...] = ()  # the local list the next start will read


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerRef(Record):
    """Where to reach a server: its computer name and TCP address."""

    name: str
    address: str  # "host:port"; empty if the computer has not registered one
    domain: str = ""
    site: str = ""
    is_domain_controller: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ComputerInfo(Record):
    """A computer account in the emulated directory."""

    name: str
    domain: str
    site: str
    is_domain_controller: bool
    os_version: int  # 2000 or 2003 (0: unknown)
    address: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class LicenseBody(Record):
    """The signed content of a client license (a CAL, built-in or temporary license).

    Signed by the issuing license server (protocol/licenses.py); bound to the client's
    hardware id so that a copied license is useless on another device."""

    license_id: int
    kind: LicenseKind
    product: CalProduct
    hwid: bytes
    machine: str
    user: str
    client_os: ClientOS
    mode: LicensingMode
    issuer: str
    license_server_id: str
    issued_at: int
    expires_at: int
    scope: str = "microsoft.com"

    def check(self) -> None:
        require_len(self.hwid, "hwid", 32)
        if self.expires_at and self.expires_at < self.issued_at:
            raise invalid("expires before it is issued", "expires_at")


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyPackGrant(Record):
    """What the Clearinghouse signs when it validates a CAL installation (KB 823313)."""

    grant_id: int
    license_server_id: str
    product: CalProduct
    program: Program
    count: int
    description: str
    issued_at: int
    expires_at: int  # 0: never

    def check(self) -> None:
        if self.count <= 0:
            raise invalid("must be positive", "count")
