"""In-process fakes of a license server and the directory for the agent's tests.

They speak the real messages over runtime.service.Server: the license server issues real
terminal-server certificates (protocol.pki) and real signed licenses (protocol.licenses), with
a deliberately small policy (temporary first, permanent after a validated logon, renewal
within 7 days, one temporary per device, referral when out of CALs). The real license server
is tested in its own suite; these fakes only have to be faithful to the conversation.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import trio
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from tslic.client.agent.config import AgentConfig
from tslic.client.agent.service import Agent
from tslic.client.rdp.client import Outcome, connect
from tslic.client.rdp.store import LicenseStore
from tslic.protocol import Conversation, ErrorCode, Message, ServiceError
from tslic.protocol.clock import to_datetime
from tslic.protocol.domain import (
    CalProduct,
    ClientOS,
    LicenseKind,
    LicensingMode,
    PeerRole,
    WindowsVersion,
)
from tslic.protocol.errors import ProtocolError
from tslic.protocol.licenses import open_license, sign_license
from tslic.protocol.messages import Welcome
from tslic.protocol.messages.directory import (
    DirComputer,
    DirLookupComputer,
    DirQueryDomainControllers,
    DirQueryEnterprise,
    DirServers,
)
from tslic.protocol.messages.licensing import (
    IssueLicense,
    LicenseGranted,
    LicenseMarked,
    LicenseReturned,
    MarkLicense,
    Referral,
    RequestTermServCert,
    ReturnLicense,
    TermServCert,
    UpgradeLicenseRequest,
)
from tslic.protocol.messages.records import ComputerInfo, LicenseBody, ServerRef
from tslic.protocol.pki import (
    cert_from_der,
    cert_to_der,
    issue_license_server_cert,
    issue_terminal_server_cert,
    make_root,
    make_temporary_license_server_cert,
    validate_chain,
)
from tslic.protocol.policy import needs_renewal
from tslic.runtime.clock import Clock
from tslic.runtime.service import Peer, Server, Service

_serials = itertools.count(1000)
_ids = itertools.count(1)


@dataclass
class Root:
    key: Ed25519PrivateKey
    cert: x509.Certificate

    @classmethod
    def make(cls, clock: Clock) -> Root:
        key = Ed25519PrivateKey.generate()
        now = to_datetime(clock.now())
        cert = make_root(
            key,
            name="Microsoft Clearinghouse",
            not_before=now - timedelta(days=1),
            not_after=now + timedelta(days=3650),
            serial=next(_serials),
        )
        return cls(key, cert)


@dataclass
class Device:
    license_id: int
    kind: LicenseKind
    product: CalProduct
    expires_at: int
    validated: bool = False
    had_temporary: bool = False


@dataclass
class FakeLicenseServer:
    """A license server's TS-facing conversation (Conversation.LICENSING)."""

    name: str
    version: WindowsVersion
    clock: Clock
    root: Root | None  # None: unactivated (temporary self-signed certificate)
    available: dict[CalProduct, int] = field(default_factory=dict)
    security_group: set[str] | None = None
    refer_to: tuple[ServerRef, ...] = ()
    lease_days: int = 60
    refuse_new: bool = False  # refuse every new license (NO_LICENSE_AVAILABLE)
    group_checked_at: str = "hello"  # or "cert": where the security group refuses
    devices: dict[bytes, Device] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    conversation: Conversation = Conversation.LICENSING

    def __post_init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        now = to_datetime(self.clock.now())
        window = {"not_before": now - timedelta(days=1), "not_after": now + timedelta(days=3650)}
        if self.root is None:
            self.cert = make_temporary_license_server_cert(
                self.key, name=self.name, version=int(self.version), serial=next(_serials), **window
            )
            self.chain: tuple[bytes, ...] = (cert_to_der(self.cert),)
        else:
            self.cert = issue_license_server_cert(
                self.root.key,
                self.root.cert,
                self.key.public_key(),
                name=self.name,
                version=int(self.version),
                license_server_id=f"LSID-{self.name}",
                serial=next(_serials),
                **window,
            )
            self.chain = (cert_to_der(self.root.cert), cert_to_der(self.cert))

    def _trusted(self, chain: tuple[bytes, ...], key: bytes) -> bool:
        try:
            certs = [cert_from_der(d) for d in chain]
            anchor = self.root.cert if self.root is not None else self.cert
            ident = validate_chain(
                certs, anchor, to_datetime(self.clock.now()), allow_temporary_issuer=True
            )
        except ProtocolError:
            return False
        return ident.public_key == key and ident.license_server_id == (
            "" if self.root is None else f"LSID-{self.name}"
        )

    async def on_hello(self, peer: Peer) -> Welcome:
        hello = peer.hello
        self.calls.append("Hello")
        if self.version is WindowsVersion.W2000 and hello.version == 2003:
            raise ServiceError(
                "a Windows 2000 license server cannot serve a Windows Server 2003 terminal server",
                code=ErrorCode.LOWER_VERSION,
            )
        if self._excluded(hello.name) and self.group_checked_at == "hello":
            raise ServiceError(
                f"{hello.name} is not a member of Terminal Services Computers",
                code=ErrorCode.NOT_IN_SECURITY_GROUP,
            )
        if hello.cert_chain and not self._trusted(hello.cert_chain, peer.key):
            raise ServiceError("certificate not issued here", code=ErrorCode.UNTRUSTED_CERTIFICATE)
        peer.state["certified"] = bool(hello.cert_chain)
        peer.state["ts_version"] = WindowsVersion(hello.version)
        return Welcome(role=PeerRole.LICENSE_SERVER, name=self.name, version=int(self.version))

    def _excluded(self, name: str) -> bool:
        return self.security_group is not None and name not in self.security_group

    async def handle(self, peer: Peer, request: Message) -> Message:
        self.calls.append(type(request).__name__)
        if isinstance(request, RequestTermServCert):
            if self._excluded(request.name):
                raise ServiceError(
                    f"{request.name} is not in Terminal Services Computers",
                    code=ErrorCode.NOT_IN_SECURITY_GROUP,
                )
            now = to_datetime(self.clock.now())
            ts = issue_terminal_server_cert(
                self.key,
                self.cert,
                Ed25519PublicKey.from_public_bytes(request.public_key),
                name=request.name,
                version=int(request.version),
                not_before=now - timedelta(days=1),
                not_after=now + timedelta(days=3650),
                serial=next(_serials),
            )
            return TermServCert(cert_chain=(*self.chain, cert_to_der(ts)))
        if not peer.state.get("certified"):
            raise ServiceError("present your certificate", code=ErrorCode.ACCESS_DENIED)
        ts_version = peer.state["ts_version"]
        assert isinstance(ts_version, WindowsVersion)  # set with "certified"
        if isinstance(request, IssueLicense):
            return self._issue(request, ts_version, peer.hello.name)
        if isinstance(request, UpgradeLicenseRequest):
            return self._upgrade(request, ts_version, peer.hello.name)
        if isinstance(request, MarkLicense):
            device = self.devices.get(request.hwid)
            if device is None or device.license_id != request.license_id:
                raise ServiceError("no such license", code=ErrorCode.LICENSE_NOT_FOUND)
            device.validated = True
            return LicenseMarked(license_id=request.license_id, validated=True)
        if isinstance(request, ReturnLicense):
            return LicenseReturned(license_id=request.license_id)
        raise ServiceError("unexpected request", code=ErrorCode.ILLEGAL_STATE)

    def _product(self, ts_version: WindowsVersion, mode: LicensingMode) -> CalProduct:
        if mode is LicensingMode.PER_USER:
            return CalProduct.W2003_USER_CAL
        if ts_version is WindowsVersion.W2000:
            return CalProduct.W2000_TS_CAL
        return CalProduct.W2003_DEVICE_CAL

    def _grant(
        self,
        hwid: bytes,
        machine: str,
        user: str,
        request: IssueLicense | UpgradeLicenseRequest,
        kind: LicenseKind,
        product: CalProduct,
        ts: str,
        *,
        upgraded: bool = False,
    ) -> LicenseGranted:
        now = self.clock.now()
        days = 90 if kind is LicenseKind.TEMPORARY else self.lease_days
        expires = now + days * 86_400_000
        license_id = next(_ids)
        body = LicenseBody(
            license_id=license_id,
            kind=kind,
            product=product,
            hwid=hwid,
            machine=machine,
            user=user,
            client_os=request.client_os,
            mode=request.mode,
            issuer=self.name,
            license_server_id="" if self.root is None else f"LSID-{self.name}",
            issued_at=now,
            expires_at=expires,
        )
        previous = self.devices.get(hwid)
        self.devices[hwid] = Device(
            license_id=license_id,
            kind=kind,
            product=product,
            expires_at=expires,
            had_temporary=kind is LicenseKind.TEMPORARY
            or (previous is not None and previous.had_temporary),
        )
        return LicenseGranted(
            license=sign_license(self.key, self.chain, body),
            license_id=license_id,
            kind=kind,
            product=product,
            expires_at=expires,
            upgraded=upgraded,
        )

    def _take(self, product: CalProduct) -> bool:
        if self.root is None or self.available.get(product, 0) <= 0:
            return False
        if product is not CalProduct.W2003_USER_CAL:  # User CALs are not decremented (§7.2)
            self.available[product] -= 1
        return True

    def _issue(self, req: IssueLicense, ts_version: WindowsVersion, ts: str) -> Message:
        if self.refuse_new:
            raise ServiceError("no licenses of any kind", code=ErrorCode.NO_LICENSE_AVAILABLE)
        product = self._product(ts_version, req.mode)
        if req.mode is LicensingMode.PER_USER and self._take(product):
            return self._grant(
                req.hwid, req.machine, req.user, req, LicenseKind.PERMANENT, product, ts
            )
        device = self.devices.get(req.hwid)
        if device is not None and device.had_temporary:
            if self.refer_to:
                return Referral(product=product, servers=self.refer_to, reason="no CALs")
            raise ServiceError(
                "this device already had its temporary license",
                code=ErrorCode.TEMPORARY_ALREADY_ISSUED,
            )
        return self._grant(req.hwid, req.machine, req.user, req, LicenseKind.TEMPORARY, product, ts)

    def _upgrade(self, req: UpgradeLicenseRequest, ts_version: WindowsVersion, ts: str) -> Message:
        try:
            body = open_license(req.license).body
        except ProtocolError as exc:
            raise ServiceError(exc.message, code=ErrorCode.INVALID_LICENSE) from None
        if body.hwid != req.hwid:
            raise ServiceError("hardware id mismatch", code=ErrorCode.HWID_MISMATCH)
        now = to_datetime(self.clock.now())
        product = self._product(ts_version, req.mode)
        expired = body.expires_at and self.clock.now() >= body.expires_at
        if body.kind is LicenseKind.TEMPORARY:
            device = self.devices.get(req.hwid)
            # A temporary issued elsewhere arrives here by referral, which its issuer sends
            # only once it is validated.
            validated = device.validated if device is not None else body.issuer != self.name
            if validated and self._take(product):
                return self._grant(
                    req.hwid,
                    req.machine,
                    req.user,
                    req,
                    LicenseKind.PERMANENT,
                    product,
                    ts,
                    upgraded=True,
                )
            if self.refer_to and validated:
                return Referral(product=product, servers=self.refer_to, reason="no CALs")
            if expired:
                raise ServiceError("temporary license expired", code=ErrorCode.LICENSE_EXPIRED)
            return _same(req.license, body)
        if needs_renewal(to_datetime(body.expires_at), now):
            if body.issuer != self.name:
                raise ServiceError("not issued here", code=ErrorCode.LICENSE_NOT_FOUND)
            return self._grant(
                req.hwid,
                req.machine,
                req.user,
                req,
                LicenseKind.PERMANENT,
                body.product,
                ts,
                upgraded=True,
            )
        return _same(req.license, body)


def _same(blob: bytes, body: LicenseBody) -> LicenseGranted:
    return LicenseGranted(
        license=blob,
        license_id=body.license_id,
        kind=body.kind,
        product=body.product,
        expires_at=body.expires_at,
    )


@dataclass
class FakeDirectory:
    """The directory's query side (Conversation.DIRECTORY)."""

    enterprise: dict[str, list[ServerRef]] = field(default_factory=dict)
    controllers: dict[str, list[ServerRef]] = field(default_factory=dict)
    computers: dict[str, str] = field(default_factory=dict)  # name -> address
    conversation: Conversation = Conversation.DIRECTORY
    queries: list[str] = field(default_factory=list)

    async def on_hello(self, peer: Peer) -> Welcome:
        return Welcome(role=PeerRole.DIRECTORY, name="DIRECTORY", version=0)

    async def handle(self, peer: Peer, request: Message) -> Message:
        self.queries.append(type(request).__name__)
        if isinstance(request, DirQueryEnterprise):
            return DirServers(servers=tuple(self.enterprise.get(request.site, ())))
        if isinstance(request, DirQueryDomainControllers):
            return DirServers(servers=tuple(self.controllers.get(request.domain, ())))
        if isinstance(request, DirLookupComputer):
            address = self.computers.get(request.name)
            if address is None:
                raise ServiceError(f"no computer {request.name}", code=ErrorCode.NOT_FOUND)
            return DirComputer(
                computer=ComputerInfo(
                    name=request.name,
                    domain="",
                    site="",
                    is_domain_controller=False,
                    os_version=0,
                    address=address,
                )
            )
        raise ServiceError("unexpected", code=ErrorCode.ILLEGAL_STATE)


class Running:
    """A fake served on 127.0.0.1:0 that a test can stop (the server "stops answering")."""

    def __init__(self, server: Server, address: str, scope: trio.CancelScope) -> None:
        self.server, self.address, self._scope = server, address, scope

    def stop(self) -> None:
        self._scope.cancel()


@asynccontextmanager
async def serve(service: Service, clock: Clock) -> AsyncIterator[Running]:
    """Serve `service` in the background for the duration of the block."""
    server = Server(service, key=Ed25519PrivateKey.generate(), clock=clock)
    async with trio.open_nursery() as nursery:
        scope = trio.CancelScope()

        async def run(task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
            with scope:
                await server.serve(task_status=task_status)

        address = await nursery.start(run)
        yield Running(server, address, scope)
        scope.cancel()


def ref(name: str, address: str, *, dc: bool = False) -> ServerRef:
    return ServerRef(name=name, address=address, is_domain_controller=dc)


@asynccontextmanager
async def run_agent(
    config: AgentConfig, data_dir: Path, clock: Clock
) -> AsyncIterator[tuple[Agent, str]]:
    """Run an Agent in the background; yields (agent, its RDP address)."""
    agent = Agent(config, data_dir, clock)
    async with trio.open_nursery() as nursery:
        address = await nursery.start(agent.serve)
        yield agent, address
        agent.shutdown()


async def rdp(
    address: str,
    store_dir: Path,
    clock: Clock,
    *,
    device: str = "PC1",
    client_os: ClientOS = ClientOS.XP_PRO,
    trust_root: x509.Certificate | None = None,
    password_ok: bool = True,
) -> Outcome:
    """Connect one emulated client (defaults: XP Professional, user alice)."""
    return await connect(
        address,
        store=LicenseStore(store_dir),
        clock=clock,
        device=device,
        user="alice",
        client_os=client_os,
        trust_root=trust_root,
        password_ok=password_ok,
    )
