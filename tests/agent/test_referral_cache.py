"""A referral is followed to a listed server even when the agent's discovery cache last saw
that server unable to serve it (CAL-12): the referral is fresher news than the cache, so the
agent asks the server again instead of passing over it. Also the configuration of sources the
agent's version does not know (DISC-6): kept, ignored by discovery, and named for a warning."""

from __future__ import annotations

from pathlib import Path

from trio.testing import MockClock
from tslic.client.agent.config import AgentConfig, NamedAddress
from tslic.client.agent.service import Agent
from tslic.client.agent.upstream import ask_license
from tslic.protocol.domain import (
    CalProduct,
    ClientOS,
    Connectivity,
    LicenseKind,
    LicensingMode,
    WindowsVersion,
)
from tslic.protocol.messages.licensing import IssueLicense
from tslic.runtime.clock import TrioClock

from tests.agent import fakes

W2003 = WindowsVersion.W2003
HWID = bytes(range(32))


async def test_referral_to_a_server_cached_as_not_serving_is_followed(
    tmp_path: Path, autojump_clock: MockClock, clock: TrioClock
) -> None:
    root = fakes.Root.make(clock)
    cals = {CalProduct.W2003_DEVICE_CAL: 5}
    # LS-B first in order, but it leaves this terminal server out of its security group.
    ls_b = fakes.FakeLicenseServer(
        name="LS-B", version=W2003, clock=clock, root=root, available=cals, security_group={"X"}
    )
    ls_a = fakes.FakeLicenseServer(name="LS-A", version=W2003, clock=clock, root=root)
    async with fakes.serve(ls_b, clock) as s_b, fakes.serve(ls_a, clock) as s_a:
        # LS-A has no temporary left for this device and refers it to LS-B.
        ls_a.refer_to = (fakes.ref("LS-B", s_b.address),)
        ls_a.devices[HWID] = fakes.Device(
            license_id=1,
            kind=LicenseKind.TEMPORARY,
            product=CalProduct.W2003_DEVICE_CAL,
            expires_at=0,
            had_temporary=True,
        )
        config = AgentConfig(
            name="TS1",
            version=W2003,
            registry_servers=(
                NamedAddress(name="LS-B", address=s_b.address),
                NamedAddress(name="LS-A", address=s_a.address),
            ),
        )
        agent = Agent(config, tmp_path / "agent", clock)
        chosen = await agent.servers.discover()
        assert chosen is not None
        assert chosen.name == "LS-A"
        cached = agent.state.entry("LS-B")
        assert cached is not None
        assert cached.connectivity is Connectivity.NOT_IN_TSCGROUP
        assert not cached.issuing
        ls_b.security_group = None  # the administrator adds the terminal server
        request = IssueLicense(
            hwid=HWID,
            machine="PC1",
            user="alice",
            client_os=ClientOS.XP_PRO,
            mode=LicensingMode.PER_DEVICE,
        )
        granted = await ask_license(agent.servers, request, issuer=None)
        await agent.servers.aclose()
    assert ls_a.calls.count("IssueLicense") == 1
    assert ls_b.calls.count("IssueLicense") == 1
    assert granted.kind is LicenseKind.TEMPORARY
    assert cached.issuing


def test_sources_of_the_other_version_are_kept_and_ignored() -> None:
    alien = NamedAddress(name="ALIEN", address="127.0.0.1:1")
    w2003 = AgentConfig(name="TS1", version=W2003, default_license_server=alien)
    assert w2003.known_addresses() == {}
    assert ["--default-license-server" in w for w in w2003.ignored_sources()] == [True]
    w2000 = AgentConfig(
        name="TS2",
        version=WindowsVersion.W2000,
        registry_servers=(alien,),
        policy_servers=(alien,),
    )
    assert w2000.known_addresses() == {}
    assert len(w2000.ignored_sources()) == 2
    kept = AgentConfig(name="TS3", version=W2003, registry_servers=(alien,))
    assert kept.ignored_sources() == ()
    assert kept.known_addresses() == {"alien": "127.0.0.1:1"}
