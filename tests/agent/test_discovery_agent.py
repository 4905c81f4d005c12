"""Discovery order, the version skip, the member-server rule, failover, security group."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from trio.testing import MockClock
from tslic.client.agent.config import AgentConfig, NamedAddress
from tslic.client.agent.events import read_events
from tslic.client.agent.service import Agent
from tslic.client.agent.state import ServerEntry
from tslic.protocol.domain import (
    CalProduct,
    Connectivity,
    HowDiscovered,
    LicensingMode,
    WindowsVersion,
)
from tslic.protocol.errors import ErrorCode, ServiceError
from tslic.runtime.clock import TrioClock

from tests.agent import fakes

W2000, W2003 = WindowsVersion.W2000, WindowsVersion.W2003
CALS = {CalProduct.W2003_DEVICE_CAL: 10, CalProduct.W2000_TS_CAL: 10}


def ids(data: Path) -> list[int]:
    return [e.event_id for e in read_events(data / "events.jsonl")]


def entry(agent: Agent, name: str) -> ServerEntry:
    found = agent.state.entry(name)
    assert found is not None, f"{name} not in the discovery cache"
    return found


async def discovered(agent: Agent) -> ServerEntry:
    found = await agent.servers.discover()
    assert found is not None, "discovery chose no license server"
    return found


async def test_2003_skips_a_2000_server_named_first(
    tmp_path: Path, autojump_clock: MockClock, clock: TrioClock
) -> None:
    root = fakes.Root.make(clock)
    old = fakes.FakeLicenseServer(
        name="LS2000", version=W2000, clock=clock, root=root, available=CALS
    )
    new = fakes.FakeLicenseServer(
        name="LS2003", version=W2003, clock=clock, root=root, available=CALS
    )
    async with fakes.serve(old, clock) as s_old, fakes.serve(new, clock) as s_new:
        config = AgentConfig(
            name="TS1",
            version=W2003,
            registry_servers=(
                NamedAddress(name="LS2000", address=s_old.address),
                NamedAddress(name="LS2003", address=s_new.address),
            ),
            trust_root=root.cert,
        )
        async with fakes.run_agent(config, tmp_path / "a", clock) as (agent, address):
            outcome = await fakes.rdp(address, tmp_path / "pc", clock, trust_root=root.cert)
            assert outcome.status == "licensed"
            assert outcome.license is not None
            assert outcome.license.issuer == "LS2003"
            skipped = entry(agent, "LS2000")
            assert skipped.connectivity is Connectivity.LOWER_VERSION
            assert skipped.reachable
            assert not skipped.issuing
            used = entry(agent, "LS2003")
            assert used.connectivity is Connectivity.VALID_LS
            assert used.issuing
            assert used.how is HowDiscovered.REGISTRY
            assert agent.state.current == "LS2003"
            assert agent.state.cert_issuer == "LS2003"
    assert "RequestTermServCert" not in old.calls  # refused at Hello


async def test_2000_agent_uses_a_2000_server(
    tmp_path: Path, autojump_clock: MockClock, clock: TrioClock
) -> None:
    root = fakes.Root.make(clock)
    old = fakes.FakeLicenseServer(
        name="LS2000", version=W2000, clock=clock, root=root, available=CALS
    )
    async with fakes.serve(old, clock) as s_old:
        config = AgentConfig(
            name="TS0",
            version=W2000,
            default_license_server=NamedAddress(name="LS2000", address=s_old.address),
        )
        async with fakes.run_agent(config, tmp_path / "a", clock) as (agent, address):
            outcome = await fakes.rdp(address, tmp_path / "pc", clock)
            assert outcome.status == "licensed"
            assert outcome.license is not None
            assert outcome.license.issuer == "LS2000"
            assert entry(agent, "LS2000").how is HowDiscovered.REGISTRY


async def test_2003_domain_order_policy_registry_enterprise_domain(
    tmp_path: Path, autojump_clock: MockClock, clock: TrioClock
) -> None:
    root = fakes.Root.make(clock)
    servers = {
        n: fakes.FakeLicenseServer(name=n, version=W2003, clock=clock, root=root, available=CALS)
        for n in ("POL", "REG", "ENT", "DC1")
    }
    async with (
        fakes.serve(servers["POL"], clock) as pol,
        fakes.serve(servers["REG"], clock) as reg,
        fakes.serve(servers["ENT"], clock) as ent,
        fakes.serve(servers["DC1"], clock) as dc1,
    ):
        directory = fakes.FakeDirectory(
            enterprise={"SITE1": [fakes.ref("ENT", ent.address)]},
            controllers={"CORP": [fakes.ref("DC1", dc1.address, dc=True)]},
        )
        async with fakes.serve(directory, clock) as d:
            config = AgentConfig(
                name="TS1",
                version=W2003,
                domain="CORP",
                site="SITE1",
                directory=d.address,
                policy_servers=(NamedAddress(name="POL", address=pol.address),),
                registry_servers=(NamedAddress(name="REG", address=reg.address),),
            )
            agent = Agent(config, tmp_path / "a", clock)
            assert (await discovered(agent)).name == "POL"
            assert entry(agent, "POL").how is HowDiscovered.POLICY
            # Discovery stops at the first server found: the others are not probed yet.
            for name, how in (
                ("REG", HowDiscovered.REGISTRY),
                ("ENT", HowDiscovered.ENTERPRISE),
                ("DC1", HowDiscovered.DOMAIN),
            ):
                assert entry(agent, name).how is how
                assert entry(agent, name).connectivity is Connectivity.UNKNOWN
            order = [s.name for s in agent.state.servers]
            assert order == ["POL", "REG", "ENT", "DC1"]
            # Take them away one by one: each time the next in the documented order is used.
            for stopped, expected in ((pol, "REG"), (reg, "ENT"), (ent, "DC1")):
                stopped.stop()
                assert (await discovered(agent)).name == expected
            dc1.stop()
            assert await agent.servers.discover() is None
            assert all(s.connectivity is Connectivity.NOT_CONNECTABLE for s in agent.state.servers)


async def test_2000_domain_prefers_domain_controllers_over_enterprise(
    tmp_path: Path, autojump_clock: MockClock, clock: TrioClock
) -> None:
    root = fakes.Root.make(clock)
    ent_ls = fakes.FakeLicenseServer(name="ENT", version=W2003, clock=clock, root=root)
    dc_ls = fakes.FakeLicenseServer(name="DC1", version=W2000, clock=clock, root=root)
    async with fakes.serve(ent_ls, clock) as ent, fakes.serve(dc_ls, clock) as dc1:
        directory = fakes.FakeDirectory(
            enterprise={"SITE1": [fakes.ref("ENT", ent.address)]},
            controllers={"CORP": [fakes.ref("DC1", dc1.address, dc=True)]},
        )
        async with fakes.serve(directory, clock) as d:
            config = AgentConfig(
                name="TS0", version=W2000, domain="CORP", site="SITE1", directory=d.address
            )
            agent = Agent(config, tmp_path / "a", clock)
            assert (await discovered(agent)).name == "DC1"
            assert [s.name for s in agent.state.servers] == ["DC1", "ENT"]
            assert entry(agent, "ENT").how is HowDiscovered.ENTERPRISE


async def test_member_server_domain_ls_found_only_through_registry(
    tmp_path: Path, autojump_clock: MockClock, clock: TrioClock
) -> None:
    root = fakes.Root.make(clock)
    member = fakes.FakeLicenseServer(name="MEMBER", version=W2003, clock=clock, root=root)
    async with fakes.serve(member, clock) as m:
        # The domain controller runs no license server (no address); MEMBER is a member server
        # known to the directory but neither a DC nor published for the site (KB823313).
        directory = fakes.FakeDirectory(
            controllers={"CORP": [fakes.ref("DC1", "", dc=True)]},
            computers={"MEMBER": m.address},
        )
        async with fakes.serve(directory, clock) as d:
            base = AgentConfig(
                name="TS1",
                version=W2003,
                domain="CORP",
                site="S",
                directory=d.address,
            )
            agent = Agent(base, tmp_path / "a", clock)
            assert await agent.servers.discover() is None
            assert agent.state.servers == []
            # The LicenseServers key names it (address resolved through the directory).
            config = replace(base, registry_servers=(NamedAddress(name="MEMBER"),))
            agent = Agent(config, tmp_path / "b", clock)
            chosen = await agent.servers.discover()
            assert chosen is not None
            assert chosen.name == "MEMBER"
            assert chosen.how is HowDiscovered.REGISTRY
            assert chosen.address == m.address
            assert "DirLookupComputer" in directory.queries


async def test_workgroup_broadcast_answers(
    tmp_path: Path, autojump_clock: MockClock, clock: TrioClock
) -> None:
    ls = fakes.FakeLicenseServer(name="WGLS", version=W2003, clock=clock, root=None)
    async with fakes.serve(ls, clock) as s:
        config = AgentConfig(
            name="TS1",
            version=W2003,
            workgroup="WORKGROUP",
            subnet_servers=(NamedAddress(name="WGLS", address=s.address),),
        )
        agent = Agent(config, tmp_path / "a", clock)
        chosen = await agent.servers.discover()
        assert chosen is not None
        assert chosen.how is HowDiscovered.WORKGROUP


async def test_failover_when_the_server_in_use_stops(
    tmp_path: Path, autojump_clock: MockClock, clock: TrioClock
) -> None:
    root = fakes.Root.make(clock)
    first = fakes.FakeLicenseServer(name="LSA", version=W2003, clock=clock, root=root)
    second = fakes.FakeLicenseServer(name="LSB", version=W2003, clock=clock, root=root)
    async with fakes.serve(first, clock) as a, fakes.serve(second, clock) as b:
        config = AgentConfig(
            name="TS1",
            version=W2003,
            registry_servers=(
                NamedAddress(name="LSA", address=a.address),
                NamedAddress(name="LSB", address=b.address),
            ),
        )
        async with fakes.run_agent(config, tmp_path / "a", clock) as (agent, address):
            one = await fakes.rdp(address, tmp_path / "pc1", clock, device="PC1")
            assert one.license is not None
            assert one.license.issuer == "LSA"
            a.stop()  # the server in use stops answering
            two = await fakes.rdp(address, tmp_path / "pc2", clock, device="PC2")
            assert two.status == "licensed"
            assert two.license is not None
            assert two.license.issuer == "LSB"
            assert entry(agent, "LSA").connectivity is Connectivity.NOT_CONNECTABLE
            assert agent.state.current == "LSB"


async def test_liveness_check_fails_over_in_the_background(
    tmp_path: Path, autojump_clock: MockClock, clock: TrioClock
) -> None:
    first = fakes.FakeLicenseServer(name="LSA", version=W2003, clock=clock, root=None)
    second = fakes.FakeLicenseServer(name="LSB", version=W2003, clock=clock, root=None)
    async with fakes.serve(first, clock) as a, fakes.serve(second, clock) as b:
        config = AgentConfig(
            name="TS1",
            version=W2003,
            registry_servers=(
                NamedAddress(name="LSA", address=a.address),
                NamedAddress(name="LSB", address=b.address),
            ),
        )
        async with fakes.run_agent(config, tmp_path / "a", clock) as (agent, _):
            await clock.sleep_until(clock.now() + 60_000)  # the start-up discovery has run
            assert agent.state.current == "LSA"
            a.stop()
            # Liveness check every 2 h (virtual), then rediscovery; 3 virtual hours suffice.
            await clock.sleep_until(clock.now() + 3 * 3_600_000)
            assert agent.state.current == "LSB"


@pytest.mark.parametrize("where", ["hello", "cert"])
async def test_security_group_refusal_logs_1043(
    tmp_path: Path, autojump_clock: MockClock, clock: TrioClock, where: str
) -> None:
    root = fakes.Root.make(clock)
    ls = fakes.FakeLicenseServer(
        name="LSSEC",
        version=W2003,
        clock=clock,
        root=root,
        security_group={"OTHER-TS"},
        group_checked_at=where,
    )
    async with fakes.serve(ls, clock) as s:
        config = AgentConfig(
            name="TS1",
            version=W2003,
            registry_servers=(NamedAddress(name="LSSEC", address=s.address),),
        )
        agent = Agent(config, tmp_path / "a", clock)
        assert await agent.servers.discover() is None
        refused = entry(agent, "LSSEC")
        assert refused.connectivity is Connectivity.NOT_IN_TSCGROUP
        assert refused.reachable
        assert not refused.issuing
        events = read_events(tmp_path / "a" / "events.jsonl")
        assert [e.event_id for e in events] == [1043]
        assert "Terminal Server Computers" in events[0].message
        assert "(LSSEC)" in events[0].message
        assert agent.state.cert_chain() == []


def test_per_user_on_2000_is_refused_at_startup() -> None:
    with pytest.raises(ServiceError) as info:
        AgentConfig(name="TS0", version=W2000, mode=LicensingMode.PER_USER)
    assert info.value.code is ErrorCode.MODE_NOT_SUPPORTED
    assert "Windows Server 2003" in info.value.message
