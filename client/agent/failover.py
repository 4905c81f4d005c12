"""The license server in use, requests to it, and failover when it stops answering.

Contract: `Failover` is a base of `discovery.LicenseServers`, which runs the discovery a
failover calls; it owns no state of its own but the "lost" flag (the server in use and the
cache live in `AgentState`).
- `current()` is the server in use, if it was usable at its last check.
- `call(request)` sends one request to the server in use; when it stops answering the next
  candidate is probed (failover, KB 232520) and the request retried there; until a discovery
  runs, `lost` says a failover is due now (DISC-8). When no server can be used it raises
  `NoLicenseServer`.
- `call_at(entry, request)` sends one request to one server, on the agent's kept connection
  (links.py). A server refusing a request with ACCESS_DENIED (it does not trust our
  certificate, SEC-9) is asked for one of its own, then asked again; a refused Hello for our
  certificate probes it (which obtains one), then retries. A refusal of the request itself
  (no license available, ...) is the caller's, as `ServiceError`. A server that cannot be
  used has its cache entry say why and raises `Unusable` (links.py).
- `drop(entry)`: the server cannot be used now; if it was in use, a failover is due.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio
from tslic.protocol import ConnectionLost, ErrorCode, Message, ServiceError
from tslic.protocol.domain import Connectivity
from tslic.protocol.errors import ProtocolError, TslicError

from .events import EventId
from .links import Refused as _Refused
from .links import Unusable
from .probing import HELLO_STATUS, Prober
from .state import ServerEntry


class NoLicenseServer(TslicError):
    """No license server could be found or reached."""

    code = ErrorCode.NOT_FOUND


class Failover(Prober):
    """Requests to the license server in use, failing over to the next one."""

    _lost: bool

    if TYPE_CHECKING:  # LicenseServers (discovery.py) runs discovery; a failover calls it

        async def discover(
            self, *, exclude: frozenset[str] = frozenset()
        ) -> ServerEntry | None: ...

    def current(self) -> ServerEntry | None:
        """The server in use, if it was usable at its last check."""
        if self.state.current is None:
            return None
        entry = self.state.entry(self.state.current)
        if entry is None or entry.connectivity is not Connectivity.VALID_LS:
            return None
        return entry

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
                    entry.connectivity = HELLO_STATUS.get(exc.code, Connectivity.ACCESS_DENIED)
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
