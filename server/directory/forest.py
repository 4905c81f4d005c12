"""The emulated forest as immutable values, and the naming rules every entry must keep.

Contract:
- `Domain`, `Computer`, `Group` and `Topology` are frozen values; `Topology` finds domains
  (by NetBIOS or DNS name) and sites case-insensitively and names the site's
  TS-Enterprise-License-Server object (MS-ADSC Licensing-Site-Settings). The spelling given is
  kept for display.
- The rules shared by the topology file (topology.py) and the directory's live changes
  (service.py): `check_computer_name` (NetBIOS-style, 1-15 characters), `check_version`
  (2000 or 2003), `check_dc_rules` (a domain at functional level 2003 admits only Windows
  Server 2003 domain controllers), and `is_ts_group` / `same_group`, which treat both
  spellings of the License Server Security Group as one group (TechNet cc758063).
- A broken rule raises `TopologyError` (a `ServiceError`, INVALID_FIELD) with `detail["key"]`.
- Pure: no I/O. Every public name is re-exported by `tslic.server.directory.topology`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tslic.protocol.domain import SECURITY_GROUP_NAMES
from tslic.protocol.errors import ErrorCode, ServiceError

VERSIONS = (2000, 2003)
TS_GROUP_NAMES = SECURITY_GROUP_NAMES  # both spellings of one group (TechNet cc758063)

# NetBIOS-style names (computers, domains' NetBIOS names); also used by topology.py.
NETBIOS_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,14}$")


class TopologyError(ServiceError):
    """A topology file or a computer description that breaks the rules."""

    code = ErrorCode.INVALID_FIELD


@dataclass(frozen=True, slots=True, kw_only=True)
class Domain:
    dns_name: str
    netbios: str
    functional_level: int  # 2000 or 2003

    @property
    def dn(self) -> str:
        return dns_to_dn(self.dns_name)


@dataclass(frozen=True, slots=True, kw_only=True)
class Computer:
    name: str
    domain: str  # NetBIOS name of its domain
    site: str
    is_domain_controller: bool
    os_version: int  # 2000 or 2003
    address: str = ""  # a fixed address from the file; registrations override it


@dataclass(frozen=True, slots=True, kw_only=True)
class Group:
    name: str
    scope: str  # the NetBIOS domain name (domain-local group) or the computer name (local)
    local: bool  # True: local to the computer `scope`
    members: tuple[str, ...]

    @property
    def qualified(self) -> str:
        return f"{self.scope}\\{self.name}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Topology:
    forest_dn: str
    domains: tuple[Domain, ...]
    sites: tuple[str, ...]
    computers: tuple[Computer, ...]
    groups: tuple[Group, ...]

    @property
    def forest_name(self) -> str:
        """The forest root domain's DNS name (DC=oldcorp,DC=example -> oldcorp.example)."""
        return ".".join(part.split("=", 1)[1] for part in self.forest_dn.split(","))

    def domain(self, name: str) -> Domain | None:
        """A domain by NetBIOS or DNS name, case-insensitively."""
        key = name.strip().casefold()
        for d in self.domains:
            if key in (d.netbios.casefold(), d.dns_name.casefold()):
                return d
        return None

    def site(self, name: str) -> str | None:
        """The site's spelling in the file, found case-insensitively."""
        key = name.strip().casefold()
        return next((s for s in self.sites if s.casefold() == key), None)

    def site_dn(self, site: str) -> str:
        """The DN of the site's TS-Enterprise-License-Server object (MS-ADSC)."""
        return (
            f"CN=TS-Enterprise-License-Server,CN={site},CN=Sites,CN=Configuration,{self.forest_dn}"
        )


def dns_to_dn(dns_name: str) -> str:
    return ",".join(f"DC={label}" for label in dns_name.split("."))


def is_ts_group(name: str) -> bool:
    """True for either spelling of the License Server Security Group (TechNet cc758063)."""
    return name.strip().casefold() in {n.casefold() for n in TS_GROUP_NAMES}


def check_computer_name(name: str, key: str = "name") -> None:
    """Refuse a computer name that is not a NetBIOS-style name (1-15 letters, digits, - or _).

    Raises:
        TopologyError: INVALID_FIELD naming `key`.
    """
    if not NETBIOS_NAME.match(name):
        raise TopologyError(
            f"{key} {name!r} is not a computer name: use 1 to 15 letters, digits, '-' or '_'",
            detail={"key": key},
        )


def check_version(value: object, key: str) -> int:
    """Refuse anything but 2000 or 2003 (bool is not a number here)."""
    if isinstance(value, bool) or value not in VERSIONS:
        raise TopologyError(f"{key} must be 2000 or 2003, got {value!r}", detail={"key": key})
    assert isinstance(value, int)
    return value


def check_dc_rules(domain: Domain, computer: Computer) -> None:
    """A domain at functional level 2003 admits only Windows Server 2003 domain controllers."""
    if computer.is_domain_controller and computer.os_version < domain.functional_level:
        raise TopologyError(
            f"{computer.name} cannot be a domain controller of {domain.netbios}: the domain's "
            f"functional level is {domain.functional_level}, so its domain controllers must "
            f"run Windows Server {domain.functional_level}",
            detail={"key": "os_version"},
        )


def same_group(group: Group, scope: str, name: str) -> bool:
    """True if `group` is `scope\\name`, treating both TS group spellings as one (SEC-3)."""
    if group.scope.casefold() != scope.casefold():
        return False
    if is_ts_group(group.name) and is_ts_group(name):
        return True
    return group.name.casefold() == name.strip().casefold()
