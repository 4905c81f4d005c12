"""Tests of the directory service over real signed connections (in process, virtual time)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.protocol import Conversation, ErrorCode, ServiceError
from tslic.protocol.domain import PeerRole
from tslic.protocol.messages import Message
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
from tslic.protocol.messages.records import ComputerInfo
from tslic.runtime.clock import TrioClock
from tslic.runtime.peer import PeerStream, open_peer
from tslic.runtime.service import Server
from tslic.server.directory import DirectoryService, load_topology, parse_topology
from tslic.server.directory.store import DB_NAME
from tslic.server.directory.topology import sample_topology_text

SECRET = "enterprise-admin-secret"
START = 1_057_000_000_000  # July 2003
BRANCH_DN = (
    "CN=TS-Enterprise-License-Server,CN=BRANCH,CN=Sites,CN=Configuration,DC=oldcorp,DC=example"
)


@asynccontextmanager
async def directory(data: Path) -> AsyncIterator[tuple[DirectoryService, PeerStream]]:
    """A directory on the sample topology, and one client conversation with it."""
    clock = TrioClock(START)
    service = DirectoryService(load_topology(None), data, clock, SECRET)
    server = Server(service, key=Ed25519PrivateKey.generate(), clock=clock)
    try:
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server.serve)
            async with open_peer(
                address,
                conversation=Conversation.DIRECTORY,
                key=Ed25519PrivateKey.generate(),
                clock=clock,
                role=PeerRole.TERMINAL_SERVER,  # any role may ask
                name="W3KTS2",
                version=2003,
            ) as stream:
                yield service, stream
            server.shutdown()
    finally:
        service.close()


async def refused(stream: PeerStream, request: Message) -> ServiceError:
    with pytest.raises(ServiceError) as info:
        await stream.request(request)
    return info.value


async def test_welcome_names_the_forest(tmp_path: Path, autojump_clock: object) -> None:
    async with directory(tmp_path) as (_, stream):
        assert stream.welcome.role is PeerRole.DIRECTORY
        assert stream.welcome.name == "oldcorp.example"
        assert stream.welcome.server_time >= START


async def test_query_enterprise_lists_published_servers_with_addresses(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with directory(tmp_path) as (_, s):
        empty = await s.request(DirQueryEnterprise(site="branch"))
        assert isinstance(empty, DirServers)
        assert empty.servers == ()
        assert empty.distinguished_name == BRANCH_DN
        await s.request(DirRegister(computer="w3kls1", address="127.0.0.1:4100"))
        ack = await s.request(DirPublish(site="BRANCH", computer="W3KLS1", credential=SECRET))
        assert isinstance(ack, DirAck)
        assert BRANCH_DN in ack.detail
        await s.request(DirPublish(site="BRANCH", computer="W3KLS2", credential=SECRET))
        got = await s.request(DirQueryEnterprise(site="BRANCH"))
        assert isinstance(got, DirServers)
        assert [(r.name, r.address, r.domain, r.site) for r in got.servers] == [
            ("W3KLS1", "127.0.0.1:4100", "NEWCORP", "BRANCH"),
            ("W3KLS2", "", "OLDCORP", "HQ"),
        ]
        # The other site is unaffected.
        hq = await s.request(DirQueryEnterprise(site="HQ"))
        assert isinstance(hq, DirServers)
        assert hq.servers == ()


async def test_publish_is_idempotent_and_unpublish_removes(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with directory(tmp_path) as (_, s):
        await s.request(DirPublish(site="BRANCH", computer="W3KLS1", credential=SECRET))
        again = await s.request(DirPublish(site="branch", computer="w3kls1", credential=SECRET))
        assert isinstance(again, DirAck)
        assert "already published" in again.detail
        got = await s.request(DirQueryEnterprise(site="BRANCH"))
        assert isinstance(got, DirServers)
        assert [r.name for r in got.servers] == ["W3KLS1"]
        await s.request(DirUnpublish(site="BRANCH", computer="W3KLS1", credential=SECRET))
        got = await s.request(DirQueryEnterprise(site="BRANCH"))
        assert isinstance(got, DirServers)
        assert got.servers == ()
        err = await refused(s, DirUnpublish(site="BRANCH", computer="W3KLS1", credential=SECRET))
        assert err.code is ErrorCode.NOT_FOUND
        assert "not published" in err.message


async def test_wrong_credential_is_refused_and_changes_nothing(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with directory(tmp_path) as (_, s):
        for request in (
            DirPublish(site="BRANCH", computer="W3KLS1", credential="guess"),
            DirPublish(site="NOSUCH", computer="W3KLS1", credential=""),  # no site leak
            DirUnpublish(site="BRANCH", computer="W3KLS1", credential=SECRET + "x"),
            DirSetComputer(
                computer=ComputerInfo(
                    name="W2KDC1",
                    domain="OLDCORP",
                    site="HQ",
                    is_domain_controller=True,
                    os_version=2003,
                ),
                credential=SECRET[:-1],
            ),
        ):
            err = await refused(s, request)
            assert err.code is ErrorCode.PUBLISH_DENIED
            assert "enterprise-admin credential" in err.message
        # The connection is still usable and nothing changed.
        got = await s.request(DirQueryEnterprise(site="BRANCH"))
        assert isinstance(got, DirServers)
        assert got.servers == ()
        dc = await s.request(DirLookupComputer(name="W2KDC1"))
        assert isinstance(dc, DirComputer)
        assert dc.computer.os_version == 2000


async def test_unknown_site_or_computer_is_not_found(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with directory(tmp_path) as (_, s):
        cases = [
            (DirQueryEnterprise(site="MOON"), "no site named 'MOON'"),
            (DirPublish(site="MOON", computer="W3KLS1", credential=SECRET), "sites: HQ, BRANCH"),
            (DirPublish(site="HQ", computer="NOPE", credential=SECRET), "no computer named"),
            (DirQueryDomainControllers(domain="EVILCORP"), "no domain named"),
            (DirLookupComputer(name="GHOST"), "no computer named 'GHOST'"),
            (DirRegister(computer="GHOST", address="127.0.0.1:1"), "no computer"),
            (DirGroupMembers(group="Domain Admins"), "no group"),
            (DirGroupMembers(group="NOWHERE\\Terminal Services Computers"), "neither"),
        ]
        for request, text in cases:
            err = await refused(s, request)
            assert err.code is ErrorCode.NOT_FOUND, request
            assert text in err.message


async def test_domain_controllers_by_netbios_or_dns_name(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with directory(tmp_path) as (_, s):
        await s.request(DirRegister(computer="W2KDC1", address="127.0.0.1:4200"))
        for name in ("OLDCORP", "oldcorp.example"):
            got = await s.request(DirQueryDomainControllers(domain=name))
            assert isinstance(got, DirServers)
            assert got.distinguished_name == "OU=Domain Controllers,DC=oldcorp,DC=example"
            assert [(r.name, r.address, r.is_domain_controller) for r in got.servers] == [
                ("W2KDC1", "127.0.0.1:4200", True),
                ("W2KDC2", "", True),
            ]
        new = await s.request(DirQueryDomainControllers(domain="NEWCORP"))
        assert isinstance(new, DirServers)
        assert [r.name for r in new.servers] == ["W3KDC1"]


async def test_lookup_by_name_or_fqdn(tmp_path: Path, autojump_clock: object) -> None:
    async with directory(tmp_path) as (_, s):
        for name in ("W3KTS1", "w3kts1", "W3KTS1.oldcorp.example"):
            got = await s.request(DirLookupComputer(name=name))
            assert isinstance(got, DirComputer)
            assert got.computer == ComputerInfo(
                name="W3KTS1",
                domain="OLDCORP",
                site="HQ",
                is_domain_controller=False,
                os_version=2003,
            )
        # The right host name in the wrong domain is not that computer.
        err = await refused(s, DirLookupComputer(name="W3KTS1.newcorp.example"))
        assert err.code is ErrorCode.NOT_FOUND


async def test_group_members_both_spellings_and_default_empty(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with directory(tmp_path) as (_, s):
        for spelling in ("Terminal Services Computers", "Terminal Server Computers"):
            got = await s.request(DirGroupMembers(group=f"W3KLS1\\{spelling}"))
            assert isinstance(got, DirGroup)
            assert got.group == "W3KLS1\\Terminal Services Computers"
            assert got.members == ("W3KTS2", "W3KTS3", "W3KTS1")
        # The file spells W3KLS2's group the other way; it is the same group.
        got = await s.request(DirGroupMembers(group="w3kls2\\terminal services computers"))
        assert isinstance(got, DirGroup)
        assert got.members == ("W3KTS1",)
        # Domain-local group, by domain NetBIOS or DNS name.
        for scope in ("NEWCORP", "newcorp.example"):
            got = await s.request(DirGroupMembers(group=f"{scope}\\Terminal Server Computers"))
            assert isinstance(got, DirGroup)
            assert got.group == "NEWCORP\\Terminal Services Computers"
            assert got.members == ("W3KTS2",)
        # §7.3: on a computer with no members listed the group exists and is empty.
        got = await s.request(DirGroupMembers(group="W2KDC1\\Terminal Server Computers"))
        assert isinstance(got, DirGroup)
        assert got.members == ()
        # A unique bare name is enough; an ordinary group works too.
        got = await s.request(DirGroupMembers(group="Terminal Servers"))
        assert isinstance(got, DirGroup)
        assert got.group == "OLDCORP\\Terminal Servers"
        assert got.members == ("W2KTS1", "W2KTS2", "W3KTS1")


async def test_ambiguous_group_name_is_invalid(tmp_path: Path, autojump_clock: object) -> None:
    async with directory(tmp_path) as (_, s):
        # A refusal of a request's values: the directory says why and the conversation goes on.
        with pytest.raises(ServiceError) as info:
            await s.request(DirGroupMembers(group="Terminal Services Computers"))
        assert info.value.code is ErrorCode.INVALID_REQUEST
        assert "W3KLS1\\Terminal Services Computers" in info.value.message


async def test_register_rejects_a_bad_address(tmp_path: Path, autojump_clock: object) -> None:
    async with directory(tmp_path) as (service, s):
        with pytest.raises(ServiceError) as info:
            await s.request(DirRegister(computer="W3KLS1", address="not-an-address"))
        assert info.value.code is ErrorCode.INVALID_REQUEST
        assert "not an address" in info.value.message
        assert all(c.address == "" for c in service.computers() if c.name == "W3KLS1")


def dc_info(
    name: str,
    *,
    domain: str = "OLDCORP",
    site: str = "HQ",
    is_domain_controller: bool = True,
    os_version: int = 2000,
    address: str = "",
) -> ComputerInfo:
    return ComputerInfo(
        name=name,
        domain=domain,
        site=site,
        is_domain_controller=is_domain_controller,
        os_version=os_version,
        address=address,
    )


async def test_set_computer_kb823313_option_3(tmp_path: Path, autojump_clock: object) -> None:
    """Demote the 2000 license server's DC, upgrade it, add a 2003 DC (KB 823313)."""
    async with directory(tmp_path) as (_, s):
        ack = await s.request(
            DirSetComputer(
                computer=dc_info("W2KDC1", is_domain_controller=False), credential=SECRET
            )
        )
        assert isinstance(ack, DirAck)
        assert ack.detail == "W2KDC1: demoted to member server"
        ack = await s.request(
            DirSetComputer(
                computer=dc_info("w2kdc1", is_domain_controller=False, os_version=2003),
                credential=SECRET,
            )
        )
        assert isinstance(ack, DirAck)
        assert ack.detail == "W2KDC1: upgraded to Windows Server 2003"
        ack = await s.request(
            DirSetComputer(
                computer=dc_info("W3KDC2", os_version=2003, address="127.0.0.1:4300"),
                credential=SECRET,
            )
        )
        assert isinstance(ack, DirAck)
        assert ack.detail.startswith("W3KDC2 created: domain controller of OLDCORP")
        got = await s.request(DirQueryDomainControllers(domain="OLDCORP"))
        assert isinstance(got, DirServers)
        assert [(r.name, r.address) for r in got.servers] == [
            ("W2KDC2", ""),
            ("W3KDC2", "127.0.0.1:4300"),
        ]
        looked = await s.request(DirLookupComputer(name="W2KDC1"))
        assert isinstance(looked, DirComputer)
        assert (looked.computer.is_domain_controller, looked.computer.os_version) == (False, 2003)


@pytest.mark.parametrize(
    ("info", "text"),
    [
        (dc_info("W2KDC1", os_version=1999), "must be 2000 or 2003"),
        (dc_info("BAD NAME!"), "is not a computer name"),
        (dc_info("W2KDC9", domain="NEWCORP", site="BRANCH"), "functional level is 2003"),
        (dc_info("W3KLS1", domain="NEWCORP", site="BRANCH", os_version=2000), "downgraded"),
        (dc_info("W2KDC1", domain="NEWCORP", os_version=2003), "demote it before moving"),
        (
            dc_info("W3KDC1", domain="NEWCORP", is_domain_controller=False, os_version=2003),
            "last domain controller of NEWCORP",
        ),
    ],
)
async def test_set_computer_refuses_impossible_changes(
    tmp_path: Path, autojump_clock: object, info: ComputerInfo, text: str
) -> None:
    async with directory(tmp_path) as (service, s):
        before = service.computers()
        with pytest.raises(ServiceError) as caught:
            await s.request(DirSetComputer(computer=info, credential=SECRET))
        assert caught.value.code is ErrorCode.INVALID_REQUEST
        assert text in caught.value.message
        assert service.computers() == before
        # The conversation survives the refusal.
        found = await s.request(DirLookupComputer(name="W3KDC1"))
        assert isinstance(found, DirComputer)
        assert found.computer.name == "W3KDC1"


async def test_set_computer_unknown_domain_or_site(tmp_path: Path, autojump_clock: object) -> None:
    async with directory(tmp_path) as (_, s):
        for info in (dc_info("NEW1", domain="NOPE"), dc_info("NEW1", site="MARS")):
            err = await refused(s, DirSetComputer(computer=info, credential=SECRET))
            assert err.code is ErrorCode.NOT_FOUND


async def test_state_survives_a_restart(tmp_path: Path, autojump_clock: object) -> None:
    async with directory(tmp_path) as (_, s):
        await s.request(DirRegister(computer="W3KLS1", address="127.0.0.1:4100"))
        await s.request(DirPublish(site="BRANCH", computer="W3KLS1", credential=SECRET))
        await s.request(DirPublish(site="HQ", computer="W3KLS2", credential=SECRET))
        await s.request(DirPublish(site="HQ", computer="W2KDC1", credential=SECRET))
        await s.request(DirUnpublish(site="HQ", computer="W3KLS2", credential=SECRET))
        await s.request(
            DirSetComputer(computer=dc_info("W2KFS1", os_version=2003), credential=SECRET)
        )
    assert (tmp_path / DB_NAME).exists()
    async with directory(tmp_path) as (service, s):
        assert service.skipped == []
        got = await s.request(DirQueryEnterprise(site="BRANCH"))
        assert isinstance(got, DirServers)
        assert [(r.name, r.address) for r in got.servers] == [("W3KLS1", "127.0.0.1:4100")]
        hq = await s.request(DirQueryEnterprise(site="HQ"))
        assert isinstance(hq, DirServers)
        assert [r.name for r in hq.servers] == ["W2KDC1"]
        dcs = await s.request(DirQueryDomainControllers(domain="OLDCORP"))
        assert isinstance(dcs, DirServers)
        assert [r.name for r in dcs.servers] == ["W2KDC1", "W2KDC2", "W2KFS1"]


async def test_storage_failure_is_a_refusal_and_the_view_is_unchanged(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with directory(tmp_path) as (service, s):
        service.store.close()  # every later statement fails inside sqlite3
        err = await refused(s, DirPublish(site="BRANCH", computer="W3KLS1", credential=SECRET))
        assert err.code is ErrorCode.STORAGE_ERROR
        assert DB_NAME in err.message
        got = await s.request(DirQueryEnterprise(site="BRANCH"))
        assert isinstance(got, DirServers)
        assert got.servers == ()


async def test_garbage_frame_leaves_the_directory_serving(
    tmp_path: Path, autojump_clock: object
) -> None:
    clock = TrioClock(START)
    service = DirectoryService(load_topology(None), tmp_path, clock, SECRET)
    server = Server(service, key=Ed25519PrivateKey.generate(), clock=clock)
    try:
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server.serve)
            host, port = address.rsplit(":", 1)
            junk = await trio.open_tcp_stream(host, int(port))
            await junk.send_all(b"\x00\x00\x00\x10" + b"\xff" * 16)
            assert await junk.receive_some(65536)  # the server answers with an Error
            await junk.aclose()
            async with open_peer(
                address,
                conversation=Conversation.DIRECTORY,
                key=Ed25519PrivateKey.generate(),
                clock=clock,
                role=PeerRole.LICENSE_SERVER,
                name="W3KLS1",
                version=2003,
            ) as s:
                got = await s.request(DirQueryEnterprise(site="HQ"))
                assert isinstance(got, DirServers)
            server.shutdown()
    finally:
        service.close()
    assert server.counters.errors  # the bad frame was counted


def test_empty_credential_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ServiceError) as info:
        DirectoryService(load_topology(None), tmp_path, TrioClockStub(), "  ")
    assert info.value.code is ErrorCode.INVALID_REQUEST


class TrioClockStub:
    speed = 1.0

    def now(self) -> int:
        return START

    async def sleep_until(self, virtual_ms: int) -> None:
        raise AssertionError("not used")


def test_stored_state_that_no_longer_fits_the_topology_is_skipped(tmp_path: Path) -> None:
    clock = TrioClockStub()
    first = DirectoryService(load_topology(None), tmp_path, clock, SECRET)
    try:
        first.answer(DirPublish(site="BRANCH", computer="W3KLS1", credential=SECRET))
        first.answer(DirPublish(site="HQ", computer="W3KLS2", credential=SECRET))
        first.answer(DirRegister(computer="W3KTS4", address="127.0.0.1:4400"))
    finally:
        first.close()
    # The forest loses its BRANCH site and W3KTS4 (edited topology file).
    text = sample_topology_text()
    text = text.replace('[[site]]\nname = "BRANCH"\ndescription', "# removed =", 1)
    text = text.replace('site = "BRANCH"', 'site = "HQ"')
    text = text.replace('name = "W3KTS4"', 'name = "W3KTS5"')
    edited = DirectoryService(parse_topology(text), tmp_path, clock, SECRET)
    try:
        assert len(edited.skipped) == 2
        assert any("W3KLS1 published in site BRANCH" in s for s in edited.skipped)
        assert any("address of W3KTS4" in s for s in edited.skipped)
        hq = edited.answer(DirQueryEnterprise(site="HQ"))
        assert isinstance(hq, DirServers)
        assert [r.name for r in hq.servers] == ["W3KLS2"]
    finally:
        edited.close()
