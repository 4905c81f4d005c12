"""The licensing exchange end to end: agent + fake license server + emulated client."""

from __future__ import annotations

from pathlib import Path

from trio.testing import MockClock
from tslic.client.agent.config import AgentConfig, NamedAddress
from tslic.client.agent.events import read_events
from tslic.protocol.domain import CalProduct, WindowsVersion
from tslic.runtime.clock import TrioClock

from tests.agent import fakes


def ids(data: Path) -> list[int]:
    return [e.event_id for e in read_events(data / "events.jsonl")]


async def test_temporary_then_validated_then_permanent(
    tmp_path: Path, autojump_clock: MockClock, clock: TrioClock
) -> None:
    root = fakes.Root.make(clock)
    ls = fakes.FakeLicenseServer(
        name="LS1",
        version=WindowsVersion.W2003,
        clock=clock,
        root=root,
        available={CalProduct.W2003_DEVICE_CAL: 5},
    )
    async with fakes.serve(ls, clock) as lsrv:
        config = AgentConfig(
            name="TS1",
            version=WindowsVersion.W2003,
            registry_servers=(NamedAddress(name="LS1", address=lsrv.address),),
            trust_root=root.cert,
        )
        async with fakes.run_agent(config, tmp_path / "agent", clock) as (agent, address):
            store = tmp_path / "pc1"
            first = await fakes.rdp(address, store, clock, trust_root=root.cert)
            assert first.status == "licensed", (
                first.text,
                agent.state.to_json()["servers"],
                ls.calls,
            )
            assert first.received == "new"
            assert first.license is not None
            assert first.license.kind == "temporary"
            assert not first.presented_stored
            assert first.logged_on
            assert ls.devices[next(iter(ls.devices))].validated  # MarkLicense after logon

            second = await fakes.rdp(address, store, clock, trust_root=root.cert)
            assert second.presented_stored
            assert second.received == "upgrade"
            assert second.license is not None
            assert second.license.kind == "permanent"
            assert second.license.product == "w2003-device-cal"
            assert ls.available[CalProduct.W2003_DEVICE_CAL] == 4
            assert "LicenseInfo" not in ls.calls  # the TS relays; LS sees UpgradeLicenseRequest
            assert "UpgradeLicenseRequest" in ls.calls

            third = await fakes.rdp(address, store, clock, trust_root=root.cert)
            assert third.status == "licensed"
            assert third.received == ""  # a valid permanent license: STATUS_VALID_CLIENT
            assert third.license is not None
            assert third.license.kind == "permanent"
            counts = agent.state.counts
            assert counts["temporary_issued"] == 1
            assert counts["upgraded"] == 1
            assert counts["marked_validated"] == 1
            # The first permanent CAL ended the grace period (default rule).
            assert agent.state.grace.end_reason == "first-permanent-cal"
            assert agent.licensing.in_grace() is False
        assert ids(tmp_path / "agent") == []


async def test_referral_to_a_server_with_cals(
    tmp_path: Path, autojump_clock: MockClock, clock: TrioClock
) -> None:
    root = fakes.Root.make(clock)
    rich = fakes.FakeLicenseServer(
        name="LSB",
        version=WindowsVersion.W2003,
        clock=clock,
        root=root,
        available={CalProduct.W2003_DEVICE_CAL: 1},
    )
    async with fakes.serve(rich, clock) as b:
        poor = fakes.FakeLicenseServer(
            name="LSA",
            version=WindowsVersion.W2003,
            clock=clock,
            root=root,
            refer_to=(fakes.ref("LSB", b.address),),
        )
        async with fakes.serve(poor, clock) as a:
            config = AgentConfig(
                name="TS1",
                version=WindowsVersion.W2003,
                registry_servers=(NamedAddress(name="LSA", address=a.address),),
            )
            async with fakes.run_agent(config, tmp_path / "agent", clock) as (agent, address):
                first = await fakes.rdp(address, tmp_path / "pc", clock)
                assert first.license is not None
                assert first.license.issuer == "LSA"
                assert first.license.kind == "temporary"
                second = await fakes.rdp(address, tmp_path / "pc", clock)
                assert second.license is not None
                assert second.license.kind == "permanent"
                assert second.license.issuer == "LSB"  # LSA referred the request to LSB
                assert rich.available[CalProduct.W2003_DEVICE_CAL] == 0
                lsb = agent.state.entry("LSB")
                assert lsb is not None
                assert lsb.detail == "found through a referral"
