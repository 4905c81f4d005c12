"""Any daemon <-> the emulated directory (docs/PROTOCOL.md §5.6).

Contract: queries are open to every caller; `DirPublish`, `DirUnpublish` and `DirSetComputer`
need the enterprise-admin credential (a secret string the directory was started with), and a
wrong one is refused with PUBLISH_DENIED. `DirRegister` is the emulation of a DNS dynamic
update: a computer records the TCP address its daemon listens on.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..names import Kind
from .base import (
    Conversation,
    Message,
    MessageType,
    message,
    require_len,
    require_name,
    require_text,
)
from .records import ComputerInfo, ServerRef

DIR = Conversation.DIRECTORY


@message(MessageType.DIR_REGISTER, DIR)
@dataclass(frozen=True, slots=True, kw_only=True)
class DirRegister(Message):
    computer: str
    address: str

    def check(self) -> None:
        require_name(self.computer, "computer", Kind.COMPUTER)
        require_len(self.address, "address", 3, 260)
        require_text(self.address, "address", 260)


@message(MessageType.DIR_ACK, DIR)
@dataclass(frozen=True, slots=True, kw_only=True)
class DirAck(Message):
    detail: str = ""


@message(MessageType.DIR_PUBLISH, DIR)
@dataclass(frozen=True, slots=True, kw_only=True)
class DirPublish(Message):
    """Add a computer to the siteServer values of the site's TS-Enterprise-License-Server."""

    site: str
    computer: str
    credential: str

    def check(self) -> None:
        _site_and_computer(self.site, self.computer)


@message(MessageType.DIR_UNPUBLISH, DIR)
@dataclass(frozen=True, slots=True, kw_only=True)
class DirUnpublish(Message):
    site: str
    computer: str
    credential: str

    def check(self) -> None:
        _site_and_computer(self.site, self.computer)


@message(MessageType.DIR_QUERY_ENTERPRISE, DIR)
@dataclass(frozen=True, slots=True, kw_only=True)
class DirQueryEnterprise(Message):
    """The enterprise license servers published for a site."""

    site: str

    def check(self) -> None:
        require_name(self.site, "site", Kind.SITE)


@message(MessageType.DIR_QUERY_DOMAIN_CONTROLLERS, DIR)
@dataclass(frozen=True, slots=True, kw_only=True)
class DirQueryDomainControllers(Message):
    domain: str

    def check(self) -> None:
        require_name(self.domain, "domain", Kind.DOMAIN)


@message(MessageType.DIR_SERVERS, DIR)
@dataclass(frozen=True, slots=True, kw_only=True)
class DirServers(Message):
    servers: tuple[ServerRef, ...]
    distinguished_name: str = ""  # the object that was read, for the curious


@message(MessageType.DIR_LOOKUP_COMPUTER, DIR)
@dataclass(frozen=True, slots=True, kw_only=True)
class DirLookupComputer(Message):
    name: str

    def check(self) -> None:
        require_len(self.name, "name", 1, 255)
        require_text(self.name, "name", 255)


@message(MessageType.DIR_COMPUTER, DIR)
@dataclass(frozen=True, slots=True, kw_only=True)
class DirComputer(Message):
    computer: ComputerInfo


@message(MessageType.DIR_GROUP_MEMBERS, DIR)
@dataclass(frozen=True, slots=True, kw_only=True)
class DirGroupMembers(Message):
    group: str

    def check(self) -> None:
        require_name(self.group, "group", Kind.QUALIFIED_GROUP)


@message(MessageType.DIR_GROUP, DIR)
@dataclass(frozen=True, slots=True, kw_only=True)
class DirGroup(Message):
    group: str
    members: tuple[str, ...]


@message(MessageType.DIR_SET_COMPUTER, DIR)
@dataclass(frozen=True, slots=True, kw_only=True)
class DirSetComputer(Message):
    """Create or change a computer account (promote or demote a domain controller, upgrade
    its operating system), as the KB 823313 deployment options need."""

    computer: ComputerInfo
    credential: str


def _site_and_computer(site: str, computer: str) -> None:
    require_name(site, "site", Kind.SITE)
    require_name(computer, "computer", Kind.COMPUTER)
