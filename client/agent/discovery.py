"""License server discovery, the discovery cache, and conversations with license servers.

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
- A probe opens a licensing conversation presenting the terminal server's certificate if it
  has one, and obtains a certificate (RequestTermServCert) if it has none or the server does
  not accept it. A 2000 server refusing a 2003 terminal server (LOWER_VERSION) is recorded and
  skipped; a security-group refusal is recorded as NOT_IN_TSCGROUP and logs event 1043.
- `call(request)` sends one request to the server in use; when it stops answering the next
  candidate is probed (failover) and the request retried there; until a discovery runs,
  `lost` says a failover is due now (DISC-8). A server refusing a request with ACCESS_DENIED
  (it does not trust our certificate, SEC-9) is asked for one of its own, then asked again.
  A refusal of the request itself (no license available, ...) is the caller's, as
  `ServiceError`. When no server can be used it raises `NoLicenseServer`.
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
from contextlib import AbstractAsyncContextManager

import trio
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from tslic.protocol import ConnectionLost, Conversation, ErrorCode, Message, ServiceError
from tslic.protocol.clock import to_datetime
from tslic.protocol.discovery import Candidate, discovery_order, preferred_servers
from tslic.protocol.domain import (
    DEFAULT_SITE,
    Connectivity,
    HowDiscovered,
    PeerRole,
    WindowsVersion,
)
from tslic.protocol.errors import ProtocolError, TslicError
from tslic.protocol.messages.directory import (
    DirQueryDomainControllers,
    DirQueryEnterprise,
)
from tslic.protocol.messages.licensing import RequestTermServCert, TermServCert
from tslic.protocol.messages.records import ServerRef
from tslic.protocol.pki import (
    CertRole,
    cert_from_der,
    raw_public_key,
    validate_chain,
)
from tslic.runtime.clock import Clock
from tslic.runtime.peer import PeerStream, open_peer

from .config import AgentConfig
from .directory import Directory, directory_servers, lookup
from .events import EventId, EventLog
from .links import Links, Unusable
from .links import Refused as _Refused
from .state import AgentState, ServerEntry

log = logging.getLogger(__name__)


class NoLicenseServer(TslicError):
    """No license server could be found or reached."""

    code = ErrorCode.NOT_FOUND


_HELLO_STATUS = {
    ErrorCode.LOWER_VERSION: Connectivity.LOWER_VERSION,
    ErrorCode.NOT_IN_SECURITY_GROUP: Connectivity.NOT_IN_TSCGROUP,
    ErrorCode.ACCESS_DENIED: Connectivity.ACCESS_DENIED,
}


class LicenseServers:
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

    # ---- the cache --------------------------------------------------------------------------

    def current(self) -> ServerEntry | None:
        """The server in use, if it was usable at its last check."""
        if self.state.current is None:
            return None
        entry = self.state.entry(self.state.current)
        if entry is None or entry.connectivity is not Connectivity.VALID_LS:
            return None
        return entry

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

    # ---- probing and certificates -----------------------------------------------------------

    def chain(self) -> tuple[bytes, ...]:
        return self.state.chain_der()

    def _open(
        self, address: str, chain: tuple[bytes, ...]
    ) -> AbstractAsyncContextManager[PeerStream]:
        """A licensing conversation as this terminal server (the Links' opener)."""
        return open_peer(
            address,
            conversation=Conversation.LICENSING,
            key=self._key,
            clock=self.clock,
            role=PeerRole.TERMINAL_SERVER,
            name=self.config.name,
            version=int(self.config.version),
            cert_chain=chain,
        )

    async def probe(self, entry: ServerEntry) -> None:
        """Check one server and record the result in its cache entry (never raises for a
        server's failure; StorageError if the certificate cannot be saved)."""
        entry.last_checked = self.clock.now()
        status, detail = Connectivity.NOT_CONNECTABLE, ""
        try:
            if not entry.address:
                raise ConnectionLost(f"no address is known for {entry.name}")
            with trio.fail_after(self.config.network_timeout):
                status, detail = await self._probe(entry)
        except _Refused as exc:
            status, detail = _HELLO_STATUS.get(exc.code, Connectivity.ACCESS_DENIED), exc.message
            entry.reachable = True
        except (ConnectionLost, ProtocolError, trio.TooSlowError) as exc:
            entry.reachable = False
            detail = str(exc) or "no answer in time"
        entry.connectivity, entry.detail = status, detail
        entry.issuing = status is Connectivity.VALID_LS
        if not entry.issuing and entry.address:
            await self.links.drop(entry.address)  # keep no connection to a server we cannot use
        if status is Connectivity.NOT_IN_TSCGROUP:
            self.events.log(EventId.NOT_IN_TS_COMPUTERS_GROUP, self.clock.now(), server=entry.name)

    async def _probe(self, entry: ServerEntry) -> tuple[Connectivity, str]:
        chain = self.chain()
        try:
            async with self.links.fresh(entry.address, chain) as stream:
                entry.reachable = True
                return await self._after_hello(entry, stream, need_cert=not chain)
        except _Refused as exc:
            if not chain or exc.code not in (
                ErrorCode.UNTRUSTED_CERTIFICATE,
                ErrorCode.CERTIFICATE_EXPIRED,
            ):
                raise
        # The server does not accept the certificate we hold: ask it for one of its own.
        async with self.links.fresh(entry.address, ()) as stream:
            entry.reachable = True
            return await self._after_hello(entry, stream, need_cert=True)

    async def _after_hello(
        self, entry: ServerEntry, stream: PeerStream, *, need_cert: bool
    ) -> tuple[Connectivity, str]:
        entry.version = stream.welcome.version
        if self.config.version is WindowsVersion.W2003 and entry.version == 2000:
            # KB 823313: a 2003 terminal server cannot use a 2000 license server, even if that
            # server did not refuse us itself.
            return Connectivity.LOWER_VERSION, "a Windows 2000 license server"
        if need_cert:
            await self._request_cert(entry, stream)
        return Connectivity.VALID_LS, ""

    async def _request_cert(self, entry: ServerEntry, stream: PeerStream) -> None:
        cfg = self.config
        request = RequestTermServCert(
            name=cfg.name,
            domain=cfg.domain or cfg.workgroup,
            site=cfg.site,
            version=cfg.version,
            public_key=raw_public_key(self._key),
        )
        try:
            reply = await stream.request(request)
        except ServiceError as exc:
            raise _Refused(exc.code, exc.message) from None
        if not isinstance(reply, TermServCert) or not reply.cert_chain:
            raise _Refused(ErrorCode.UNTRUSTED_CERTIFICATE, "no certificate in the answer")
        certs = [cert_from_der(der) for der in reply.cert_chain]
        self._check_chain(certs)
        self.state.store_chain(certs, entry.name)

    def _check_chain(self, certs: list[x509.Certificate]) -> None:
        leaf_key = certs[-1].public_key()
        if not isinstance(leaf_key, Ed25519PublicKey) or (
            raw_public_key(leaf_key) != raw_public_key(self._key)
        ):
            raise _Refused(ErrorCode.UNTRUSTED_CERTIFICATE, "the certificate is not for our key")
        if self.config.trust_root is not None:
            validate_chain(
                certs,
                self.config.trust_root,
                to_datetime(self.clock.now()),
                leaf_role=CertRole.TERMINAL_SERVER,
                allow_temporary_issuer=True,
            )

    # ---- requests ---------------------------------------------------------------------------

    async def call(self, request: Message) -> tuple[ServerEntry, Message]:
        """Send `request` to the server in use, failing over while servers stop answering.

        Returns:
            The server that answered and its reply (LicenseGranted, Referral, ...).

        Raises:
            ServiceError: the server refused the request itself.
            NoLicenseServer: no server can be used.
        """
        failed: set[str] = set()
        entry = self.current()
        while True:
            if entry is None or entry.name.casefold() in failed:
                entry = await self.discover(exclude=frozenset(failed))
            if entry is None:
                raise NoLicenseServer("no license server could be found or reached")
            try:
                return entry, await self.call_at(entry, request)
            except Unusable:
                failed.add(entry.name.casefold())
                entry = None

    async def call_at(self, entry: ServerEntry, request: Message) -> Message:
        """Send `request` to one server (a referral target, or the one in use).

        Raises:
            ServiceError: the server refused the request.
            Unusable: the server cannot be used now (its cache entry says why).
        """
        fresh_cert = False
        for attempt in range(2):
            try:
                if fresh_cert:
                    with trio.fail_after(self.config.network_timeout):
                        await self._certificate_from(entry)
                return await self.links.request(
                    entry.address, self.chain(), request, timeout=self.config.network_timeout
                )
            except ServiceError as exc:
                if exc.code is ErrorCode.ACCESS_DENIED and attempt == 0:
                    # SEC-9: this server accepted our Hello but not the certificate we hold
                    # (another server's, not chaining to the root): get one of its own, retry.
                    fresh_cert = True
                    continue
                raise
            except _Refused as exc:
                certificate = exc.code in (
                    ErrorCode.UNTRUSTED_CERTIFICATE,
                    ErrorCode.CERTIFICATE_EXPIRED,
                )
                if certificate and attempt == 0:
                    await self.probe(entry)  # obtains a certificate from this server
                    if entry.connectivity is Connectivity.VALID_LS:
                        continue
                else:
                    entry.connectivity = _HELLO_STATUS.get(exc.code, Connectivity.ACCESS_DENIED)
                    entry.issuing, entry.detail = False, exc.message
                    if entry.connectivity is Connectivity.NOT_IN_TSCGROUP:
                        self.events.log(
                            EventId.NOT_IN_TS_COMPUTERS_GROUP, self.clock.now(), server=entry.name
                        )
            except (ConnectionLost, ProtocolError, trio.TooSlowError) as exc:
                entry.connectivity, entry.reachable, entry.issuing = (
                    Connectivity.NOT_CONNECTABLE,
                    False,
                    False,
                )
                entry.detail = str(exc) or "no answer in time"
            entry.last_checked = self.clock.now()
            self.drop(entry)
            raise Unusable(entry.name)
        raise Unusable(entry.name)  # pragma: no cover (the loop always returns or raises)

    async def _certificate_from(self, entry: ServerEntry) -> None:
        """Obtain a terminal-server certificate from `entry` (it replaces the one we hold)."""
        async with self.links.fresh(entry.address, ()) as stream:
            await self._request_cert(entry, stream)

    @property
    def lost(self) -> bool:
        """The server in use stopped answering and no discovery ran since (DISC-8)."""
        return self._lost and self.state.current is None

    def drop(self, entry: ServerEntry) -> None:
        """`entry` cannot be used now; if it was in use, a failover is due (KB 232520)."""
        if self.state.current and self.state.current.casefold() == entry.name.casefold():
            self.state.current = None
            self._lost = True
        self.state.save()

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
