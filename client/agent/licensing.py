"""The terminal server's side of the licensing exchange, and its grace period.

Contract (KB 813052, KB 287687, termsrv.dll messages; MS-RDPELE semantics):
- `Licensing.converse(stream)` runs one RDP conversation as the server: LicenseRequest (chain,
  product info, scope, mode); the client's NewLicenseRequest or LicenseInfo; a
  PlatformChallenge whose response must echo the challenge and whose hardware id must be the
  key signing the client's envelopes (and, for LicenseInfo, the license's hwid); then
  NewLicense, UpgradeLicense or an ErrorAlert; then the logon, after which a temporary Per
  Device license is marked validated at its license server (KB 287687).
- Decisions: a stored permanent license that fits and is not within 7 days of expiry is
  accepted (STATUS_VALID_CLIENT); a temporary one is sent for upgrade (Per Device) or kept
  (Per User: no upgrade, TechNet cc727934); a permanent one within 7 days is renewed
  (TS licensing FAQ). If no license
  server answers and the presented license is still valid, it is echoed in UpgradeLicense
  (RDPELE 3.2.5.5). During the grace period any client without a license is accepted with
  STATUS_VALID_CLIENT + ST_NO_TRANSITION. Otherwise: expired temporary -> 1011, ERR_NO_LICENSE,
  LICENSE_NO_LICENSE; expired permanent not renewable -> 1028, LICENSE_CANT_UPGRADE_LICENSE;
  no license server -> ERR_NO_LICENSE_SERVER, LICENSE_NO_LICENSE_SERVER and 1010/1026/1027
  (once per outage); a license server refusing a new client -> 1004, ERR_NO_LICENSE.
- Grace (protocol.grace): starts at the first client connection; ends at the first permanent
  CAL or, by `--grace-ends first-license-server`, at the first license server found; events
  1009 and 1008 via `check_grace()`, each once.
- Transport: the exchange runs over a `Channel` (send a message, receive the client's next
  one); `runtime.session.Session` is the msgpack one, and its listener enforces the handshake
  and idle timeouts, the limits and the replay guard. Another front end (a real RDP listener)
  calls the same entry points with its own channel: `license_client(channel)` runs licensing
  up to the client's license or alert and returns a `LicensedClient` if it may log on;
  `logged_on(client)` records a successful logon (marking a temporary license validated);
  `converse(channel)` is both plus the emulated logon of the msgpack conversation.
- Timeouts and protocol errors propagate to the caller (the listener), which answers them.
- Parts: the replies to the client (alerts, the platform challenge, UpgradeLicense) are
  replies.py (`ClientReplies`), the logon and the post-logon mark logon.py (`Logons`), the
  grace bookkeeping grace.py (`GraceKeeper`); `Licensing` is all of them plus the decisions.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from tslic.protocol import ErrorCode, Message, ServiceError
from tslic.protocol.clock import to_datetime
from tslic.protocol.domain import LicenseKind, LicensingMode
from tslic.protocol.errors import ProtocolError
from tslic.protocol.licenses import SignedLicense, open_license, verify_license
from tslic.protocol.messages.licensing import (
    IssueLicense,
    LicenseGranted,
    UpgradeLicenseRequest,
)
from tslic.protocol.messages.rdp import (
    DisconnectReason,
    ErrorAlert,
    LicenseInfo,
    LicenseRequest,
    NewLicense,
    NewLicenseRequest,
    PlatformChallenge,
    PlatformChallengeResponse,
    RdpError,
)
from tslic.protocol.messages.records import LicenseBody, ProductInfo
from tslic.protocol.policy import GraceEnd, accepted_as_is, is_expired, needs_renewal
from tslic.runtime.clock import Clock

from ..rdp import texts
from .channel import Channel, LicensedClient
from .config import COMPANY, PRODUCT_ID, SCOPE, AgentConfig
from .discovery import LicenseServers
from .events import EventId, EventLog
from .failover import NoLicenseServer
from .logon import LOGON_FAILED as LOGON_FAILED  # re-exported: it was defined here
from .logon import Logons
from .replies import ClientReplies
from .state import AgentState
from .upstream import ask_license

log = logging.getLogger(__name__)


class Licensing(Logons, ClientReplies):
    """The licensing logic of one terminal server (replies, logon and grace are inherited)."""

    def __init__(
        self,
        config: AgentConfig,
        state: AgentState,
        events: EventLog,
        servers: LicenseServers,
        clock: Clock,
        *,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.config = config
        self.state = state
        self.events = events
        self.servers = servers
        self.clock = clock
        self._random = random_bytes
        self._sessions = 0

    # ---- one conversation ---------------------------------------------------------------

    def license_request(self) -> LicenseRequest:
        return LicenseRequest(
            server_random=self._random(32),
            product=ProductInfo(
                version=self.config.product_version, company=COMPANY, product_id=PRODUCT_ID
            ),
            cert_chain=self.servers.chain(),
            scopes=(SCOPE,),
            mode=self.config.mode,
        )

    async def converse(self, channel: Channel) -> None:
        """Run one client's licensing exchange and logon (see the module docstring).

        Raises:
            ProtocolError, ConnectionLost: the client broke the protocol or went away.
            Timeout: the client did not answer in time (from the channel).
        """
        client = await self.license_client(channel)
        if client is not None:
            await self._logon(channel, client)

    async def license_client(self, channel: Channel) -> LicensedClient | None:
        """Licensing, from the greeting to the license (or alert); the decisions are the
        module docstring's. Returns the client if it may log on, None if it aborted or was
        refused."""
        self.state.count("connections")
        await channel.send(self.license_request())
        first = await channel.receive()
        if isinstance(first, ErrorAlert):
            log.info("client aborted licensing: %s", first.error_code.name)
            return None
        grace = self.state.grace.start(to_datetime(self.clock.now()))
        if grace is not self.state.grace:
            # The first client starts the grace period: durable before anything else, so a
            # restart never buys a new one.
            self.state.grace = grace
            self.state.save()
        self.check_grace()
        held = LicensedClient()
        if isinstance(first, NewLicenseRequest):
            ok = await self._new_client(channel, first, held)
        else:
            assert isinstance(first, LicenseInfo)  # the state table admits nothing else
            ok = await self._presented(channel, first, held)
        if not ok:
            await self.state.save_grouped()  # the counts; a client that logs on: then
        return held if ok else None

    # ---- the decisions (module docstring) ----------------------------------------------

    async def _usable_server(self) -> bool:
        if await self.servers.settled() is not None:
            return True
        retry = int(self.config.intervals.retry_when_none_found.total_seconds() * 1000)
        last = self.state.last_discovery
        if self.servers.lost or not last or self.clock.now() - last >= retry:
            # A server in use that stopped answering is replaced at once (DISC-8, KB 232520).
            return await self.servers.discover() is not None
        return False

    async def _new_client(
        self, stream: Channel, request: NewLicenseRequest, held: LicensedClient
    ) -> bool:
        if not await self._usable_server() and self.in_grace():
            # TechNet cc738708: during grace, clients are accepted without contacting a license
            # server.
            return await self._valid_client(stream)
        hwid = await self._challenge(stream, None)
        if hwid is None:
            return False
        issue = IssueLicense(
            hwid=hwid,
            machine=request.machine_name,
            user=request.user_name,
            client_os=request.client_os,
            mode=self.config.mode,
        )
        try:
            granted = await self._ask_license(issue, issuer=None)
        except NoLicenseServer:
            if self.in_grace():
                return await self._valid_client(stream)
            return await self._no_license_server(stream)
        except ServiceError as exc:
            if self.in_grace():
                return await self._valid_client(stream)
            expired_temp = exc.code is ErrorCode.TEMPORARY_ALREADY_ISSUED
            event_id = EventId.TEMPORARY_EXPIRED if expired_temp else EventId.CANNOT_ISSUE_LICENSE
            self.events.log(
                event_id, self.clock.now(), client=request.machine_name, reason=exc.message
            )
            return await self._alert(
                stream,
                RdpError.ERR_NO_LICENSE,
                DisconnectReason.LICENSE_NO_LICENSE,
                texts.NO_LICENSE,
            )
        held.body = self._granted(granted, presented=None)
        await stream.send(NewLicense(license=granted.license, scope=SCOPE))
        return True

    async def _presented(self, stream: Channel, info: LicenseInfo, held: LicensedClient) -> bool:
        now = self.clock.now()
        try:
            signed = self._open(info.license)
        except ProtocolError as exc:
            self.events.log(
                EventId.CANNOT_ISSUE_LICENSE, now, client=info.machine_name, reason=exc.message
            )
            await stream.send(PlatformChallenge(challenge=self._random(32)))
            reply = await stream.receive()
            if not isinstance(reply, PlatformChallengeResponse):
                return False  # the client aborted
            return await self._alert(
                stream,
                RdpError.ERR_INVALID_CLIENT,
                DisconnectReason.LICENSE_BAD_CLIENT_LICENSE,
                texts.BAD_LICENSE,
            )
        body = signed.body
        hwid = await self._challenge(stream, body.hwid)
        if hwid is None:
            return False
        held.body = body
        dt = to_datetime(now)
        expires = to_datetime(body.expires_at) if body.expires_at else None
        expired = expires is not None and is_expired(expires, dt)
        renew = expires is not None and needs_renewal(expires, dt)
        per_user = self.config.mode is LicensingMode.PER_USER
        temporary = body.kind is LicenseKind.TEMPORARY
        fits = body.product in accepted_as_is(self.config.version, self.config.mode)
        if not temporary and fits and not renew:
            return await self._valid_client(stream)
        if temporary and per_user and not expired:
            # TechNet cc727934: in Per User mode a temporary license is not upgraded.
            return await self._upgrade(stream, info.license, echoed=True)
        request: Message
        if temporary and per_user:
            request = IssueLicense(
                hwid=hwid,
                machine=info.machine_name,
                user=info.user_name,
                client_os=info.client_os,
                mode=self.config.mode,
                had_temporary=True,
            )
        else:
            request = UpgradeLicenseRequest(
                license=info.license,
                hwid=hwid,
                machine=info.machine_name,
                user=info.user_name,
                client_os=info.client_os,
                mode=self.config.mode,
            )
        try:
            granted = await self._ask_license(request, issuer=body.issuer)
        except (NoLicenseServer, ServiceError) as exc:
            if not expired:
                # RDPELE 3.2.5.5: the old license is still valid; send it back.
                return await self._upgrade(stream, info.license, echoed=True)
            if self.in_grace():
                return await self._valid_client(stream)
            if isinstance(exc, NoLicenseServer) and temporary:
                return await self._no_license_server(stream)
            if isinstance(exc, NoLicenseServer):
                self.note_no_server()
            event_id = EventId.TEMPORARY_EXPIRED if temporary else EventId.PERMANENT_NOT_RENEWED
            self.events.log(event_id, self.clock.now(), client=info.machine_name)
            if temporary:
                return await self._alert(
                    stream,
                    RdpError.ERR_NO_LICENSE,
                    DisconnectReason.LICENSE_NO_LICENSE,
                    texts.NO_LICENSE,
                )
            return await self._alert(
                stream,
                RdpError.ERR_NO_LICENSE,
                DisconnectReason.LICENSE_CANT_UPGRADE_LICENSE,
                texts.CANT_UPGRADE,
            )
        held.body = self._granted(granted, presented=info)
        if granted.license == info.license:
            return await self._upgrade(stream, info.license, echoed=True)
        return await self._upgrade(stream, granted.license, echoed=False)

    # ---- the licenses handed to clients ------------------------------------------------

    async def _ask_license(self, request: Message, *, issuer: str | None) -> LicenseGranted:
        """`ask_license`; a granted license that does not verify (SEC-12: signature, and with
        a trust root the chain, a temporary issuer only for a temporary or built-in license)
        is no license: a ServiceError with its code, as if the license server had refused."""
        granted = await ask_license(self.servers, request, issuer=issuer)
        try:
            self._open(granted.license)
        except ProtocolError as exc:
            log.warning("refusing the license a license server issued: %s", exc.message)
            raise ServiceError(
                f"the license server's license does not verify: {exc.message}", code=exc.code
            ) from None
        return granted

    def _open(self, blob: bytes) -> SignedLicense:
        if self.config.trust_root is None:
            return open_license(blob)
        return verify_license(blob, self.config.trust_root, to_datetime(self.clock.now()))

    def _granted(self, granted: LicenseGranted, *, presented: LicenseInfo | None) -> LicenseBody:
        """Count a license handed to a client and end grace on the first permanent CAL."""
        body = open_license(granted.license).body
        permanent = body.kind is LicenseKind.PERMANENT
        if presented is None:
            self.state.count("permanent_issued" if permanent else "temporary_issued")
        elif permanent and granted.license != presented.license:
            old = open_license(presented.license).body
            self.state.count("renewed" if old.kind is LicenseKind.PERMANENT else "upgraded")
        if permanent:
            self.end_grace(GraceEnd.FIRST_PERMANENT_CAL)
        return body
