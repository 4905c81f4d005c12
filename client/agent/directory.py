"""Queries to the emulated directory (Active Directory) on behalf of the agent (§2.2-§2.4).

Contract: every query opens one directory conversation as the terminal server (Hello with
its name and version), bounded by the configured network timeout. A directory that is not
configured, unreachable or refusing yields "nothing found" (None / () / ""), logged: discovery
goes on with its other sources, as a terminal server without a reachable domain controller.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.protocol import Conversation, Message
from tslic.protocol.domain import PeerRole
from tslic.protocol.errors import TslicError
from tslic.protocol.messages.directory import DirComputer, DirLookupComputer, DirServers
from tslic.protocol.messages.records import ServerRef
from tslic.runtime.clock import Clock
from tslic.runtime.peer import open_peer

from .config import AgentConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Directory:
    """Where the directory is and who asks."""

    config: AgentConfig
    key: Ed25519PrivateKey
    clock: Clock

    async def ask(self, query: Message) -> Message | None:
        """The directory's answer, or None (not configured, unreachable, refused)."""
        cfg = self.config
        if not cfg.directory:
            return None
        try:
            with trio.fail_after(cfg.network_timeout):
                async with open_peer(
                    cfg.directory,
                    conversation=Conversation.DIRECTORY,
                    key=self.key,
                    clock=self.clock,
                    role=PeerRole.TERMINAL_SERVER,
                    name=cfg.name,
                    version=int(cfg.version),
                ) as stream:
                    return await stream.request(query)
        except (TslicError, trio.TooSlowError) as exc:
            log.info("directory %s: %s", cfg.directory, exc)
            return None


async def directory_servers(directory: Directory, query: Message) -> tuple[ServerRef, ...]:
    """The servers a DirQueryEnterprise / DirQueryDomainControllers names (or ())."""
    reply = await directory.ask(query)
    return reply.servers if isinstance(reply, DirServers) else ()


async def lookup(directory: Directory, name: str) -> str:
    """A computer's registered address (DirLookupComputer), or ""."""
    reply = await directory.ask(DirLookupComputer(name=name))
    return reply.computer.address if isinstance(reply, DirComputer) else ""
