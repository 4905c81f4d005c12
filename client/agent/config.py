"""The agent's configuration: what `tslic agent` options say, validated once.

Contract: `AgentConfig` is immutable and valid by construction (`check()` raises a
`ServiceError` with INVALID_FIELD or MODE_NOT_SUPPORTED naming the bad option). Per User is a
Windows Server 2003 mode (KB 822134); a Windows 2000 agent asked for it refuses to start. A
license-server source of the other version is kept and ignored (`ignored_sources()` says which,
for a start-up warning; DISC-6).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography import x509
from tslic.protocol.domain import LicensingMode, WindowsVersion
from tslic.protocol.errors import ErrorCode, ServiceError
from tslic.protocol.grace import DiscoveryIntervals
from tslic.protocol.policy import GraceEnd
from tslic.runtime.limits import Limits

# MS-RDPELE PRODUCT_INFO of the terminal server (MS-RDPELE 2.2.2.1.1): dwVersion is the TS's
# OS version.
PRODUCT_VERSIONS = {WindowsVersion.W2000: 0x00050000, WindowsVersion.W2003: 0x00050002}
COMPANY = "Microsoft Corporation"
PRODUCT_ID = "A02"
SCOPE = "microsoft.com"
# The agent's listener defaults (docs/AGENT.md): RDP clients idle at most 60 s, and a
# terminal server serves fewer sessions than a license server has terminal servers.
AGENT_LIMITS = Limits(idle_timeout=60.0, max_connections=1000)


@dataclass(frozen=True, slots=True, kw_only=True)
class NamedAddress:
    """A license server named in configuration, with its address if the option gave one."""

    name: str
    address: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentConfig:
    """Everything an agent needs to know about itself and where to look for servers."""

    name: str
    version: WindowsVersion
    mode: LicensingMode = LicensingMode.PER_DEVICE
    domain: str = ""
    site: str = ""
    workgroup: str = ""
    policy_servers: tuple[NamedAddress, ...] = ()  # 2003 SP1 policy list (tried first)
    registry_servers: tuple[NamedAddress, ...] = ()  # LicenseServers registry key
    default_license_server: NamedAddress | None = None  # 2000 DefaultLicenseServer
    subnet_servers: tuple[NamedAddress, ...] = ()  # license servers answering a broadcast
    directory: str = ""
    trust_root: x509.Certificate | None = None
    intervals: DiscoveryIntervals = field(default_factory=DiscoveryIntervals)
    grace_end: GraceEnd = GraceEnd.FIRST_PERMANENT_CAL
    network_timeout: float = 10.0  # real seconds for any one exchange with another daemon
    connections_per_server: int = 8  # kept connections to one license server, at most

    def __post_init__(self) -> None:
        if not 1 <= self.connections_per_server <= 1000:
            raise ServiceError(
                "--license-server-connections must be 1 to 1000", code=ErrorCode.INVALID_FIELD
            )
        if not self.name or len(self.name) > 64:
            raise ServiceError("--name must be 1 to 64 characters", code=ErrorCode.INVALID_FIELD)
        if self.mode is LicensingMode.PER_USER and self.version is WindowsVersion.W2000:
            raise ServiceError(
                "Per User licensing exists only on Windows Server 2003 terminal servers; a "
                "Windows 2000 terminal server licenses per device (use --mode per-device or "
                "--version 2003)",
                code=ErrorCode.MODE_NOT_SUPPORTED,
            )
        if self.domain and self.workgroup:
            raise ServiceError(
                "a computer is in a domain or in a workgroup, not both (--domain, --workgroup)",
                code=ErrorCode.INVALID_FIELD,
            )

    def ignored_sources(self) -> tuple[str, ...]:
        """Sources configured that this version does not know, which discovery ignores
        (DISC-6: a 2000 terminal server has no LicenseServers key or SP1 policy, a 2003 one no
        DefaultLicenseServer value), each as a sentence for a start-up warning. They are kept
        and ignored, not refused: a terminal server upgraded from 2000 keeps its old registry
        value, and Windows ignores it."""
        if self.version is WindowsVersion.W2000:
            ignored = []
            if self.policy_servers:
                ignored.append("--policy-license-server (the SP1 policy)")
            if self.registry_servers:
                ignored.append("--license-server (the LicenseServers key)")
            return tuple(f"{option} is ignored: a Windows 2000 terminal server does not know it;"
                         " use --default-license-server" for option in ignored)  # fmt: skip
        if self.default_license_server is not None:
            return ("--default-license-server (the DefaultLicenseServer value) is ignored: a "
                    "Windows Server 2003 terminal server does not know it; use --license-server "
                    "or --policy-license-server",)  # fmt: skip
        return ()

    @property
    def in_domain(self) -> bool:
        return bool(self.domain)

    @property
    def product_version(self) -> int:
        return PRODUCT_VERSIONS[self.version]

    def known_addresses(self) -> dict[str, str]:
        """Addresses given on the command line for the sources this version knows, by
        case-folded server name."""
        named = list(self.subnet_servers)
        if self.version is WindowsVersion.W2003:
            named += [*self.policy_servers, *self.registry_servers]
        elif self.default_license_server is not None:
            named.append(self.default_license_server)  # sources the version ignores: none
        return {n.name.casefold(): n.address for n in named if n.address}
