"""License server discovery order and selection, as pure functions.

Contract:
- The caller (the terminal-server agent) gathers the raw answers: its configured servers, the
  enterprise license servers published for its site, the license servers found on the domain
  controllers of its domain, and the answers to a workgroup broadcast. `discovery_order` only
  orders them and records how each was found (`HowDiscovered`, KB 301932). Randomness (Windows 2000
  picks a responding server at random, KB 232520) comes in as the `shuffle` callable.
- Which sources a terminal server consults, and in which order, is the table `_ORDER`:
  - Windows Server 2003 in a domain (KB 301932): the preferred list (SP1 policy, then the
    LicenseServers registry key), then enterprise servers of the site, then domain servers on
    the domain controllers.
  - Windows 2000 in a domain (KB 232520, KB 239107): DefaultLicenseServer, then the domain
    controllers of its domain (in random order), then the enterprise servers of the site.
  - Workgroup or NT4 domain, either version: the preferred server(s), then broadcast answers
    (in random order).
  Inputs a version does not know are ignored: a Windows 2000 terminal server has no
  LicenseServers key or SP1 policy, a 2003 one no DefaultLicenseServer value.
- A 2003 domain license server installed on a *member* server is never found automatically
  (KB823313, KB301932): it is neither published for the site nor on a domain controller, so it
  can only reach this function through `preferred`. That falls out of the inputs.
- Names are compared case-insensitively (NetBIOS names, FQDNs); the first occurrence wins,
  keeping its spelling and `how`.
- `select_server` walks the ordered candidates with the connectivity probe results and takes
  the first usable one (KB 232520, Win32_TerminalServiceSetting).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from .domain import Connectivity, HowDiscovered, WindowsVersion


@dataclass(frozen=True, kw_only=True, slots=True)
class Candidate:
    """A license server found by discovery and how it was found (KB 301932)."""

    name: str
    how: HowDiscovered


class _Source(enum.Enum):
    PREFERRED = enum.auto()  # 2003: SP1 policy list, LicenseServers registry key
    DEFAULT_LICENSE_SERVER = enum.auto()  # 2000: DefaultLicenseServer registry value
    ENTERPRISE = enum.auto()  # TS-Enterprise-License-Server object of the site
    DOMAIN = enum.auto()  # license servers on the domain controllers of the domain
    BROADCAST = enum.auto()  # workgroup / NT4 mailslot broadcast answers


# (terminal server version, in a domain) -> sources in order; the bool says "shuffle".
_ORDER: dict[tuple[WindowsVersion, bool], tuple[tuple[_Source, bool], ...]] = {
    # KB 301932 and policy TS_LICENSE_SERVERS: specified, then AD, then DCs.
    (WindowsVersion.W2003, True): (
        (_Source.PREFERRED, False),
        (_Source.ENTERPRISE, False),
        (_Source.DOMAIN, False),
    ),
    # KB 301932: LicenseServers key, then broadcast (answer picked at random).
    (WindowsVersion.W2003, False): ((_Source.PREFERRED, False), (_Source.BROADCAST, True)),
    # KB 232520: all DCs of the domain, one responding LS at random; then the site's
    # enterprise LS. KB239107: DefaultLicenseServer overrides discovery.
    (WindowsVersion.W2000, True): (
        (_Source.DEFAULT_LICENSE_SERVER, False),
        (_Source.DOMAIN, True),
        (_Source.ENTERPRISE, False),
    ),
    # KB 232520: mailslot broadcast, every LS answers, one picked at random.
    (WindowsVersion.W2000, False): (
        (_Source.DEFAULT_LICENSE_SERVER, False),
        (_Source.BROADCAST, True),
    ),
}

_PREFERRED_HOWS = frozenset({HowDiscovered.POLICY, HowDiscovered.REGISTRY})


def _identity(names: list[str]) -> list[str]:
    return names


def preferred_servers(
    *, policy: Sequence[str] = (), registry: Sequence[str] = ()
) -> tuple[Candidate, ...]:
    """Build the preferred list of a Windows Server 2003 terminal server (KB 301932).

    Args:
        policy: servers of the SP1 Group Policy "Use the specified license servers".
        registry: sub-keys of ...\\TermService\\Parameters\\LicenseServers.

    Returns:
        Policy servers (tagged POLICY) first, then registry servers (tagged REGISTRY).
    """
    return tuple(Candidate(name=n, how=HowDiscovered.POLICY) for n in policy) + tuple(
        Candidate(name=n, how=HowDiscovered.REGISTRY) for n in registry
    )


def discovery_order(
    *,
    ts_version: WindowsVersion,
    in_domain: bool,
    preferred: Sequence[Candidate] = (),
    default_license_server: str | None = None,
    enterprise: Sequence[str] = (),
    domain_controllers: Sequence[str] = (),
    broadcast: Sequence[str] = (),
    shuffle: Callable[[list[str]], list[str]] = _identity,
) -> tuple[Candidate, ...]:
    """Order the license servers a terminal server found, best first (KB 232520, KB 301932).

    Args:
        ts_version: the terminal server's version.
        in_domain: True in an Active Directory domain; False in a workgroup or NT4 domain.
        preferred: 2003 only: configured servers, each tagged POLICY or REGISTRY
            (see `preferred_servers`), in the order they are to be tried.
        default_license_server: 2000 only: the DefaultLicenseServer value (tagged REGISTRY).
        enterprise: enterprise license servers published for the terminal server's site.
        domain_controllers: license servers found on the domain controllers of its domain.
        broadcast: license servers that answered the workgroup broadcast.
        shuffle: returns its argument in random order; applied where Windows picks at random
            (2000: domain servers; both: broadcast answers). Defaults to keeping the order.

    Returns:
        The candidates, de-duplicated case-insensitively, keeping the first `how`.

    Raises:
        ValueError: if a preferred entry is not tagged POLICY or REGISTRY.
    """
    for c in preferred:
        if c.how not in _PREFERRED_HOWS:
            raise ValueError(f"preferred server {c.name!r} must be tagged POLICY or REGISTRY")
    default = [default_license_server] if default_license_server else []
    tagged: dict[_Source, tuple[HowDiscovered, Sequence[str]]] = {
        _Source.DEFAULT_LICENSE_SERVER: (HowDiscovered.REGISTRY, default),
        _Source.ENTERPRISE: (HowDiscovered.ENTERPRISE, enterprise),
        _Source.DOMAIN: (HowDiscovered.DOMAIN, domain_controllers),
        _Source.BROADCAST: (HowDiscovered.WORKGROUP, broadcast),
    }
    ordered: list[Candidate] = []
    seen: set[str] = set()
    for source, shuffled in _ORDER[(ts_version, in_domain)]:
        if source is _Source.PREFERRED:
            found = [(c.name, c.how) for c in preferred]
        else:
            how, names = tagged[source]
            listed = shuffle(list(names)) if shuffled else list(names)
            found = [(n, how) for n in listed]
        for raw, how in found:
            name = raw.strip()
            if name and name.casefold() not in seen:
                seen.add(name.casefold())
                ordered.append(Candidate(name=name, how=how))
    return tuple(ordered)


class Selection(NamedTuple):
    """Result of `select_server`: the chosen candidate (or None) and those passed over."""

    chosen: Candidate | None
    skipped: tuple[tuple[str, Connectivity], ...]


# KB 823313, TechNet cc758063, Win32_TerminalServiceSetting: only a server whose probe says
# VALID_LS is used. LOWER_VERSION (a 2000 LS
# for a 2003 TS), NOT_CONNECTABLE, NOT_IN_TSCGROUP (License Server Security Group, event 1043),
# ACCESS_DENIED and unknown results are passed over.
USABLE: frozenset[Connectivity] = frozenset({Connectivity.VALID_LS})


def select_server(
    candidates: Sequence[Candidate], probe_results: Mapping[str, Connectivity]
) -> Selection:
    """Take the first candidate whose connectivity probe says it can serve us (KB 232520,
    Win32_TerminalServiceSetting).

    Args:
        candidates: from `discovery_order`, best first.
        probe_results: connectivity status per candidate name (a name missing is UNKNOWN).

    Returns:
        `Selection(chosen, skipped)`: `chosen` is the first usable candidate or None;
        `skipped` lists, in order, each candidate before it with its status.
    """
    skipped: list[tuple[str, Connectivity]] = []
    for candidate in candidates:
        status = probe_results.get(candidate.name, Connectivity.UNKNOWN)
        if status in USABLE:
            return Selection(chosen=candidate, skipped=tuple(skipped))
        skipped.append((candidate.name, status))
    return Selection(chosen=None, skipped=tuple(skipped))
