"""Who may ask what: version rules, certificates, security group, ownership, hardware ids."""

from __future__ import annotations

from collections.abc import Awaitable

import pytest
import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from trio.testing import MockClock
from tslic.protocol.domain import CalProduct, LicenseKind, WindowsVersion
from tslic.protocol.errors import ErrorCode, ServiceError
from tslic.protocol.messages.admin import AdminSetPolicy, AdminStatus
from tslic.protocol.messages.licensing import (
    MarkLicense,
    RequestTermServCert,
    ReturnLicense,
)
from tslic.protocol.pki import cert_from_der, identity_of, raw_public_key
from tslic.server.license_server.config import Config
from tslic.server.license_server.daemon import LicenseServer

from tests.license_server import harness as h


async def refused(coro: Awaitable[object], code: ErrorCode) -> ServiceError:
    with pytest.raises(ServiceError) as info:
        await coro
    assert info.value.code is code, info.value
    return info.value


async def test_2000_license_server_refuses_2003_terminal_server_with_lower_version(
    lab: h.Lab, autojump_clock: MockClock
) -> None:
    ls = await lab.start_ls(lab.config("LS2K", 2000))
    ts = h.TerminalServerPeer(lab, "TS3", 2003)
    err = await refused(ts.enrol(ls), ErrorCode.LOWER_VERSION)
    assert "Windows Server 2003 terminal servers require a Windows Server 2003" in err.message
    # A 2000 terminal server is served.
    old = h.TerminalServerPeer(lab, "TS2", 2000)
    await old.enrol(ls)
    async with old.connect(ls) as s:
        got = await h.Device("PC").connect(s)
    assert got.kind is LicenseKind.TEMPORARY


async def test_2003_license_server_serves_2000_and_2003_terminal_servers(
    lab: h.Lab, autojump_clock: MockClock
) -> None:
    ls = await lab.start_ls(lab.config("LS3", 2003))
    for version in (2000, 2003):
        ts = h.TerminalServerPeer(lab, f"TS{version}", version)
        await ts.enrol(ls)
        leaf = identity_of(cert_from_der(ts.chain[-1]))
        assert (leaf.role, leaf.version, leaf.name) == ("terminal-server", version, f"TS{version}")
        assert leaf.temporary  # the server is not activated yet: its chain is temporary
        async with ts.connect(ls) as s:
            assert (await h.Device("PC").connect(s)).kind is LicenseKind.TEMPORARY


async def test_license_requests_need_the_certificate_this_server_issued(
    lab: h.Lab, autojump_clock: MockClock
) -> None:
    ls = await lab.start_ls(lab.config("LS3", 2003))
    ts = h.TerminalServerPeer(lab, "TS1", 2003)
    async with ts.connect(ls) as s:
        await refused(h.Device("PC").connect(s), ErrorCode.ACCESS_DENIED)
    # A certificate from another license server does not count here.
    other = await lab.start_ls(lab.config("LSX", 2003))
    await ts.enrol(other)
    async with ts.connect(ls) as s:
        await refused(h.Device("PC").connect(s), ErrorCode.ACCESS_DENIED)
    # Someone else's chain, presented with another key, is refused at the Hello (SEC-7).
    thief = h.TerminalServerPeer(lab, "TS1", 2003)
    thief.chain = ts.chain
    with pytest.raises(ServiceError) as info:
        async with thief.connect(other):
            pass
    assert info.value.code is ErrorCode.UNTRUSTED_CERTIFICATE
    thief.chain = (ts.chain[0],) * 4  # longer than the hierarchy (LIMIT-8)
    with pytest.raises(ServiceError) as info:
        async with thief.connect(other):
            pass
    assert info.value.code is ErrorCode.UNTRUSTED_CERTIFICATE


async def test_certificate_must_be_for_the_envelope_key(
    lab: h.Lab, autojump_clock: MockClock
) -> None:
    ls = await lab.start_ls(lab.config("LS3", 2003))
    ts = h.TerminalServerPeer(lab, "TS1", 2003)
    async with ts.connect(ls, chain=False) as s:
        request = RequestTermServCert(
            name="TS1",
            domain="D",
            site="S",
            version=WindowsVersion.W2003,
            public_key=raw_public_key(Ed25519PrivateKey.generate()),
        )
        await refused(s.request(request), ErrorCode.ACCESS_DENIED)


async def restart(lab: h.Lab, ls: LicenseServer, cfg: Config) -> LicenseServer:
    """Stop the license server gracefully and start it again on the same data."""
    ls.shutdown()
    await trio.sleep(10)
    return await lab.start_ls(cfg)


async def test_security_group_refuses_non_members_with_event_1043_text(
    lab: h.Lab, autojump_clock: MockClock
) -> None:
    """SEC-1, and SEC-14: a membership change takes effect when the service restarts."""
    cfg = lab.config("LS3", 2003, security_group=True)
    ls = await lab.start_ls(cfg)
    outsider = h.TerminalServerPeer(lab, "TS9", 2003)
    err = await refused(outsider.enrol(ls), ErrorCode.NOT_IN_SECURITY_GROUP)
    assert '"Terminal Server Computers" group on License Server (LS3)' in err.message
    async with lab.admin(ls) as adm:
        reply = await adm.request(AdminSetPolicy(add_members=("ts9",)))
    assert isinstance(reply, AdminStatus)
    assert reply.status.security_group_pending == ("TS9",)
    assert reply.status.security_group_members == ()  # enforced: as read at start
    await refused(outsider.enrol(ls), ErrorCode.NOT_IN_SECURITY_GROUP)  # not before a restart
    ls = await restart(lab, ls, cfg)
    await outsider.enrol(ls)  # member now (names are case-insensitive)
    async with lab.admin(ls) as adm:
        reply = await adm.request(AdminSetPolicy(remove_members=("TS9",)))
    assert isinstance(reply, AdminStatus)
    assert (reply.status.security_group_members, reply.status.security_group_pending) == (
        ("TS9",),
        (),
    )
    async with outsider.connect(ls) as s:  # still a member until the restart
        assert (await h.Device("PC").connect(s)).kind is LicenseKind.TEMPORARY
    ls = await restart(lab, ls, cfg)
    async with outsider.connect(ls) as s:  # licenses are refused too once removed
        await refused(h.Device("PC2").connect(s), ErrorCode.NOT_IN_SECURITY_GROUP)
    async with lab.admin(ls) as adm:
        await adm.request(AdminSetPolicy(security_group_enabled=False))
    async with outsider.connect(ls) as s:
        assert (await h.Device("PC").connect(s)).kind is LicenseKind.TEMPORARY


async def test_mark_and_return_only_own_licenses_and_devices(
    lab: h.Lab, autojump_clock: MockClock
) -> None:
    ls = await lab.start_ls(lab.config("LS3", 2003))
    ts1, ts2 = h.TerminalServerPeer(lab, "TS1", 2003), h.TerminalServerPeer(lab, "TS2", 2003)
    await ts1.enrol(ls)
    await ts2.enrol(ls)
    dev = h.Device("PC")
    async with ts1.connect(ls) as s:
        await dev.connect(s)
        wrong_hwid = raw_public_key(Ed25519PrivateKey.generate())
        await refused(
            s.request(MarkLicense(license_id=dev.license_id, hwid=wrong_hwid)),
            ErrorCode.HWID_MISMATCH,
        )
        await refused(
            s.request(MarkLicense(license_id=9999, hwid=dev.hwid)), ErrorCode.LICENSE_NOT_FOUND
        )
    async with ts2.connect(ls) as s:
        for msg in (MarkLicense, ReturnLicense):
            await refused(
                s.request(msg(license_id=dev.license_id, hwid=dev.hwid)),
                ErrorCode.WRONG_TERMINAL_SERVER,
            )


async def test_presented_license_of_another_device_is_hwid_mismatch(
    lab: h.Lab, autojump_clock: MockClock
) -> None:
    ls = await lab.start_ls(lab.config("LS3", 2003))
    ts = h.TerminalServerPeer(lab, "TS1", 2003)
    await ts.enrol(ls)
    owner, copier = h.Device("PC1"), h.Device("PC2")
    async with ts.connect(ls) as s:
        await owner.connect(s)
        copier.license = owner.license
        await refused(copier.connect(s), ErrorCode.HWID_MISMATCH)
        copier.license = b"not a license"
        await refused(copier.connect(s), ErrorCode.INVALID_LICENSE)


async def test_only_terminal_servers_may_open_the_licensing_conversation(
    lab: h.Lab, autojump_clock: MockClock
) -> None:
    from tslic.protocol import Conversation
    from tslic.protocol.domain import PeerRole
    from tslic.runtime.peer import open_peer

    ls = await lab.start_ls(lab.config("LS3", 2003))
    with pytest.raises(ServiceError) as info:
        async with open_peer(
            ls.address,
            conversation=Conversation.LICENSING,
            key=Ed25519PrivateKey.generate(),
            clock=lab.clock,
            role=PeerRole.RDP_CLIENT,
            name="PC",
        ):
            pass
    assert info.value.code is ErrorCode.ACCESS_DENIED


async def test_metrics_count_issued_licenses_and_errors(
    lab: h.Lab, autojump_clock: MockClock
) -> None:
    ls = await lab.start_ls(lab.config("LS3", 2003))
    ts = h.TerminalServerPeer(lab, "TS1", 2003)
    async with ts.connect(ls) as s:
        await refused(h.Device("PC").connect(s), ErrorCode.ACCESS_DENIED)
    await ts.enrol(ls)
    async with ts.connect(ls) as s:
        await h.Device("PC").connect(s)
    address = await lab.nursery.start(ls.metrics.serve, "127.0.0.1", 0)
    host, port = address.rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    await stream.send_all(b"GET /metrics HTTP/1.0\r\n\r\n")
    data = b""
    while chunk := await stream.receive_some(65536):
        data += chunk
    await stream.aclose()
    text = data.decode()
    assert text.startswith("HTTP/1.0 200 OK")
    product = CalProduct.W2003_DEVICE_CAL.value
    assert f'tslic_licenses_issued_total{{kind="temporary",product="{product}"}} 1.0' in text
    assert 'tslic_errors_total{code="ACCESS_DENIED"} 1.0' in text
    assert "tslic_request_seconds_bucket" in text


async def test_security_group_read_from_the_directory_and_enterprise_publishing(
    lab: h.Lab, autojump_clock: MockClock
) -> None:
    from tslic.protocol.domain import ServerRole
    from tslic.protocol.messages.directory import DirQueryEnterprise, DirServers
    from tslic.runtime.service import Server
    from tslic.server.directory.service import DirectoryService
    from tslic.server.directory.topology import load_topology

    directory = DirectoryService(load_topology(None), lab.tmp / "dir", lab.clock, "secret")
    dir_server = Server(directory, key=Ed25519PrivateKey.generate(), clock=lab.clock)
    dir_address = await lab.nursery.start(dir_server.serve)
    # W3KLS1's local "Terminal Services Computers" group holds W3KTS1-3 in the sample forest.
    cfg = lab.config(
        "W3KLS1", 2003, directory=dir_address, security_group=True,
        role=ServerRole.ENTERPRISE, site="HQ",
        enterprise_credential="secret", domain="NEWCORP",
    )  # fmt: skip
    ls = await lab.start_ls(cfg)
    assert ls.directory_members >= {"W3KTS1", "W3KTS2", "W3KTS3"}
    await h.TerminalServerPeer(lab, "W3KTS2", 2003).enrol(ls)
    await refused(
        h.TerminalServerPeer(lab, "W3KTS9", 2003).enrol(ls), ErrorCode.NOT_IN_SECURITY_GROUP
    )
    from tslic.protocol import Conversation
    from tslic.protocol.domain import PeerRole
    from tslic.runtime.peer import open_peer

    async with open_peer(
        dir_address, conversation=Conversation.DIRECTORY, key=Ed25519PrivateKey.generate(),
        clock=lab.clock, role=PeerRole.TERMINAL_SERVER, name="W3KTS1", version=2003,
    ) as s:  # fmt: skip
        found = await s.request(DirQueryEnterprise(site="HQ"))
    assert isinstance(found, DirServers)
    assert ("W3KLS1", ls.address) in {(r.name, r.address) for r in found.servers}
    dir_server.shutdown()
