"""Probing one license server, and obtaining the terminal server's certificate from it.

Contract: `Prober` is a base of `discovery.LicenseServers`; it owns no state of its own (the
cache entries and the certificate chain live in `AgentState`, the connections in `Links`).
- `probe(entry)` opens a licensing conversation presenting the terminal server's certificate
  if it has one, and obtains a certificate (RequestTermServCert) if it has none or the server
  does not accept it. The result goes into the cache entry (`ServerEntry`: connectivity per
  GetTStoLSConnectivityStatus, reachable, issuing, detail); a server's failure never raises.
  A 2000 server refusing a 2003 terminal server (LOWER_VERSION), or welcoming one (KB 823313),
  is recorded as LOWER_VERSION; a security-group refusal is recorded as NOT_IN_TSCGROUP and
  logs event 1043. A server that cannot be used keeps no connection from us.
- A certificate a server issues must be for our key and, with a trust root, chain to it as a
  terminal-server certificate (a temporary issuer allowed); otherwise it is a refusal
  (UNTRUSTED_CERTIFICATE) and nothing is stored.
- `HELLO_STATUS` maps a refused Hello's code to the connectivity recorded (failover.py uses it
  for a refusal met during a request).
- Nothing from trio or sockets escapes `probe`: failures become cache entries.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

import trio
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from tslic.protocol import ConnectionLost, Conversation, ErrorCode, ServiceError
from tslic.protocol.clock import to_datetime
from tslic.protocol.domain import Connectivity, PeerRole, WindowsVersion
from tslic.protocol.errors import ProtocolError
from tslic.protocol.messages.licensing import RequestTermServCert, TermServCert
from tslic.protocol.pki import (
    CertRole,
    cert_from_der,
    raw_public_key,
    validate_chain,
)
from tslic.runtime.clock import Clock
from tslic.runtime.peer import PeerStream, open_peer

from .config import AgentConfig
from .events import EventId, EventLog
from .links import Links
from .links import Refused as _Refused
from .state import AgentState, ServerEntry

HELLO_STATUS = {
    ErrorCode.LOWER_VERSION: Connectivity.LOWER_VERSION,
    ErrorCode.NOT_IN_SECURITY_GROUP: Connectivity.NOT_IN_TSCGROUP,
    ErrorCode.ACCESS_DENIED: Connectivity.ACCESS_DENIED,
}


class Prober:
    """Probes and certificate requests of one terminal server (set up by LicenseServers)."""

    config: AgentConfig
    state: AgentState
    events: EventLog
    clock: Clock
    links: Links
    _key: Ed25519PrivateKey

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
            status, detail = HELLO_STATUS.get(exc.code, Connectivity.ACCESS_DENIED), exc.message
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

    async def _certificate_from(self, entry: ServerEntry) -> None:
        """Obtain a terminal-server certificate from `entry` (it replaces the one we hold)."""
        async with self.links.fresh(entry.address, ()) as stream:
            await self._request_cert(entry, stream)
