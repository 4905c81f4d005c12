"""The target's peers, played by the suite: license servers for an agent target.

Contract:
- `LsDouble` is a license server (the `licensing` conversation, served by runtime.Server) whose
  behaviour a case sets at run time with `mode`:
  - `deny`: refuses every Hello with ACCESS_DENIED (connectable, not usable: "none found");
  - `valid`: a license server of `version` (2003 by default) that certifies the terminal server
    and issues temporary licenses (90 days), as a real one does on a device's first connection;
  - `lower-version`: a Windows 2000 license server that refuses a 2003 terminal server's Hello
    with LOWER_VERSION (COMPAT-2) and serves a 2000 one;
  - `lax-2000`: a Windows 2000 license server that welcomes a 2003 terminal server anyway and
    issues it Windows 2000 TS CALs, so the terminal server's own check (COMPAT-1) is tested;
  - `refuse`: a 2003 license server with nothing to give: license requests are refused with
    NO_LICENSE_AVAILABLE (renewals too);
  - `not-in-group`: a 2003 license server whose security group leaves the terminal server
    out: certificate and license requests are refused with NOT_IN_SECURITY_GROUP;
  - `refer`: a 2003 license server with no CAL left that refers license requests to
    `refer_to` (name, address), a license server that has them (CAL-12).
  A valid double renews a presented permanent license for 60 days, and upgrades a temporary
  license it issued and marked validated (MarkLicense, after the client's logon) to a
  permanent CAL of 60 days, as a license server with CALs does (TEMP-7). Like a real license server
  (SEC-9) it answers license requests only on a conversation whose Hello presented a chain it
  issued, or after RequestTermServCert on it; otherwise ACCESS_DENIED. `mint` makes a license as
  this server would have issued it earlier (the suite's client then presents it).
  With the suite's Clearinghouse `root` (an agent manifest's `root_key` and `trust_root`) a
  double is activated under it: its chain is (root, license-server certificate), so the
  certificates and licenses it gives validate against the root the agent trusts; without one
  it is an unactivated server with a temporary self-signed certificate. `issue_permanent`
  makes it give a new client a permanent CAL (60 days) at once, and `fault` (SEC-12) a bad
  one: signed by another key, activated by another root, or from a temporary issuer.
  Every request it receives is counted in `requests` (message name -> count), so a case can
  tell whether the target asked it for a license at all, and logged in order in the shared
  `contacts` list as (the caller's Hello name, this double's name, message name), so a case
  can tell the order in which one terminal server tried the doubles (DISC-2, DISC-4).
- `Peers` owns the doubles a manifest (prepare.py) names, bound to the manifest's ports, for
  the length of a run (`Peers.serve` under `nursery.start`), including the Clearinghouse of a
  license-server target (chdouble.py). Every connection the target opens to a double is
  watched for requests sent before the last was answered (`Peers.watch`, watch.py).
Only protocol/ and runtime/ are used: client/ never imports server/.
"""

from __future__ import annotations

import dataclasses
import enum
from collections import Counter
from datetime import UTC, datetime, timedelta

import trio
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from tslic.protocol import Conversation, ErrorCode, ServiceError, pki
from tslic.protocol.domain import (
    CalProduct,
    ClientOS,
    LicenseKind,
    LicensingMode,
    PeerRole,
)
from tslic.protocol.licenses import open_license, sign_license
from tslic.protocol.messages import Message, Welcome
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
from tslic.protocol.messages.records import LicenseBody, ServerRef
from tslic.runtime.clock import Clock
from tslic.runtime.peer import split_address
from tslic.runtime.service import Limits, Peer, Server, Service

from .chdouble import ChDouble
from .dirdouble import DirDouble
from .watch import Watch, WatchedServer

Root = tuple[Ed25519PrivateKey, x509.Certificate]  # the suite's Clearinghouse root (SEC-12)
DAY = 86_400_000
TEMPORARY_DAYS = 90  # §3.2 (the suite's own figure, not the implementation's constant)


class LsMode(enum.StrEnum):
    DENY = "deny"
    VALID = "valid"
    LOWER_VERSION = "lower-version"
    LAX_2000 = "lax-2000"
    REFUSE = "refuse"
    NOT_IN_GROUP = "not-in-group"
    REFER = "refer"


class LicenseFault(enum.StrEnum):
    """What is wrong with the licenses a double issues (SEC-12)."""

    NONE = ""
    BAD_SIGNATURE = "bad-signature"  # signed by a key other than its issuer certificate's
    FOREIGN_ROOT = "foreign-root"  # issuer activated by another Clearinghouse root
    UNACTIVATED = "unactivated"  # a permanent CAL from a temporary (self-signed) issuer


class LsDouble:
    """One license server played by the suite (see the module docstring)."""

    conversation = Conversation.LICENSING

    def __init__(self, name: str, clock: Clock, mode: LsMode = LsMode.DENY,
                 contacts: list[tuple[str, str, str]] | None = None,
                 root: Root | None = None) -> None:  # fmt: skip
        self.name = name
        self.root = root
        self.fault = LicenseFault.NONE
        self.issue_permanent = False  # a new client gets a permanent CAL (60 days) at once
        self.contacts = contacts if contacts is not None else []
        self._marked: set[int] = set()
        self.clock = clock
        self.mode = mode
        self.key = Ed25519PrivateKey.generate()
        self.requests: Counter[str] = Counter()
        self.refer_to: tuple[str, str] = ("", "")
        self._next_id = 1
        self._chains: dict[int, tuple[bytes, ...]] = {}
        self._certs: dict[int, x509.Certificate] = {}
        self.last_issued = b""

    @property
    def version(self) -> int:
        return 2000 if self.mode in (LsMode.LOWER_VERSION, LsMode.LAX_2000) else 2003

    async def on_hello(self, peer: Peer) -> Welcome:
        self.requests["Hello"] += 1
        self.contacts.append((peer.hello.name, self.name, "Hello"))
        if self.mode is LsMode.DENY:
            raise ServiceError("this license server denies access", code=ErrorCode.ACCESS_DENIED)
        if self.mode is LsMode.LOWER_VERSION and peer.hello.version > 2000:
            raise ServiceError("a Windows 2000 license server cannot serve a Windows Server 2003"
                               " terminal server", code=ErrorCode.LOWER_VERSION)  # fmt: skip
        return Welcome(role=PeerRole.LICENSE_SERVER, name=self.name, version=self.version,
                       server_time=self.clock.now())  # fmt: skip

    async def handle(self, peer: Peer, request: Message) -> Message:
        self.requests[type(request).__name__] += 1
        self.contacts.append((peer.hello.name, self.name, type(request).__name__))
        if self.mode is LsMode.DENY:
            raise ServiceError("access denied", code=ErrorCode.ACCESS_DENIED)
        certified = peer.state.get("certified") or self._ours(peer.hello.cert_chain)
        if not certified and not isinstance(request, RequestTermServCert):
            raise ServiceError("present a terminal-server certificate from this license server"
                               " (RequestTermServCert)", code=ErrorCode.ACCESS_DENIED)  # fmt: skip
        if self.mode is LsMode.NOT_IN_GROUP and not isinstance(request, ReturnLicense):
            raise ServiceError("this terminal server is not in the Terminal Services Computers"
                               " group", code=ErrorCode.NOT_IN_SECURITY_GROUP)  # fmt: skip
        if isinstance(request, RequestTermServCert):
            peer.state["certified"] = True
            return TermServCert(cert_chain=self._ts_chain(request))
        if self.mode is LsMode.REFUSE and isinstance(request, IssueLicense | UpgradeLicenseRequest):
            raise ServiceError("no license is available", code=ErrorCode.NO_LICENSE_AVAILABLE)
        if self.mode is LsMode.REFER and isinstance(request, IssueLicense | UpgradeLicenseRequest):
            name, address = self.refer_to
            return Referral(product=CalProduct.W2003_DEVICE_CAL,
                            servers=(ServerRef(name=name, address=address),),
                            reason=f"no CAL left here; {name} has them")  # fmt: skip
        if isinstance(request, IssueLicense | UpgradeLicenseRequest):
            return self._grant(request, int(peer.hello.version))
        if isinstance(request, MarkLicense):
            self._marked.add(request.license_id)
            return LicenseMarked(license_id=request.license_id, validated=True)
        if isinstance(request, ReturnLicense):
            return LicenseReturned(license_id=request.license_id)
        raise ServiceError(f"{type(request).__name__} is not served by the suite's double",
                           code=ErrorCode.ACCESS_DENIED)  # fmt: skip

    def _ours(self, chain: tuple[bytes, ...]) -> bool:
        """A terminal-server chain this double issued (its own chain, then the TS cert)."""
        return bool(chain) and any(chain[:-1] == ours for ours in self._chains.values())

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now() / 1000, UTC)

    def _chain(self) -> tuple[bytes, ...]:
        version = self.version
        if version not in self._chains:
            if self.root is None:
                cert = self._temporary_cert()
                self._chains[version] = (pki.cert_to_der(cert),)
            else:
                # activated by the suite's Clearinghouse root, for as long as the root is valid
                # (the cases move the clock both ways: CLOCK-3)
                key, root = self.root
                cert = pki.issue_license_server_cert(
                    key, root, self.key.public_key(), name=self.name, version=version,
                    license_server_id=f"CONF-{self.name}", serial=version,
                    not_before=root.not_valid_before_utc, not_after=root.not_valid_after_utc,
                )  # fmt: skip
                self._chains[version] = (pki.cert_to_der(root), pki.cert_to_der(cert))
            self._certs[version] = cert
        return self._chains[version]

    def _temporary_cert(self) -> x509.Certificate:
        """The self-signed certificate of an unactivated license server (ACT-10)."""
        now = self._now()
        return pki.make_temporary_license_server_cert(
            self.key, name=self.name, version=self.version, not_before=now - timedelta(days=1),
            not_after=now + timedelta(days=3650), serial=self.version,
        )  # fmt: skip

    def _faulty_chain(self) -> tuple[bytes, ...]:
        """The issuer chain of a license with `fault` (SEC-12)."""
        if self.fault is LicenseFault.UNACTIVATED:
            return (pki.cert_to_der(self._temporary_cert()),)
        if self.fault is LicenseFault.FOREIGN_ROOT:
            now = self._now()
            other = Ed25519PrivateKey.generate()
            root = pki.make_root(other, name="another Clearinghouse", serial=7,
                                 not_before=now - timedelta(days=3650),
                                 not_after=now + timedelta(days=3650))  # fmt: skip
            cert = pki.issue_license_server_cert(
                other, root, self.key.public_key(), name=self.name, version=self.version,
                license_server_id=f"ALIEN-{self.name}", serial=8,
                not_before=now - timedelta(days=1), not_after=now + timedelta(days=3650),
            )  # fmt: skip
            return (pki.cert_to_der(root), pki.cert_to_der(cert))
        return self._chain()

    def _ts_chain(self, request: RequestTermServCert) -> tuple[bytes, ...]:
        chain = self._chain()
        now = self._now()
        ts = pki.issue_terminal_server_cert(
            self.key, self._certs[self.version],
            Ed25519PublicKey.from_public_bytes(request.public_key), name=request.name,
            version=int(request.version), not_before=now - timedelta(days=1),
            not_after=now + timedelta(days=365), serial=self._take_id() + 100,
        )  # fmt: skip
        return (*chain, pki.cert_to_der(ts))

    def _take_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _grant(self, request: IssueLicense | UpgradeLicenseRequest, ts_version: int) -> Message:
        if isinstance(request, UpgradeLicenseRequest):
            presented = open_license(request.license).body
            # a renewal (LEASE-4), or the upgrade of a temporary marked validated (TEMP-7)
            if presented.kind is LicenseKind.PERMANENT or (
                presented.issuer == self.name and presented.license_id in self._marked
            ):
                body = dataclasses.replace(presented, license_id=self._take_id(),
                                           kind=LicenseKind.PERMANENT,
                                           issued_at=self.clock.now(),
                                           expires_at=self.clock.now() + 60 * DAY)  # fmt: skip
                return self._granted(body, upgraded=True)
        if self.mode is LsMode.LAX_2000 or ts_version == 2000:
            product = CalProduct.W2000_TS_CAL
        elif request.mode is LicensingMode.PER_USER:
            product = CalProduct.W2003_USER_CAL
        else:
            product = CalProduct.W2003_DEVICE_CAL
        now = self.clock.now()
        license_id = self._take_id()
        permanent = self.issue_permanent or self.fault is not LicenseFault.NONE
        expires = now + (60 if permanent else TEMPORARY_DAYS) * DAY
        body = LicenseBody(
            license_id=license_id, product=product,
            kind=LicenseKind.PERMANENT if permanent else LicenseKind.TEMPORARY,
            hwid=request.hwid, machine=request.machine, user=request.user,
            client_os=request.client_os, mode=request.mode, issuer=self.name,
            license_server_id="", issued_at=now, expires_at=expires,
        )  # fmt: skip
        return self._granted(body, upgraded=False)

    def _granted(self, body: LicenseBody, *, upgraded: bool) -> LicenseGranted:
        key = Ed25519PrivateKey.generate() if self.fault is LicenseFault.BAD_SIGNATURE else self.key
        blob = sign_license(key, self._faulty_chain(), body)
        self.last_issued = blob
        return LicenseGranted(license=blob, license_id=body.license_id, kind=body.kind,
                              product=body.product, expires_at=body.expires_at,
                              upgraded=upgraded)  # fmt: skip

    def mint(self, *, hwid: bytes, kind: LicenseKind, product: CalProduct, expires_at: int,
             machine: str = "CONF-CLIENT") -> bytes:  # fmt: skip
        """A license blob as this server would have issued it (signed by its key)."""
        body = LicenseBody(
            license_id=self._take_id(), kind=kind, product=product, hwid=hwid, machine=machine,
            user="conformance", client_os=ClientOS.XP_PRO, mode=LicensingMode.PER_DEVICE,
            issuer=self.name, license_server_id="",
            issued_at=min(self.clock.now(), expires_at) - 60 * DAY,
            expires_at=expires_at,
        )  # fmt: skip
        return sign_license(self.key, self._chain(), body)


class Peers:
    """The doubles of one run, bound to the addresses a manifest gives: license servers (agent
    targets) and a Clearinghouse (license-server targets, chdouble.py)."""

    def __init__(self, servers: dict[str, str], clock: Clock,
                 clearinghouse: tuple[str, ChDouble] | None = None,
                 directory: tuple[str, DirDouble] | None = None,
                 root: Root | None = None) -> None:  # fmt: skip
        self.addresses = dict(servers)  # name -> "host:port"
        self.contacts: list[tuple[str, str, str]] = []  # (caller, double, message), in order
        self.root = root
        self.license_servers = {name: LsDouble(name, clock, contacts=self.contacts, root=root)
                                for name in servers}  # fmt: skip
        self.directory = directory[1] if directory else None
        self._dir_address = directory[0] if directory else ""
        self.clearinghouse = clearinghouse[1] if clearinghouse else None
        self._ch_address = clearinghouse[0] if clearinghouse else ""
        self._servers: list[Server] = []
        self.clock = clock
        self.watch = Watch()  # the target's requests as its peers saw them (STATE-4)

    def set_all(self, mode: LsMode) -> None:
        for double in self.license_servers.values():
            double.mode = mode

    def issued(self) -> int:
        """License requests the doubles answered so far (IssueLicense + upgrades)."""
        return sum(d.requests["IssueLicense"] + d.requests["UpgradeLicenseRequest"]
                   for d in self.license_servers.values())  # fmt: skip

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Bind every double to its manifest address; run until cancelled."""
        services: list[tuple[str, str, Service]] = [
            (self.addresses[name], name, double) for name, double in self.license_servers.items()
        ]
        if self.clearinghouse is not None:
            services.append((self._ch_address, "CLEARINGHOUSE", self.clearinghouse))
        if self.directory is not None:
            services.append((self._dir_address, "DIRECTORY", self.directory))
        async with trio.open_nursery() as nursery:
            for address, name, service in services:
                host, port = split_address(address)
                server = WatchedServer(
                    service,
                    key=Ed25519PrivateKey.generate(),
                    clock=self.clock,
                    limits=Limits(handshake_timeout=5.0),
                )
                server.watch_as(self.watch, name)
                self._servers.append(server)
                await nursery.start(server.serve, host, port)
            task_status.started()
