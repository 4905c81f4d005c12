"""A small fake license server for the load generator's tests, and a stalling variant.

Contract: `FakeLicenseService` is a `runtime.service.Service` for the LICENSING conversation
that speaks the real messages: it issues real terminal-server certificates (protocol/pki.py)
to `RequestTermServCert`, insists on a presented, valid chain for every other request, and
answers `IssueLicense`/`UpgradeLicenseRequest` with licenses really signed by
`protocol.licenses.sign_license`. `stall(start, duration)` makes it stop answering requests
that arrive in [start, start + duration) (trio time) until the stall is over, which is what
the coordinated-omission test needs. `serve_fake` runs it on 127.0.0.1 port 0.
`FakeRdpAgent` is the RDP side of a terminal-server agent for the full-stack mode.
"""

from __future__ import annotations

import itertools
import os
from collections import Counter
from datetime import UTC, datetime

import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from tslic.protocol import (
    Connection,
    ConnectionLost,
    Conversation,
    Direction,
    ErrorCode,
    Message,
    ProtocolError,
    ServiceError,
)
from tslic.protocol.domain import (
    CalProduct,
    LicenseKind,
    LicensingMode,
    PeerRole,
    WindowsVersion,
)
from tslic.protocol.licenses import open_license, sign_license
from tslic.protocol.messages import Welcome
from tslic.protocol.messages.licensing import (
    IssueLicense,
    LicenseGranted,
    LicenseMarked,
    LicenseReturned,
    MarkLicense,
    RequestTermServCert,
    ReturnLicense,
    TermServCert,
    UpgradeLicenseRequest,
)
from tslic.protocol.messages.rdp import (
    ClientLogon,
    LicenseInfo,
    LicenseRequest,
    LogonComplete,
    NewLicense,
    NewLicenseRequest,
    PlatformChallenge,
    PlatformChallengeResponse,
    UpgradeLicense,
)
from tslic.protocol.messages.records import LicenseBody, ProductInfo
from tslic.protocol.pki import (
    cert_from_der,
    cert_to_der,
    issue_license_server_cert,
    issue_terminal_server_cert,
    make_root,
    validate_chain,
)
from tslic.runtime.clock import Clock
from tslic.runtime.service import Limits, Peer, Server
from tslic.runtime.stream import MessageStream

NOT_BEFORE = datetime(2000, 1, 1, tzinfo=UTC)
NOT_AFTER = datetime(2099, 1, 1, tzinfo=UTC)


class FakeLicenseService:
    """An activated 2003 (or 2000) license server with unlimited CALs."""

    conversation = Conversation.LICENSING

    def __init__(self, clock: Clock, *, version: int = 2003) -> None:
        self.clock = clock
        self.version = version
        root_key = Ed25519PrivateKey.generate()
        self.root = make_root(
            root_key, name="CLEARINGHOUSE", not_before=NOT_BEFORE, not_after=NOT_AFTER, serial=1
        )
        self.key = Ed25519PrivateKey.generate()
        self.cert = issue_license_server_cert(
            root_key,
            self.root,
            self.key.public_key(),
            name="FAKELS",
            version=version,
            license_server_id="LSID-FAKE",
            not_before=NOT_BEFORE,
            not_after=NOT_AFTER,
            serial=2,
        )
        self.chain = (cert_to_der(self.root), cert_to_der(self.cert))
        self._serials = itertools.count(10)
        self._ids = itertools.count(1)
        self.issued: dict[int, tuple[bytes, str]] = {}  # license id -> (hwid, terminal server)
        self.requests: Counter[str] = Counter()
        self.refuse: dict[str, ErrorCode] = {}  # request class name -> refusal code
        self._stall_start = -1.0
        self._stall_end = -1.0

    def stall(self, start: float, duration: float) -> None:
        """Hold every request arriving in [start, start + duration) until the end."""
        self._stall_start, self._stall_end = start, start + duration

    async def on_hello(self, peer: Peer) -> Welcome:
        if peer.hello.version == 2003 and self.version == 2000:
            raise ServiceError(
                "a Windows 2000 license server cannot serve a Windows Server 2003 terminal server",
                code=ErrorCode.LOWER_VERSION,
            )
        if peer.hello.cert_chain:
            leaf = validate_chain(
                [cert_from_der(c) for c in peer.hello.cert_chain],
                self.root,
                datetime.fromtimestamp(self.clock.now() / 1000, UTC),
                leaf_role="terminal-server",
            )
            peer.state["ts"] = leaf.name
        return Welcome(role=PeerRole.LICENSE_SERVER, name="FAKELS", version=self.version)

    async def handle(self, peer: Peer, request: Message) -> Message:
        now = trio.current_time()
        if self._stall_start <= now < self._stall_end:
            await trio.sleep_until(self._stall_end)
        self.requests[type(request).__name__] += 1
        if type(request).__name__ in self.refuse:
            raise ServiceError("refused by the test", code=self.refuse[type(request).__name__])
        if isinstance(request, RequestTermServCert):
            cert = issue_terminal_server_cert(
                self.key,
                self.cert,
                Ed25519PublicKey.from_public_bytes(request.public_key),
                name=request.name,
                version=int(request.version),
                not_before=NOT_BEFORE,
                not_after=NOT_AFTER,
                serial=next(self._serials),
            )
            return TermServCert(cert_chain=(*self.chain, cert_to_der(cert)))
        ts = peer.state.get("ts")
        if not isinstance(ts, str):
            raise ServiceError(
                "present your terminal-server certificate first", code=ErrorCode.ACCESS_DENIED
            )
        if isinstance(request, IssueLicense | UpgradeLicenseRequest):
            if isinstance(request, UpgradeLicenseRequest):
                old = open_license(request.license)
                if old.body.hwid != request.hwid:
                    raise ServiceError("not this device's license", code=ErrorCode.HWID_MISMATCH)
            return self._grant(request, ts)
        if isinstance(request, MarkLicense):
            self._known(request.license_id, request.hwid, ts)
            return LicenseMarked(license_id=request.license_id, validated=True)
        if isinstance(request, ReturnLicense):
            self._known(request.license_id, request.hwid, ts)
            del self.issued[request.license_id]
            return LicenseReturned(license_id=request.license_id)
        raise ServiceError("unexpected request", code=ErrorCode.ILLEGAL_STATE)

    def _known(self, license_id: int, hwid: bytes, ts: str) -> None:
        # the real server's rules: only the holder's own licenses, for the same device
        known = self.issued.get(license_id)
        if known is None or known[0] != hwid:
            raise ServiceError(f"no license {license_id}", code=ErrorCode.LICENSE_NOT_FOUND)
        if known[1] != ts:
            raise ServiceError(
                f"license {license_id} belongs to {known[1]}", code=ErrorCode.WRONG_TERMINAL_SERVER
            )

    def _grant(self, request: IssueLicense | UpgradeLicenseRequest, ts: str) -> LicenseGranted:
        license_id = next(self._ids)
        per_user = request.mode is LicensingMode.PER_USER
        product = CalProduct.W2003_USER_CAL if per_user else CalProduct.W2003_DEVICE_CAL
        if self.version == int(WindowsVersion.W2000):
            product = CalProduct.W2000_TS_CAL
        now = self.clock.now()
        body = LicenseBody(
            license_id=license_id,
            kind=LicenseKind.PERMANENT,
            product=product,
            hwid=request.hwid,
            machine=request.machine,
            user=request.user,
            client_os=request.client_os,
            mode=request.mode,
            issuer="FAKELS",
            license_server_id="LSID-FAKE",
            issued_at=now,
            expires_at=now + 90 * 86_400_000,
        )
        self.issued[license_id] = (request.hwid, ts)
        return LicenseGranted(
            license=sign_license(self.key, self.chain, body),
            license_id=license_id,
            kind=LicenseKind.PERMANENT,
            product=product,
            expires_at=body.expires_at,
            upgraded=isinstance(request, UpgradeLicenseRequest),
        )


def make_server(service: FakeLicenseService, clock: Clock) -> Server:
    """A `Server` for the fake with limits that never get in the tests' way."""
    limits = Limits(rate_per_second=1e9, rate_burst=1e9, request_timeout=600.0)
    return Server(service, key=service.key, clock=clock, limits=limits)


async def serve_fake(
    nursery: trio.Nursery, clock: Clock, *, version: int = 2003
) -> tuple[FakeLicenseService, Server, str]:
    """Start a fake license server; returns (service, server, "host:port")."""
    service = FakeLicenseService(clock, version=version)
    server = make_server(service, clock)
    address: str = await nursery.start(server.serve)
    return service, server, address


class FakeRdpAgent:
    """A terminal-server agent's RDP side, just enough for full-stack load: it licenses
    every device with a license signed by `ls` (new, or upgraded when one is presented) and
    logs the user on. `logons` counts finished logons, `upgrades` presented licenses."""

    def __init__(self, ls: FakeLicenseService, clock: Clock) -> None:
        self.ls = ls
        self.clock = clock
        self.key = Ed25519PrivateKey.generate()
        cert = issue_terminal_server_cert(
            ls.key,
            ls.cert,
            self.key.public_key(),
            name="FAKETS",
            version=2003,
            not_before=NOT_BEFORE,
            not_after=NOT_AFTER,
            serial=99,
        )
        self.chain = (*ls.chain, cert_to_der(cert))
        self.logons = 0
        self.upgrades = 0

    async def serve(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, self._handle, listeners)
            task_status.started(f"127.0.0.1:{port}")

    async def _handle(self, tcp: trio.SocketStream) -> None:
        conn = Connection(
            conversation=Conversation.RDP,
            our_role=Direction.SERVER,
            key=self.key,
            nonce_source=lambda: os.urandom(16),
        )
        stream = MessageStream(tcp, conn, self.clock.now)
        try:
            await self._exchange(stream)
        except (ConnectionLost, ProtocolError):
            pass
        finally:
            await stream.aclose()

    async def _exchange(self, stream: MessageStream) -> None:
        await stream.send(
            LicenseRequest(
                server_random=os.urandom(32),
                product=ProductInfo(
                    version=0x50002, company="Microsoft Corporation", product_id="A02"
                ),
                cert_chain=self.chain,
                scopes=("microsoft.com",),
                mode=LicensingMode.PER_DEVICE,
            )
        )
        ask = await stream.receive()
        assert isinstance(ask, NewLicenseRequest | LicenseInfo)
        challenge = os.urandom(16)
        await stream.send(PlatformChallenge(challenge=challenge))
        answer = await stream.receive()
        assert isinstance(answer, PlatformChallengeResponse)
        grant = self.ls._grant(
            IssueLicense(
                hwid=answer.hwid,
                machine=ask.machine_name,
                user=ask.user_name,
                client_os=ask.client_os,
                mode=LicensingMode.PER_DEVICE,
            ),
            "FAKETS",
        )
        if isinstance(ask, LicenseInfo):
            self.upgrades += 1
            await stream.send(UpgradeLicense(license=grant.license))
        else:
            await stream.send(NewLicense(license=grant.license))
        logon = await stream.receive()
        assert isinstance(logon, ClientLogon)
        await stream.send(LogonComplete(logged_on=True, session_id=1))
        self.logons += 1
        await stream.receive()  # Goodbye
