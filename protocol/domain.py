"""The vocabulary of Terminal Server licensing, as enumerations shared by every layer.

Contract: pure data. Values are the ones written on the wire (msgpack integers or strings) and
in docs/PROTOCOL.md §3; they never change meaning. Where the real system documents a number
(WMI KeyPackType, LicenseStatus, GetTStoLSConnectivityStatus, HowDiscovered, MS-RDPELE error
codes), the member keeps that number, so an administrator of the time recognises it.
"""

from __future__ import annotations

import enum

# The License Server Security Group: 2003 TechNet spells it "Terminal Services Computers",
# termsrv event 1043 and later documents "Terminal Server Computers"; both name one group (§7.3).
SECURITY_GROUP_NAMES = ("Terminal Services Computers", "Terminal Server Computers")
# The Active Directory site a computer is in when none was configured.
DEFAULT_SITE = "Default-First-Site-Name"


class WindowsVersion(enum.IntEnum):
    """Product generation of a license server or terminal server."""

    W2000 = 2000
    W2003 = 2003

    @property
    def label(self) -> str:
        return "Windows 2000" if self is WindowsVersion.W2000 else "Windows Server 2003"

    @property
    def grace_days(self) -> int:
        """Grace period length (KB 813052, TechNet cc738708: 90 days for 2000, 120 for 2003)."""
        return 90 if self is WindowsVersion.W2000 else 120


class LicensingMode(enum.StrEnum):
    """Terminal server licensing mode (KB 822134). Per User exists only on 2003."""

    PER_DEVICE = "per-device"
    PER_USER = "per-user"


class ServerRole(enum.StrEnum):
    """License server role, which decides how terminal servers discover it (TechNet cc738708)."""

    DOMAIN = "domain"
    ENTERPRISE = "enterprise"


class CalProduct(enum.StrEnum):
    """What a client access license is for. Built-in and temporary are kinds of license, not
    products that can be bought; they are listed here because issued licenses name them."""

    W2000_TS_CAL = "w2000-ts-cal"
    W2003_DEVICE_CAL = "w2003-device-cal"
    W2003_USER_CAL = "w2003-user-cal"
    W2000_BUILT_IN = "w2000-built-in"

    @property
    def label(self) -> str:
        return _PRODUCT_LABELS[self]

    @property
    def version(self) -> WindowsVersion:
        if self in (CalProduct.W2000_TS_CAL, CalProduct.W2000_BUILT_IN):
            return WindowsVersion.W2000
        return WindowsVersion.W2003

    @property
    def is_per_user(self) -> bool:
        return self is CalProduct.W2003_USER_CAL


_PRODUCT_LABELS = {
    CalProduct.W2000_TS_CAL: "Windows 2000 Terminal Services CAL",
    CalProduct.W2003_DEVICE_CAL: "Windows Server 2003 Terminal Server Per Device CAL",
    CalProduct.W2003_USER_CAL: "Windows Server 2003 Terminal Server Per User CAL",
    CalProduct.W2000_BUILT_IN: "Existing Windows 2000 License (built-in)",
}


class LicenseStatus(enum.IntEnum):
    """Status of an issued license (Win32_TSIssuedLicense.LicenseStatus numbers)."""

    UNKNOWN = 0
    TEMPORARY = 1
    ACTIVE = 2
    UPGRADED = 3
    REVOKED = 4
    PENDING = 5
    CONCURRENT = 6
    # tslic additions (outside the WMI range): a lease that ran out, a license handed back.
    EXPIRED = 100
    RETURNED = 101


class LicenseKind(enum.StrEnum):
    """What kind of license a client holds."""

    BUILT_IN = "built-in"
    TEMPORARY = "temporary"
    PERMANENT = "permanent"


class KeyPackType(enum.IntEnum):
    """Key pack type (WMI Win32_TSLicenseKeyPack.KeyPackType); 6 is tslic's built-in."""

    UNKNOWN = 0
    RETAIL = 1
    VOLUME = 2
    CONCURRENT = 3
    TEMPORARY = 4
    OPEN = 5
    BUILT_IN = 6


class Program(enum.StrEnum):
    """The License Program list of the CAL installation wizard (Win32_TSLicenseKeyPack)."""

    RETAIL = "retail"
    OPEN_LICENSE = "open-license"
    SELECT = "select"
    ENTERPRISE_AGREEMENT = "enterprise-agreement"
    CAMPUS_AGREEMENT = "campus-agreement"
    SCHOOL_AGREEMENT = "school-agreement"

    @property
    def label(self) -> str:
        return _PROGRAM_LABELS[self]

    @property
    def keypack_type(self) -> KeyPackType:
        if self is Program.RETAIL:
            return KeyPackType.RETAIL
        if self is Program.OPEN_LICENSE:
            return KeyPackType.OPEN
        return KeyPackType.VOLUME


_PROGRAM_LABELS = {
    Program.RETAIL: "License Pack (Retail Purchase)",
    Program.OPEN_LICENSE: "Open License",
    Program.SELECT: "Select License",
    Program.ENTERPRISE_AGREEMENT: "Enterprise Agreement",
    Program.CAMPUS_AGREEMENT: "Campus Agreement",
    Program.SCHOOL_AGREEMENT: "School Agreement",
}


class ClientOS(enum.StrEnum):
    """Operating systems of emulated RDP clients (KB 823313, MS-RDPELE 2.2.2.1.1 PlatformId)."""

    WIN98 = "windows-98"
    NT4 = "windows-nt-4.0"
    W2000_PRO = "windows-2000-professional"
    XP_PRO = "windows-xp-professional"
    XP_HOME = "windows-xp-home"
    NON_WINDOWS = "non-windows"

    @property
    def has_w2000_built_in(self) -> bool:
        """Windows 2000 Professional and XP Professional clients of a Windows 2000 terminal
        server got a built-in license (OS equivalency, KB 823313)."""
        return self in (ClientOS.W2000_PRO, ClientOS.XP_PRO)


class ActivationState(enum.StrEnum):
    """License server activation state (KB 814593)."""

    UNACTIVATED = "unactivated"
    ACTIVATED = "activated"
    DEACTIVATED = "deactivated"
    REACTIVATED = "reactivated"

    @property
    def may_issue_permanent(self) -> bool:
        return self in (ActivationState.ACTIVATED, ActivationState.REACTIVATED)


class ActivationMethod(enum.StrEnum):
    """Windows Server 2003 connection methods to the Clearinghouse (TechNet cc740046)."""

    AUTOMATIC = "automatic"
    WEB = "web"
    TELEPHONE = "telephone"


class HowDiscovered(enum.IntEnum):
    """How a terminal server found a license server (Win32_TSDiscoveredLicenseServer, KB 301932)."""

    POLICY = 0
    REGISTRY = 1
    WORKGROUP = 2
    DOMAIN = 3
    ENTERPRISE = 4


class Connectivity(enum.IntEnum):
    """GetTStoLSConnectivityStatus values (Win32_TerminalServiceSetting)."""

    UNKNOWN = 0
    VALID_WS08R2 = 1
    VALID_WS08 = 2
    BETA_RTM_MISMATCH = 3
    LOWER_VERSION = 4
    NOT_IN_TSCGROUP = 5
    NOT_CONNECTABLE = 6
    UNKNOWN_VALIDITY = 7
    ACCESS_DENIED = 8
    VALID_VDI = 9
    FEATURE_NOT_SUPPORTED = 10
    VALID_LS = 11


class PeerRole(enum.StrEnum):
    """Who is speaking on a connection (the `role` of a Hello)."""

    TERMINAL_SERVER = "terminal-server"
    LICENSE_SERVER = "license-server"
    ADMINISTRATOR = "administrator"
    CLEARINGHOUSE = "clearinghouse"
    DIRECTORY = "directory"
    RDP_CLIENT = "rdp-client"
