"""The directory (Active Directory), played by the suite for an agent target.

Contract: `DirDouble(domain, site, servers, clock)` serves the `directory` conversation
(runtime.Server) to the agent the manifest of `tslic conformance prepare --role agent` started
with `--directory`, `--domain` and `--site`:
- DirQueryEnterprise for its site lists the enterprise license servers `enterprise` names
  (published under CN=TS-Enterprise-License-Server of the site; DIR-1), any other site is
  NOT_FOUND;
- DirQueryDomainControllers for its domain lists `controllers`, another domain is NOT_FOUND;
- DirLookupComputer answers the address of any server it knows, NOT_FOUND otherwise.
`servers` maps computer names to addresses. By default CONF-ENT (and CONF-LS2 spelt
"conf-ls2", for DISC-7) is published for the site and CONF-DC is the domain controller; a case
may change `enterprise` and `controllers`. Every query is counted in `requests`. Only
protocol/ and runtime/ are used.
"""

from __future__ import annotations

from collections import Counter

from tslic.protocol import Conversation, ErrorCode, ServiceError
from tslic.protocol.domain import PeerRole
from tslic.protocol.messages import Message, Welcome
from tslic.protocol.messages.directory import (
    DirComputer,
    DirLookupComputer,
    DirQueryDomainControllers,
    DirQueryEnterprise,
    DirServers,
)
from tslic.protocol.messages.records import ComputerInfo, ServerRef
from tslic.runtime.clock import Clock
from tslic.runtime.service import Peer

FOREST = "DC=conformance,DC=invalid"


class DirDouble:
    conversation = Conversation.DIRECTORY

    def __init__(self, domain: str, site: str, servers: dict[str, str], clock: Clock) -> None:
        self.domain = domain
        self.site = site
        self.servers = dict(servers)
        self.clock = clock
        # CONF-ENT published for the site, and CONF-LS2 again under another spelling (DISC-7)
        self.enterprise: list[str] = [n for n in ("CONF-ENT",) if n in self.servers]
        if "CONF-LS2" in self.servers:
            self.enterprise.append("conf-ls2")
        self.controllers: list[str] = [n for n in ("CONF-DC",) if n in self.servers]
        self.requests: Counter[str] = Counter()

    async def on_hello(self, peer: Peer) -> Welcome:
        return Welcome(role=PeerRole.DIRECTORY, name="CONF-DC", version=2003,
                       server_time=self.clock.now())  # fmt: skip

    def _ref(self, name: str, *, dc: bool = False) -> ServerRef:
        address = next((a for n, a in self.servers.items() if n.casefold() == name.casefold()), "")
        return ServerRef(name=name, address=address, domain=self.domain, site=self.site,
                         is_domain_controller=dc)  # fmt: skip

    async def handle(self, peer: Peer, request: Message) -> Message:
        self.requests[type(request).__name__] += 1
        if isinstance(request, DirQueryEnterprise):
            if request.site.casefold() != self.site.casefold():
                raise ServiceError(f"no site {request.site}", code=ErrorCode.NOT_FOUND)
            dn = (f"CN=TS-Enterprise-License-Server,CN={self.site},CN=Sites,"
                  f"CN=Configuration,{FOREST}")  # fmt: skip
            return DirServers(servers=tuple(self._ref(n) for n in self.enterprise),
                              distinguished_name=dn)  # fmt: skip
        if isinstance(request, DirQueryDomainControllers):
            if request.domain.casefold() != self.domain.casefold():
                raise ServiceError(f"no domain {request.domain}", code=ErrorCode.NOT_FOUND)
            return DirServers(servers=tuple(self._ref(n, dc=True) for n in self.controllers),
                              distinguished_name=f"OU=Domain Controllers,{FOREST}")  # fmt: skip
        if isinstance(request, DirLookupComputer):
            name = next((n for n in self.servers if n.casefold() == request.name.casefold()), "")
            if not name:
                raise ServiceError(f"no computer {request.name}", code=ErrorCode.NOT_FOUND)
            return DirComputer(computer=ComputerInfo(
                name=name, domain=self.domain, site=self.site,
                is_domain_controller=name in self.controllers, os_version=2003,
                address=self.servers[name]))  # fmt: skip
        raise ServiceError(f"{type(request).__name__} is not served by the suite's directory",
                           code=ErrorCode.ACCESS_DENIED)  # fmt: skip
