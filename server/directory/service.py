"""The emulated Active Directory: request handlers for Conversation.DIRECTORY.

Contract (docs/DIRECTORY.md, MS-ADSC Licensing-Site-Settings, KB 232520, TechNet cc758063):
- Queries are open to any caller with any Hello role (Authenticated Users may read the
  licensing objects): DirQueryEnterprise answers the siteServer values of
  CN=TS-Enterprise-License-Server,CN=<site>,CN=Sites,CN=Configuration,<forest DN> with their
  addresses and that DN; DirQueryDomainControllers the domain controllers of a domain (by
  NetBIOS or DNS name) with "OU=Domain Controllers,<domain DN>"; DirLookupComputer a computer
  by NetBIOS name or FQDN; DirGroupMembers a group, written "SCOPE\\name" (SCOPE: a domain for
  a domain-local group, a computer for a local group) or as a bare name when that is unique.
  Both spellings of the License Server Security Group are one group, and every computer and
  domain has that group, empty unless the topology gives members (TechNet cc758063: empty by
  default).
- DirRegister (the emulated DNS dynamic update) records a known computer's "host:port".
- DirPublish, DirUnpublish and DirSetComputer need the enterprise-admin credential, compared
  with hmac.compare_digest before anything else is looked at; a wrong one is refused with
  PUBLISH_DENIED. Unknown sites, domains, computers and groups are NOT_FOUND; values that
  break the rules (a bad name or address, a 2000 DC in a 2003 domain, demoting the last DC,
  an OS downgrade) are INVALID_REQUEST refusals (the account-change checks are in
  changes.py). A refusal changes nothing.
- Changes are committed to the store before the reply, then applied to the in-memory view;
  a StorageError becomes a STORAGE_ERROR refusal and the view is unchanged.
- At start the view is the topology file overlaid with the stored changes. Stored entries that
  no longer fit the topology (a site or domain removed from the file) are skipped with a
  warning and listed in `skipped`, not deleted.
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
from pathlib import Path

from tslic.protocol import Conversation, ErrorCode, Message, ServiceError
from tslic.protocol.domain import PeerRole
from tslic.protocol.messages import Welcome
from tslic.protocol.messages.directory import (
    DirAck,
    DirComputer,
    DirGroup,
    DirGroupMembers,
    DirLookupComputer,
    DirPublish,
    DirQueryDomainControllers,
    DirQueryEnterprise,
    DirRegister,
    DirServers,
    DirSetComputer,
    DirUnpublish,
)
from tslic.protocol.messages.records import ComputerInfo, ServerRef
from tslic.runtime.clock import Clock
from tslic.runtime.service import Peer

from .changes import check_change, checked_address, describe_change
from .changes import invalid as _invalid
from .store import ComputerRow, DirectoryStore
from .topology import (
    TS_GROUP_NAMES,
    Computer,
    Domain,
    Group,
    Topology,
    check_computer_name,
    check_dc_rules,
    check_version,
    is_ts_group,
    same_group,
)

log = logging.getLogger(__name__)


def _not_found(text: str) -> ServiceError:
    return ServiceError(text, code=ErrorCode.NOT_FOUND)


class DirectoryService:
    """One directory: a topology, its stored changes, and the enterprise-admin credential."""

    conversation = Conversation.DIRECTORY

    def __init__(
        self,
        topology: Topology,
        data_dir: Path,
        clock: Clock,
        enterprise_admin_credential: str,
    ) -> None:
        if not enterprise_admin_credential.strip():
            raise _invalid("the enterprise-admin credential must not be empty", "credential")
        self.topology = topology
        self.clock = clock
        self._credential = enterprise_admin_credential.encode()
        self.skipped: list[str] = []
        self.store = DirectoryStore(data_dir)
        try:
            self._load()
        except BaseException:
            self.store.close()
            raise

    def close(self) -> None:
        self.store.close()

    # -- the view ---------------------------------------------------------------------------
    def _load(self) -> None:
        topo = self.topology
        self._computers: dict[str, Computer] = {c.name.casefold(): c for c in topo.computers}
        for row in self.store.computers():
            domain, site = topo.domain(row.domain), topo.site(row.site)
            if domain is None or site is None:
                self._skip(f"computer {row.name}: its domain or site is not in the topology")
                continue
            old = self._computers.get(row.name.casefold())
            self._computers[row.name.casefold()] = Computer(
                name=row.name,
                domain=domain.netbios,
                site=site,
                is_domain_controller=row.is_domain_controller,
                os_version=row.os_version,
                address=old.address if old else "",
            )
        self._addresses = {k: c.address for k, c in self._computers.items() if c.address}
        for name, address in self.store.addresses().items():
            if name.casefold() in self._computers:
                self._addresses[name.casefold()] = address
            else:
                self._skip(f"address of {name}: no such computer in the topology")
        self._published: dict[str, list[str]] = {s.casefold(): [] for s in topo.sites}
        for site, name in self.store.published():
            computer = self._computers.get(name.casefold())
            if topo.site(site) is None or computer is None:
                self._skip(f"{name} published in site {site}: site or computer not in topology")
                continue
            self._published[site.casefold()].append(computer.name)

    def _skip(self, text: str) -> None:
        log.warning("stored state ignored: %s", text)
        self.skipped.append(text)

    def computers(self) -> list[ComputerInfo]:
        """Every computer account, in topology order then creation order."""
        return [self._info(c) for c in self._computers.values()]

    def _info(self, c: Computer) -> ComputerInfo:
        return ComputerInfo(
            name=c.name,
            domain=c.domain,
            site=c.site,
            is_domain_controller=c.is_domain_controller,
            os_version=c.os_version,
            address=self._addresses.get(c.name.casefold(), ""),
        )

    def _ref(self, c: Computer) -> ServerRef:
        return ServerRef(
            name=c.name,
            address=self._addresses.get(c.name.casefold(), ""),
            domain=c.domain,
            site=c.site,
            is_domain_controller=c.is_domain_controller,
        )

    def _site(self, name: str) -> str:
        site = self.topology.site(name)
        if site is None:
            known = ", ".join(self.topology.sites)
            raise _not_found(f"there is no site named {name!r} in the forest (sites: {known})")
        return site

    def _domain(self, name: str) -> Domain:
        domain = self.topology.domain(name)
        if domain is None:
            known = ", ".join(f"{d.netbios} ({d.dns_name})" for d in self.topology.domains)
            raise _not_found(f"there is no domain named {name!r} in the forest ({known})")
        return domain

    def _computer(self, name: str) -> Computer:
        """A computer by NetBIOS name or FQDN (name.<domain DNS name>)."""
        host, _, suffix = name.strip().partition(".")
        computer = self._computers.get(host.casefold())
        if computer is not None and suffix:
            domain = self.topology.domain(suffix)
            if domain is None or domain.netbios != computer.domain:
                computer = None
        if computer is None:
            raise _not_found(
                f"there is no computer named {name!r} in the forest {self.topology.forest_name}"
            )
        return computer

    def _authorise(self, credential: str, action: str) -> None:
        # Constant-time comparison: the credential is a secret shared with enterprise admins.
        if not hmac.compare_digest(credential.encode(), self._credential):
            raise ServiceError(
                f"access denied: {action} needs the enterprise-admin credential, and the one "
                "given does not match (only Enterprise Admins may change the directory)",
                code=ErrorCode.PUBLISH_DENIED,
            )

    # -- Service ----------------------------------------------------------------------------
    async def on_hello(self, peer: Peer) -> Welcome:
        # Queries are open: any role may ask (the envelope already proved the sender's key).
        return Welcome(
            role=PeerRole.DIRECTORY,
            name=self.topology.forest_name[:64],
            version=0,
            server_time=self.clock.now(),
        )

    async def handle(self, peer: Peer, request: Message) -> Message:
        return self.answer(request)

    def answer(self, request: Message) -> Message:
        """Answer one request (synchronous: every step is in memory or one short commit)."""
        match request:
            case DirQueryEnterprise():
                return self._query_enterprise(request)
            case DirQueryDomainControllers():
                domain = self._domain(request.domain)
                dcs = [
                    self._ref(c)
                    for c in self._computers.values()
                    if c.domain == domain.netbios and c.is_domain_controller
                ]
                return DirServers(
                    servers=tuple(dcs), distinguished_name=f"OU=Domain Controllers,{domain.dn}"
                )
            case DirLookupComputer():
                return DirComputer(computer=self._info(self._computer(request.name)))
            case DirGroupMembers():
                return self._group_members(request.group)
            case DirRegister():
                return self._register(request)
            case DirPublish():
                return self._publish(request)
            case DirUnpublish():
                return self._unpublish(request)
            case DirSetComputer():
                return self._set_computer(request)
        raise _invalid(f"the directory does not answer {type(request).__name__}", "type")

    def _query_enterprise(self, request: DirQueryEnterprise) -> DirServers:
        site = self._site(request.site)
        servers = tuple(
            self._ref(self._computers[n.casefold()]) for n in self._published[site.casefold()]
        )
        return DirServers(servers=servers, distinguished_name=self.topology.site_dn(site))

    def _group_members(self, text: str) -> DirGroup:
        scope, sep, name = text.strip().rpartition("\\")
        if not name.strip():
            raise _invalid("give a group name, e.g. W3KLS1\\Terminal Services Computers", "group")
        if not sep:
            found = [g for g in self.topology.groups if _named(g, name)]
            if len(found) > 1:
                names = ", ".join(g.qualified for g in found)
                raise _invalid(f"{name!r} names several groups; say which: {names}", "group")
            if not found:
                raise _not_found(f"there is no group named {name!r} in the forest")
            return DirGroup(group=found[0].qualified, members=found[0].members)
        scopes = []
        if (c := self._computers.get(scope.strip().casefold())) is not None:
            scopes.append(c.name)
        if (d := self.topology.domain(scope)) is not None:
            scopes.append(d.netbios)
        if not scopes:
            raise _not_found(f"{scope!r} is neither a computer nor a domain of the forest")
        for s in scopes:
            for g in self.topology.groups:
                if same_group(g, s, name):
                    return DirGroup(group=g.qualified, members=g.members)
        if is_ts_group(name):
            # TechNet cc758063: the group exists on every license server and is empty by default.
            return DirGroup(group=f"{scopes[0]}\\{TS_GROUP_NAMES[0]}", members=())
        raise _not_found(f"there is no group {name!r} on {scope}")

    def _register(self, request: DirRegister) -> DirAck:
        computer = self._computer(request.computer)
        address = checked_address(request.address)
        self.store.register(computer.name, address, self.clock.now())
        self._addresses[computer.name.casefold()] = address
        log.info("%s registered at %s", computer.name, address)
        return DirAck(detail=f"{computer.name} registered at {address}")

    def _publish(self, request: DirPublish) -> DirAck:
        self._authorise(request.credential, "publishing an enterprise license server")
        site = self._site(request.site)
        computer = self._computer(request.computer)
        if not self.store.publish(site, computer.name, self.clock.now()):
            return DirAck(detail=f"{computer.name} was already published for site {site}")
        self._published[site.casefold()].append(computer.name)
        log.info("%s published for site %s", computer.name, site)
        return DirAck(detail=f"{computer.name} published in {self.topology.site_dn(site)}")

    def _unpublish(self, request: DirUnpublish) -> DirAck:
        self._authorise(request.credential, "unpublishing an enterprise license server")
        site = self._site(request.site)
        computer = self._computer(request.computer)
        listed = self._published[site.casefold()]
        if computer.name not in listed:
            raise _not_found(f"{computer.name} is not published for site {site}")
        self.store.unpublish(site, computer.name)
        listed.remove(computer.name)
        log.info("%s unpublished from site %s", computer.name, site)
        return DirAck(detail=f"{computer.name} removed from {self.topology.site_dn(site)}")

    def _set_computer(self, request: DirSetComputer) -> DirAck:
        self._authorise(request.credential, "changing a computer account")
        info = request.computer
        check_computer_name(info.name, "computer.name")
        domain = self._domain(info.domain)
        site = self._site(info.site)
        os_version = check_version(info.os_version, "computer.os_version")
        address = checked_address(info.address) if info.address else ""
        new = Computer(
            name=info.name,
            domain=domain.netbios,
            site=site,
            is_domain_controller=info.is_domain_controller,
            os_version=os_version,
        )
        old = self._computers.get(info.name.casefold())
        if old is not None:
            new = dataclasses.replace(new, name=old.name, address=old.address)
            check_change(old, new, self._computers.values())
        check_dc_rules(domain, new)
        self.store.put_computer(
            ComputerRow(
                name=new.name,
                domain=new.domain,
                site=new.site,
                is_domain_controller=new.is_domain_controller,
                os_version=new.os_version,
                changed_at=self.clock.now(),
            ),
            address,
        )
        self._computers[new.name.casefold()] = new
        if address:
            self._addresses[new.name.casefold()] = address
        detail = describe_change(old, new)
        log.info("computer account: %s", detail)
        return DirAck(detail=detail)


def _named(group: Group, name: str) -> bool:
    return same_group(group, group.scope, name)
