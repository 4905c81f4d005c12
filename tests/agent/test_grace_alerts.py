"""Grace period paths, renewal, echo, each ErrorAlert and each event id, on the virtual clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from trio.testing import MockClock
from tslic.client.agent.config import AgentConfig, NamedAddress
from tslic.client.agent.events import read_events
from tslic.client.agent.service import Agent
from tslic.client.agent.status import status_document
from tslic.client.rdp import texts
from tslic.protocol.clock import MS_PER_DAY
from tslic.protocol.domain import CalProduct, LicensingMode, WindowsVersion
from tslic.protocol.grace import DiscoveryIntervals
from tslic.protocol.policy import GraceEnd
from tslic.runtime.clock import TrioClock, WallClock

from tests.agent import fakes

W2000, W2003 = WindowsVersion.W2000, WindowsVersion.W2003
# Long intervals keep the number of background wake-ups small over months of virtual time.
SLOW = DiscoveryIntervals(
    retry_when_none_found=timedelta(days=1),
    rediscovery=timedelta(days=30),
    liveness_check=timedelta(days=30),
)


def ids(data: Path) -> list[int]:
    return [e.event_id for e in read_events(data / "events.jsonl")]


async def days(clock: TrioClock, n: float) -> None:
    await clock.sleep_until(clock.now() + int(n * MS_PER_DAY))


async def test_grace_2003_valid_client_1009_1008_then_no_license_server(
    tmp_path: Path, autojump_clock: MockClock, clock: TrioClock
) -> None:
    config = AgentConfig(name="TS1", version=W2003, domain="CORP", intervals=SLOW)
    data = tmp_path / "a"
    async with fakes.run_agent(config, data, clock) as (agent, address):
        first = await fakes.rdp(address, tmp_path / "pc", clock)
        assert first.status == "valid-client"  # STATUS_VALID_CLIENT + ST_NO_TRANSITION
        assert first.license is None
        assert first.logged_on
        assert status_document(data, WallClock())["grace"]["started"] == "2003-06-02"
        assert agent.state.grace.started_at is not None
        assert agent.state.grace.days_left(agent.state.grace.started_at) == 120
        await days(clock, 104)
        assert ids(data) == []
        await days(clock, 2)  # fewer than 15 days left
        assert ids(data) == [1009]
        assert agent.licensing.in_grace()
        again = await fakes.rdp(address, tmp_path / "pc", clock)
        assert again.status == "valid-client"
        await days(clock, 15)
        assert 1008 in ids(data)
        refused = await fakes.rdp(address, tmp_path / "pc", clock)
        assert refused.status == "disconnected"
        assert refused.alert == "ERR_NO_LICENSE_SERVER/ST_TOTAL_ABORT"
        assert refused.disconnect_reason == "LICENSE_NO_LICENSE_SERVER"
        assert refused.text == texts.NO_LICENSE_SERVER
        events = read_events(data / "events.jsonl")
        assert [e.event_id for e in events] == [1009, 1008, 1026]
        assert "CORP domain" in events[2].message
        assert "120 days" in events[1].message
        assert agent.state.counts["valid_client"] == 2
        assert agent.state.counts["refused"] == 1


async def test_grace_2000_is_90_days_and_workgroup_logs_1027(
    tmp_path: Path, autojump_clock: MockClock, clock: TrioClock
) -> None:
    config = AgentConfig(name="TS0", version=W2000, workgroup="WG", intervals=SLOW)
    data = tmp_path / "a"
    async with fakes.run_agent(config, data, clock) as (_agent, address):
        assert (await fakes.rdp(address, tmp_path / "pc", clock)).status == "valid-client"
        await days(clock, 89.5)
        assert (await fakes.rdp(address, tmp_path / "pc", clock)).status == "valid-client"
        await days(clock, 1)
        refused = await fakes.rdp(address, tmp_path / "pc", clock)
        assert refused.disconnect_reason == "LICENSE_NO_LICENSE_SERVER"
        events = read_events(data / "events.jsonl")
        assert [e.event_id for e in events] == [1009, 1008, 1027]
        assert "WG workgroup" in events[2].message
        assert "90 days" in events[1].message


async def test_no_domain_no_workgroup_logs_1010(
    tmp_path: Path, autojump_clock: MockClock, clock: TrioClock
) -> None:
    config = AgentConfig(name="TS1", version=W2003, intervals=SLOW)
    data = tmp_path / "a"
    async with fakes.run_agent(config, data, clock) as (_, address):
        await fakes.rdp(address, tmp_path / "pc", clock)
        await days(clock, 121)
        refused = await fakes.rdp(address, tmp_path / "pc", clock)
        assert refused.status == "disconnected"
        assert ids(data) == [1009, 1008, 1010]


async def test_grace_ends_at_first_license_server_by_switch(
    tmp_path: Path, autojump_clock: MockClock, clock: TrioClock
) -> None:
    ls = fakes.FakeLicenseServer(name="LS", version=W2003, clock=clock, root=None)
    async with fakes.serve(ls, clock) as s:
        base = AgentConfig(
            name="TS1",
            version=W2003,
            intervals=SLOW,
            registry_servers=(NamedAddress(name="LS", address=s.address),),
        )
        switch = replace(base, grace_end=GraceEnd.FIRST_LICENSE_SERVER)
        agent = Agent(switch, tmp_path / "a", clock)
        await agent.servers.discover()
        assert agent.state.grace.end_reason is GraceEnd.FIRST_LICENSE_SERVER
        assert not agent.licensing.in_grace()  # KB813052: no grace at all
        default = Agent(base, tmp_path / "b", clock)
        await default.servers.discover()
        assert default.state.grace.ended_at is None
        assert default.licensing.in_grace()


async def test_expired_temporary_disconnects_with_1011(
    tmp_path: Path, autojump_clock: MockClock, clock: TrioClock
) -> None:
    ls = fakes.FakeLicenseServer(name="LS", version=W2003, clock=clock, root=None)
    async with fakes.serve(ls, clock) as s:
        config = AgentConfig(
            name="TS1",
            version=W2003,
            intervals=SLOW,
            registry_servers=(NamedAddress(name="LS", address=s.address),),
        )
        data = tmp_path / "a"
        async with fakes.run_agent(config, data, clock) as (agent, address):
            first = await fakes.rdp(address, tmp_path / "pc", clock, password_ok=False)
            assert first.license is not None
            assert first.license.kind == "temporary"
            assert not first.logged_on  # the temporary is never validated
            assert agent.state.counts.get("marked_validated", 0) == 0
            await days(clock, 80)
            warned = await fakes.rdp(address, tmp_path / "pc", clock, password_ok=False)
            assert warned.status == "logon-failed"  # licensed, but the password is wrong
            assert warned.presented_stored
            assert texts.TEMPORARY_EXPIRING.format(days=texts.days(10)) in warned.warnings
            await days(clock, 41)  # temporary expired (90 d) and grace over (120 d)
            refused = await fakes.rdp(address, tmp_path / "pc", clock)
            assert refused.status == "disconnected"
            assert refused.alert == "ERR_NO_LICENSE/ST_TOTAL_ABORT"
            assert refused.disconnect_reason == "LICENSE_NO_LICENSE"
            events = read_events(data / "events.jsonl")
            assert events[-1].event_id == 1011
            assert "PC1" in events[-1].message


async def test_renewal_echo_and_1028(
    tmp_path: Path, autojump_clock: MockClock, clock: TrioClock
) -> None:
    root = fakes.Root.make(clock)
    ls = fakes.FakeLicenseServer(
        name="LS",
        version=W2003,
        clock=clock,
        root=root,
        available={CalProduct.W2003_DEVICE_CAL: 3},
        lease_days=60,
    )
    async with fakes.serve(ls, clock) as s:
        config = AgentConfig(
            name="TS1",
            version=W2003,
            intervals=SLOW,
            trust_root=root.cert,
            registry_servers=(NamedAddress(name="LS", address=s.address),),
        )
        data = tmp_path / "a"
        store = tmp_path / "pc"
        async with fakes.run_agent(config, data, clock) as (agent, address):
            temporary = (await fakes.rdp(address, store, clock)).license
            assert temporary is not None
            assert temporary.kind == "temporary"
            permanent = (await fakes.rdp(address, store, clock)).license
            assert permanent is not None
            assert permanent.kind == "permanent"
            await days(clock, 50)  # 10 days left: outside the 7-day window
            kept = await fakes.rdp(address, store, clock)
            assert kept.received == ""
            assert kept.license is not None
            assert kept.license.license_id == permanent.license_id
            await days(clock, 5)  # 5 days left: renew
            renewed = await fakes.rdp(address, store, clock)
            assert renewed.received == "upgrade"
            assert renewed.license is not None
            assert renewed.license.license_id != permanent.license_id
            assert renewed.license.expires_at > permanent.expires_at
            assert agent.state.counts["renewed"] == 1
            await days(clock, 55)  # 5 days left again, and the license server goes away
            s.stop()
            echoed = await fakes.rdp(address, store, clock)
            assert echoed.status == "licensed"
            assert echoed.received == "upgrade"  # RDPELE 3.2.5.5: the old license sent back
            assert echoed.license is not None
            assert echoed.license.license_id == renewed.license.license_id
            assert agent.state.counts["echoed"] == 1
            await days(clock, 6)  # expired, nobody can renew it
            refused = await fakes.rdp(address, store, clock)
            assert refused.status == "disconnected"
            assert refused.disconnect_reason == "LICENSE_CANT_UPGRADE_LICENSE"
            assert refused.text == texts.CANT_UPGRADE
            assert 1028 in ids(data)


async def test_new_client_refused_by_license_server_logs_1004(
    tmp_path: Path, autojump_clock: MockClock, clock: TrioClock
) -> None:
    ls = fakes.FakeLicenseServer(name="LS", version=W2003, clock=clock, root=None, refuse_new=True)
    async with fakes.serve(ls, clock) as s:
        config = AgentConfig(
            name="TS1",
            version=W2003,
            intervals=SLOW,
            grace_end=GraceEnd.FIRST_LICENSE_SERVER,
            registry_servers=(NamedAddress(name="LS", address=s.address),),
        )
        data = tmp_path / "a"
        async with fakes.run_agent(config, data, clock) as (_, address):
            refused = await fakes.rdp(address, tmp_path / "pc", clock)
            assert refused.alert == "ERR_NO_LICENSE/ST_TOTAL_ABORT"
            assert refused.disconnect_reason == "LICENSE_NO_LICENSE"
            events = read_events(data / "events.jsonl")
            assert [e.event_id for e in events] == [1004]
            assert "no licenses of any kind" in events[0].message


async def test_client_refuses_an_untrusted_server_certificate(
    tmp_path: Path, autojump_clock: MockClock, clock: TrioClock
) -> None:
    root = fakes.Root.make(clock)
    other = fakes.Root.make(clock)
    ls = fakes.FakeLicenseServer(name="LS", version=W2003, clock=clock, root=root)
    async with fakes.serve(ls, clock) as s:
        config = AgentConfig(
            name="TS1",
            version=W2003,
            intervals=SLOW,
            registry_servers=(NamedAddress(name="LS", address=s.address),),
        )
        async with fakes.run_agent(config, tmp_path / "a", clock) as (agent, address):
            await agent.servers.discover()
            assert agent.state.cert_chain()  # the TS holds a certificate from LS
            outcome = await fakes.rdp(address, tmp_path / "pc", clock, trust_root=other.cert)
            assert outcome.status == "aborted"
            assert "certificate is not valid" in outcome.text
            assert not (tmp_path / "pc" / "Store").exists()
            ok = await fakes.rdp(address, tmp_path / "pc2", clock, trust_root=root.cert)
            assert ok.status == "licensed"


async def test_per_user_2003_user_cals_no_upgrade_and_1044(
    tmp_path: Path, autojump_clock: MockClock, clock: TrioClock
) -> None:
    root = fakes.Root.make(clock)
    no_user_cals = fakes.FakeLicenseServer(name="LS", version=W2003, clock=clock, root=root)
    async with fakes.serve(no_user_cals, clock) as s:
        config = AgentConfig(
            name="TS1",
            version=W2003,
            mode=LicensingMode.PER_USER,
            intervals=SLOW,
            registry_servers=(NamedAddress(name="LS", address=s.address),),
        )
        data = tmp_path / "a"
        async with fakes.run_agent(config, data, clock) as (_, address):
            first = await fakes.rdp(address, tmp_path / "pc", clock)
            assert first.license is not None
            assert first.license.kind == "temporary"
            second = await fakes.rdp(address, tmp_path / "pc", clock)
            assert second.received == "upgrade"  # the temporary, sent back unchanged
            assert second.license is not None
            assert second.license.license_id == first.license.license_id
            assert "MarkLicense" not in no_user_cals.calls
            assert "UpgradeLicenseRequest" not in no_user_cals.calls
        events = read_events(data / "events.jsonl")
        assert [e.event_id for e in events] == [1044]
        assert "Per User" in events[0].message
        # A restart does not log the conversion again.
        Agent(config, data, clock)
        assert ids(data) == [1044]
    user_cals = fakes.FakeLicenseServer(
        name="LSU", version=W2003, clock=clock, root=root, available={CalProduct.W2003_USER_CAL: 1}
    )
    async with fakes.serve(user_cals, clock) as s:
        config = AgentConfig(
            name="TS2",
            version=W2003,
            mode=LicensingMode.PER_USER,
            intervals=SLOW,
            registry_servers=(NamedAddress(name="LSU", address=s.address),),
        )
        async with fakes.run_agent(config, tmp_path / "b", clock) as (_, address):
            for n in (1, 2):
                got = await fakes.rdp(address, tmp_path / f"u{n}", clock, device=f"PC{n}")
                assert got.license is not None
                assert got.license.kind == "permanent"
                assert got.license.product == "w2003-user-cal"
            assert user_cals.available[CalProduct.W2003_USER_CAL] == 1  # not decremented


async def test_restart_keeps_certificate_grace_and_cache(
    tmp_path: Path, autojump_clock: MockClock, clock: TrioClock
) -> None:
    ls = fakes.FakeLicenseServer(name="LS", version=W2003, clock=clock, root=None)
    async with fakes.serve(ls, clock) as s:
        config = AgentConfig(
            name="TS1",
            version=W2003,
            intervals=SLOW,
            registry_servers=(NamedAddress(name="LS", address=s.address),),
        )
        data = tmp_path / "a"
        async with fakes.run_agent(config, data, clock) as (agent, address):
            await fakes.rdp(address, tmp_path / "pc", clock)
            started = agent.state.grace.started_at
            chain = agent.state.cert_chain()
        again = Agent(config, data, clock)
        assert again.state.grace.started_at == started
        assert again.state.cert_chain() == chain
        assert again.state.current == "LS"
        assert again.state.counts["temporary_issued"] == 1
        doc = status_document(data, WallClock())
        assert doc["servers"][0]["connectivity"] == "VALID_LS"
        assert doc["servers"][0]["connectivity_value"] == 11
        assert doc["servers"][0]["how"] == "registry"
        assert ls.calls.count("RequestTermServCert") == 1
