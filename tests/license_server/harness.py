"""In-process deployment for license-server tests: a real Clearinghouse, license servers,
terminal-server and administrator peers, all on 127.0.0.1 port 0 and one virtual clock.

Tests import it as `from tests.license_server import harness` (the `lab` fixture of
tests/license_server/conftest.py wraps `Lab`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TypedDict, Unpack

import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.protocol import Conversation
from tslic.protocol.clock import from_datetime
from tslic.protocol.domain import (
    ActivationMethod,
    CalProduct,
    ClientOS,
    LicensingMode,
    PeerRole,
    Program,
    ServerRole,
    WindowsVersion,
)
from tslic.protocol.messages import Message
from tslic.protocol.messages.admin import (
    ActivationAction,
    AdminActivate,
    AdminInstallKeyPack,
    AdminSetProperties,
)
from tslic.protocol.messages.licensing import (
    IssueLicense,
    LicenseGranted,
    MarkLicense,
    RequestTermServCert,
    TermServCert,
    UpgradeLicenseRequest,
)
from tslic.protocol.messages.records import ContactInfo
from tslic.protocol.pki import raw_public_key
from tslic.runtime.clock import TrioClock
from tslic.runtime.files import load_key
from tslic.runtime.peer import PeerStream, open_peer
from tslic.runtime.service import Server
from tslic.server.clearinghouse.purchases import add_retail
from tslic.server.clearinghouse.service import ClearinghouseService
from tslic.server.license_server.config import Config, PeerServer
from tslic.server.license_server.daemon import LicenseServer

START = from_datetime(datetime(2003, 6, 2, 9, 0, tzinfo=UTC))
CONTACT = ContactInfo(
    first_name="Ada", last_name="Admin", company="Contoso", country="US", email="a@contoso.com"
)


class Overrides(TypedDict, total=False):
    """The `Config` fields a test may set; the others keep the values `Lab.config` gives."""

    data_dir: Path
    role: ServerRole
    domain: str
    site: str
    directory: str
    enterprise_credential: str
    seed: int | None
    peers: tuple[PeerServer, ...]
    security_group: bool | None
    prevent_upgrade: bool | None


@dataclass
class Running:
    ls: LicenseServer
    address: str
    scope: trio.CancelScope


class Lab:
    """One virtual deployment in a test's nursery."""

    def __init__(self, nursery: trio.Nursery, tmp: Path) -> None:
        self.nursery = nursery
        self.tmp = tmp
        self.clock = TrioClock(START)
        self.ch: ClearinghouseService | None = None
        self.ch_address = ""
        self._servers: list[Server] = []

    async def start_clearinghouse(self) -> str:
        self.ch = ClearinghouseService(self.tmp / "ch", self.clock)
        server = Server(self.ch, key=Ed25519PrivateKey.generate(), clock=self.clock)
        self.ch_address = await self.nursery.start(server.serve)
        self._servers.append(server)
        return self.ch_address

    def retail_code(self, product: CalProduct, count: int) -> str:
        assert self.ch is not None
        entitlement = add_retail(self.ch.ch, product=product, count=count, now=self.clock.now())
        assert entitlement.retail_code is not None
        return entitlement.retail_code

    def config(self, name: str, version: int, **kw: Unpack[Overrides]) -> Config:
        base = Config(
            name=name,
            version=WindowsVersion(version),
            role=ServerRole.DOMAIN,
            data_dir=self.tmp / name,
            clearinghouse=self.ch_address,
            seed=7,
            store_threads=False,  # see store.py: threads and the autojump clock disagree
        )
        return replace(base, **kw)

    async def start_ls(self, config: Config) -> LicenseServer:
        ls = LicenseServer(config, self.clock)
        await self.nursery.start(ls.serve)
        return ls

    async def stop(self) -> None:
        for server in self._servers:
            server.shutdown()

    @asynccontextmanager
    async def admin(
        self, ls: LicenseServer, key: Ed25519PrivateKey | None = None
    ) -> AsyncIterator[PeerStream]:
        key = key or load_key(ls.admin_key_path)
        async with open_peer(
            ls.address,
            conversation=Conversation.ADMIN,
            key=key,
            clock=self.clock,
            role=PeerRole.ADMINISTRATOR,
            name="ADMIN",
        ) as stream:
            yield stream

    async def activate(self, ls: LicenseServer) -> None:
        async with self.admin(ls) as adm:
            await adm.request(
                AdminSetProperties(contact=CONTACT, method=ActivationMethod.AUTOMATIC)
            )
            await adm.request(
                AdminActivate(action=ActivationAction.ACTIVATE, method=ActivationMethod.AUTOMATIC)
            )

    async def install(self, ls: LicenseServer, product: CalProduct, count: int) -> Message:
        code = self.retail_code(product, count)
        async with self.admin(ls) as adm:
            return await adm.request(
                AdminInstallKeyPack(
                    program=Program.RETAIL, product=product, count=count, retail_code=code
                )
            )


class TerminalServerPeer:
    """An emulated terminal server: gets its certificate, then asks for licenses."""

    def __init__(self, lab: Lab, name: str, version: int) -> None:
        self.lab, self.name, self.version = lab, name, version
        self.key = Ed25519PrivateKey.generate()
        self.chain: tuple[bytes, ...] = ()

    @asynccontextmanager
    async def connect(self, ls: LicenseServer, *, chain: bool = True) -> AsyncIterator[PeerStream]:
        async with open_peer(
            ls.address,
            conversation=Conversation.LICENSING,
            key=self.key,
            clock=self.lab.clock,
            role=PeerRole.TERMINAL_SERVER,
            name=self.name,
            version=self.version,
            cert_chain=self.chain if chain else (),
        ) as stream:
            yield stream

    async def enrol(self, ls: LicenseServer) -> None:
        async with self.connect(ls, chain=False) as s:
            reply = await s.request(
                RequestTermServCert(
                    name=self.name,
                    domain="CONTOSO",
                    site="S1",
                    version=WindowsVersion(self.version),
                    public_key=raw_public_key(self.key),
                )
            )
        assert isinstance(reply, TermServCert)
        self.chain = reply.cert_chain


class Device:
    """An RDP client device: a hardware id (its key) and the license it stores."""

    def __init__(self, machine: str, os: ClientOS = ClientOS.XP_HOME, user: str = "alice"):
        self.machine, self.os, self.user = machine, os, user
        self.hwid = raw_public_key(Ed25519PrivateKey.generate())
        self.license: bytes = b""
        self.license_id = 0

    async def connect(
        self, stream: PeerStream, mode: LicensingMode = LicensingMode.PER_DEVICE
    ) -> LicenseGranted:
        """One licensing exchange that must end in a license (see `exchange`)."""
        reply = await self.exchange(stream, mode)
        assert isinstance(reply, LicenseGranted), reply
        return reply

    async def exchange(
        self, stream: PeerStream, mode: LicensingMode = LicensingMode.PER_DEVICE
    ) -> Message:
        """One licensing exchange as the terminal server relays it; keeps what it gets."""
        request: Message
        if self.license:
            request = UpgradeLicenseRequest(
                license=self.license,
                hwid=self.hwid,
                machine=self.machine,
                user=self.user,
                client_os=self.os,
                mode=mode,
            )
        else:
            request = IssueLicense(
                hwid=self.hwid, machine=self.machine, user=self.user, client_os=self.os, mode=mode
            )
        reply = await stream.request(request)
        if isinstance(reply, LicenseGranted):
            self.license, self.license_id = reply.license, reply.license_id
        return reply

    async def logon(self, stream: PeerStream) -> None:
        await stream.request(MarkLicense(license_id=self.license_id, hwid=self.hwid))


async def sleep_days(lab: Lab, days: float) -> None:
    await trio.sleep(days * 86_400 / lab.clock.speed)
