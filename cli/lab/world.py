"""The lab's deployment: real daemons over loopback, and the hands that drive them.

Contract: `World` owns one `Deployment` (separate processes: one Clearinghouse, one directory,
the license servers and terminal-server agents each scenario asks for) and one `LabClock`
shared by all of them through a clock file. It seeds the Clearinghouse catalogue, exports the
root every daemon trusts, and gives scenarios what an administrator and a user have: the
licensing utility's operations (over the admin conversation, with the server's credential),
the Clearinghouse's web page and telephone line, and emulated RDP clients (`tslic connect`'s
client, in this process, each with its own license store). Daemons are named after their
computer accounts in the lab topology, so the directory can publish and resolve them. The
Clearinghouse's purchases and its by-hand channels live in `clearinghouse.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Unpack

import trio
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.client.agent.status import AgentStatus, events_document, status_document
from tslic.client.rdp.client import Outcome, connect
from tslic.client.rdp.store import LicenseStore
from tslic.protocol import Conversation
from tslic.protocol.domain import (
    ActivationMethod,
    CalProduct,
    ClientOS,
    PeerRole,
    Program,
)
from tslic.protocol.messages import Message
from tslic.protocol.messages.admin import (
    ActivationAction,
    AdminActivate,
    AdminActivationStep,
    AdminCompleteActivation,
    AdminInstallKeyPack,
    AdminSetProperties,
)
from tslic.runtime.files import load_key, write_certs
from tslic.runtime.peer import open_peer

from . import clearinghouse
from .clearinghouse import CONTACT, Catalogue, XpVolume
from .clock import LabClock
from .procs import Daemon, Deployment

CREDENTIAL = "lab-enterprise-admin"
TOPOLOGY = Path(__file__).with_name("lab_topology.toml")


class World:
    def __init__(self, data: Path, clock: LabClock, echo: Callable[[str], None]) -> None:
        self.data = data
        self.clock = clock
        self.echo = echo
        self.dep = Deployment(data, clock.path)
        self.catalogue = Catalogue()
        self.root_pem = data / "root.pem"
        self.root: x509.Certificate | None = None
        self.ch: Daemon | None = None
        self.directory: Daemon | None = None
        self.lab_key = Ed25519PrivateKey.generate()

    # ---- boot ----------------------------------------------------------------------------

    async def boot(self) -> None:
        await self.dep.__aenter__()
        self._seed_clearinghouse()
        self.ch = await self.dep.start(
            "clearinghouse", "clearinghouse", "serve", "--data", str(self.data / "clearinghouse")
        )
        self.directory = await self.dep.start(
            "directory",
            "directory",
            "serve",
            "--data",
            str(self.data / "directory"),
            "--topology",
            str(TOPOLOGY),
            "--credential",
            CREDENTIAL,
            "--listen",
            "127.0.0.1:0",
        )

    async def close(self) -> None:
        await self.dep.__aexit__(None, None, None)

    def _seed_clearinghouse(self) -> None:
        """The catalogue of purchases a customer of 2003 might have made."""
        self.root = clearinghouse.seed_clearinghouse(
            self.data / "clearinghouse", self.clock.now(), self.catalogue
        )
        write_certs(self.root_pem, [self.root])

    def add_xp_license(
        self, key: str, acquired: int, channel: str, **volume: Unpack[XpVolume]
    ) -> None:
        clearinghouse.add_xp_license(self.data / "clearinghouse", key, acquired, channel, **volume)

    # ---- daemons --------------------------------------------------------------------------

    async def license_server(
        self,
        computer: str,
        *,
        version: int,
        role: str = "domain",
        domain: str,
        site: str,
        extra: tuple[str, ...] = (),
        name: str = "",
    ) -> Daemon:
        """Start a license server on `computer` (daemon `name`, default the computer)."""
        assert self.ch is not None
        assert self.directory is not None
        name = name or computer
        return await self.dep.start(
            name,
            "server",
            "serve",
            "--data",
            str(self.data / "ls" / name),
            "--name",
            computer,
            "--version",
            str(version),
            "--role",
            role,
            "--domain",
            domain,
            "--site",
            site,
            "--listen",
            "127.0.0.1:0",
            "--clearinghouse",
            self.ch.address,
            "--clearinghouse-web",
            str(self.ch.info["url"]),
            "--directory",
            self.directory.address,
            "--trust-root",
            str(self.root_pem),
            "--enterprise-credential",
            CREDENTIAL,
            "--seed",
            "2003",
            *extra,
        )

    async def agent(
        self,
        name: str,
        *,
        version: int,
        domain: str,
        site: str,
        mode: str = "per-device",
        registry: tuple[str, ...] = (),
        extra: tuple[str, ...] = (),
    ) -> Daemon:
        """Start a terminal server; `registry` names running license servers for its
        LicenseServers key, in order."""
        assert self.directory is not None
        for server in registry:
            extra = (*extra, "--license-server", self.ref(server))
        return await self.dep.start(
            name,
            "agent",
            "run",
            "--data",
            str(self.data / "agents" / name),
            "--name",
            name,
            "--version",
            str(version),
            "--mode",
            mode,
            "--domain",
            domain,
            "--site",
            site,
            "--listen",
            "127.0.0.1:0",
            "--directory",
            self.directory.address,
            "--trust-root",
            str(self.root_pem),
            *extra,
        )

    def ref(self, daemon_name: str) -> str:
        """NAME=HOST:PORT of a running daemon, for the agents' preferred-server lists."""
        return f"{daemon_name}={self.dep.daemons[daemon_name].address}"

    async def stop(self, name: str, *, kill: bool = False) -> None:
        await self.dep.stop(name, kill=kill)

    async def directory_write(self, request: Message) -> Message:
        """One request to the directory (publishing, computer changes)."""
        assert self.directory is not None
        with trio.fail_after(120):  # a hang guard; a busy machine is slow, not wrong
            async with open_peer(
                self.directory.address,
                conversation=Conversation.DIRECTORY,
                key=self.lab_key,
                clock=self.clock,
                role=PeerRole.ADMINISTRATOR,
                name="LABADMIN",
            ) as stream:
                return await stream.request(request)

    # ---- the licensing utility -------------------------------------------------------------

    async def admin(self, ls_name: str, *requests: Message) -> list[Message]:
        """Send admin requests to a license server with its administrator credential."""
        daemon = self.dep.daemons[ls_name]
        key = load_key(Path(daemon.info["admin_credential"]))
        replies = []
        with trio.fail_after(120):  # a hang guard; a busy machine is slow, not wrong
            async with open_peer(
                daemon.address,
                conversation=Conversation.ADMIN,
                key=key,
                clock=self.clock,
                role=PeerRole.ADMINISTRATOR,
                name="LABADMIN",
            ) as stream:
                for request in requests:
                    replies.append(await stream.request(request))
        return replies

    async def activate(self, ls_name: str, method: ActivationMethod) -> str:
        """Activate by a method; return the code the operator carried (web, telephone)."""
        await self.admin(ls_name, AdminSetProperties(contact=CONTACT, method=method))
        (step,) = await self.admin(
            ls_name, AdminActivate(action=ActivationAction.ACTIVATE, method=method)
        )
        if method is ActivationMethod.AUTOMATIC:
            return ""
        assert isinstance(step, AdminActivationStep)
        if method is ActivationMethod.WEB:
            code = await self.web_activate(step.product_id)
        else:
            code = await self.phone_activate(step.product_id)
        await self.admin(
            ls_name, AdminCompleteActivation(action=ActivationAction.ACTIVATE, code=code)
        )
        return code

    async def install_retail(self, ls_name: str, label: str, product: CalProduct) -> Message:
        (reply,) = await self.admin(
            ls_name,
            AdminInstallKeyPack(
                program=Program.RETAIL,
                product=product,
                count=0,
                retail_code=self.catalogue.retail[label],
            ),
        )
        return reply

    # ---- the Clearinghouse by hand -----------------------------------------------------------

    async def web_post(self, page: str, form: dict[str, str]) -> str:
        assert self.ch is not None
        return await clearinghouse.web_post(self.ch.info["url"], page, form)

    async def web_activate(self, product_id: str) -> str:
        assert self.ch is not None
        return await clearinghouse.web_activate(self.ch.info["url"], product_id)

    async def phone(self, answers: list[str]) -> list[dict[str, str]]:
        """Call the Clearinghouse: answer its prompts in order; return its JSON results."""
        return await clearinghouse.phone(self.data / "clearinghouse", self.clock.path, answers)

    async def phone_activate(self, product_id: str) -> str:
        return await clearinghouse.phone_activate(
            self.data / "clearinghouse", self.clock.path, product_id
        )

    # ---- clients -----------------------------------------------------------------------------

    async def connect(
        self,
        agent_name: str,
        device: str,
        client_os: ClientOS,
        *,
        user: str = "alice",
        logon: bool = True,
    ) -> Outcome:
        """One RDP connection from an emulated client with its own license store."""
        store = LicenseStore(self.data / "clients" / device)
        return await connect(
            self.dep.daemons[agent_name].address,
            store=store,
            device=device,
            user=user,
            client_os=client_os,
            clock=self.clock,
            trust_root=self.root,
            password_ok=logon,
            timeout=120,  # a hang guard: a busy machine is slow, not wrong
        )

    async def connect_twice(self, agent_name: str, device: str, client_os: ClientOS) -> Outcome:
        """Connect and log on, then connect again: the second connection is the one on which
        a validated temporary license is upgraded (post-logon issuance, KB 287687)."""
        await self.connect(agent_name, device, client_os)
        return await self.connect(agent_name, device, client_os)

    def agent_status(self, agent_name: str) -> AgentStatus:
        return status_document(self.data / "agents" / agent_name, self.clock)

    def agent_events(self, agent_name: str) -> list[int]:
        return [int(e["id"]) for e in events_document(self.data / "agents" / agent_name)]
