"""License server discovery and the discovery cache: the terminal server's `LicenseServers`.

Contract:
- `LicenseServers.discover()` gathers candidates in the documented order
  (protocol.discovery.discovery_order, KB 232520, KB 301932): the 2003 SP1 policy list and the
  LicenseServers registry list (2003) or DefaultLicenseServer (2000); in a domain, the
  enterprise license servers published for the site (DirQueryEnterprise) and the license
  servers on the domain controllers (DirQueryDomainControllers); in a workgroup, the servers
  that answer the broadcast (the configured subnet servers: the mailslot format is not public,
  KB 232520). Addresses missing are looked up with DirLookupComputer. It then probes candidates in
  order until one can serve (protocol.discovery.select_server) and records every probe in
  the cache (`ServerEntry`: how found, connectivity per GetTStoLSConnectivityStatus,
  reachable, issuing).
- `resolve(ref)` gives the cache entry of a server named in a referral, probing it when new.
- Probing a server and obtaining its certificate is probing.py (`Prober`); the server in use,
  `call`/`call_at` and failover (DISC-8) are failover.py (`Failover`); `LicenseServers` is
  both, plus the discovery that a failover runs. `NoLicenseServer` (failover.py) is
  re-exported here.
- Probes and requests use the agent's kept connections (links.py): a probe opens a new one
  (and keeps it for the requests that follow), a request reuses the one open, so a new RDP
  client costs its license server requests, not connections and Hellos. `aclose()` closes
  them with a Goodbye.
- Nothing from trio, sockets or the directory escapes: failures become cache entries.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

import trio
from tslic.protocol.discovery import Candidate, discovery_order, preferred_servers
from tslic.protocol.domain import (
    DEFAULT_SITE,
    Connectivity,
    HowDiscovered,
    WindowsVersion,
)
from tslic.protocol.messages.directory import (
    DirQueryDomainControllers,
    DirQueryEnterprise,
)
from tslic.protocol.messages.records import ServerRef
from tslic.runtime.clock import Clock

from .config import AgentConfig
from .directory import Directory, directory_servers, lookup
from .events import EventLog
from .failover import Failover
from .failover import NoLicenseServer as NoLicenseServer  # re-exported: callers import it here
from .links import Links
from .state import AgentState, ServerEntry

log = logging.getLogger(__name__)


class LicenseServers(Failover):
    """The terminal server's view of license servers: discovery, cache, calls."""

    def __init__(
        self,
        config: AgentConfig,
        state: AgentState,
        events: EventLog,
        clock: Clock,
        *,
        on_found: Callable[[], None] = lambda: None,
        shuffle: Callable[[list[str]], list[str]] | None = None,
    ) -> None:
        self.config = config
        self.state = state
        self.events = events
        self.clock = clock
        self._on_found = on_found
        self._shuffle = shuffle or _random_shuffle
        self._key = state.key()
        self._directory = Directory(config, self._key, clock)
        self._lock = trio.Lock()
        self._lost = False
        self.links = Links(self._open, clock.now, per_server=config.connections_per_server)

    async def aclose(self) -> None:
        """Close the connections to license servers (Goodbye on each)."""
        await self.links.aclose()

    # ---- the server in use (the rest is failover.py) ----------------------------------------

    async def settled(self) -> ServerEntry | None:
        """Wait for a discovery in progress to finish; return the server in use."""
        async with self._lock:
            pass
        return self.current()

    # ---- discovery --------------------------------------------------------------------------

    async def discover(self, *, exclude: frozenset[str] = frozenset()) -> ServerEntry | None:
        """Run discovery and choose a server (see the module docstring).

        Args:
            exclude: case-folded names not to use now (a server that just failed).

        Returns:
            The chosen server's cache entry, or None if none can serve.
        """
        async with self._lock:
            candidates = await self._gather()
            self.state.last_discovery = self.clock.now()
            chosen: ServerEntry | None = None
            for candidate, address in candidates:
                entry = self.state.entry(candidate.name)
                if entry is None:
                    entry = ServerEntry(name=candidate.name, address=address, how=candidate.how)
                    self.state.servers.append(entry)
                else:
                    entry.address = address or entry.address
                    entry.how = candidate.how
                if chosen is not None or candidate.name.casefold() in exclude:
                    continue
                await self.probe(entry)
                if entry.connectivity is Connectivity.VALID_LS:
                    chosen = entry
            self.state.current = None if chosen is None else chosen.name
            self._lost = False
            if chosen is not None:
                self.state.discovery_events.clear()
            self.state.save()
        if chosen is not None:
            self._on_found()
        return chosen

    async def _gather(self) -> list[tuple[Candidate, str]]:
        cfg = self.config
        addresses = cfg.known_addresses()
        enterprise: list[str] = []
        controllers: list[str] = []
        if cfg.in_domain and cfg.directory:
            for query in (
                DirQueryEnterprise(site=cfg.site or DEFAULT_SITE),
                DirQueryDomainControllers(domain=cfg.domain),
            ):
                servers = await directory_servers(self._directory, query)
                names = enterprise if isinstance(query, DirQueryEnterprise) else controllers
                for ref in servers:
                    names.append(ref.name)
                    if ref.address:
                        addresses.setdefault(ref.name.casefold(), ref.address)
        preferred: tuple[Candidate, ...] = ()
        default: str | None = None
        if cfg.version is WindowsVersion.W2003:
            preferred = preferred_servers(
                policy=[n.name for n in cfg.policy_servers],
                registry=[n.name for n in cfg.registry_servers],
            )
        elif cfg.default_license_server is not None:
            default = cfg.default_license_server.name
        ordered = discovery_order(
            ts_version=cfg.version,
            in_domain=cfg.in_domain,
            preferred=preferred,
            default_license_server=default,
            enterprise=enterprise,
            domain_controllers=controllers,
            broadcast=[] if cfg.in_domain else [n.name for n in cfg.subnet_servers],
            shuffle=self._shuffle,
        )
        result = []
        for candidate in ordered:
            address = addresses.get(candidate.name.casefold(), "")
            if not address:
                address = await lookup(self._directory, candidate.name)
            if not address and candidate.how is HowDiscovered.DOMAIN:
                continue  # a domain controller without a license server on it
            result.append((candidate, address))
        return result

    # ---- referrals --------------------------------------------------------------------------

    async def resolve(self, ref: ServerRef) -> ServerEntry:
        """A cache entry for a server named in a referral."""
        entry = self.state.entry(ref.name)
        if entry is None:
            address = ref.address or self.config.known_addresses().get(ref.name.casefold(), "")
            if not address:
                address = await lookup(self._directory, ref.name)
            # A referral is not one of the discovery sources; REGISTRY is the nearest
            # HowDiscovered value ("configured"), and the detail says where it came from.
            entry = ServerEntry(name=ref.name, address=address, how=HowDiscovered.REGISTRY)
            self.state.servers.append(entry)
            await self.probe(entry)
            if entry.connectivity is Connectivity.VALID_LS:
                entry.detail = "found through a referral"
            self.state.save()
        return entry


def _random_shuffle(names: list[str]) -> list[str]:
    # Windows picks a responding server at random (KB 232520); not security-relevant.
    shuffled = list(names)
    random.shuffle(shuffled)
    return shuffled
