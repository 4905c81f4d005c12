"""One integration test with the real license server daemon (server/license_server): a 2003 agent
skips a real 2000 server (LOWER_VERSION); an unactivated 2003 server gives a temporary license
through the agent and marks it validated after the logon; the client presents it on its next
connection."""

from __future__ import annotations

from pathlib import Path

import trio
from tslic.client.agent.config import AgentConfig, NamedAddress
from tslic.client.agent.service import Agent
from tslic.client.rdp.client import connect
from tslic.client.rdp.store import LicenseStore
from tslic.protocol.clock import ClockSpec
from tslic.protocol.domain import ClientOS, Connectivity, WindowsVersion
from tslic.runtime.clock import WallClock
from tslic.server.license_server import config as ls_config
from tslic.server.license_server import daemon

XP_PRO = ClientOS.XP_PRO


async def test_agent_with_the_real_license_server(tmp_path: Path) -> None:
    clock = WallClock(ClockSpec())
    server = daemon.LicenseServer(
        ls_config.Config(name="LS2003", version=WindowsVersion.W2003, data_dir=tmp_path / "ls"),
        clock,
    )
    old = daemon.LicenseServer(
        ls_config.Config(name="LS2000", version=WindowsVersion.W2000, data_dir=tmp_path / "old"),
        clock,
    )
    async with trio.open_nursery() as nursery:
        ls_address = await nursery.start(server.serve)
        old_address = await nursery.start(old.serve)
        config = AgentConfig(
            name="TS1",
            version=WindowsVersion.W2003,
            registry_servers=(
                NamedAddress(name="LS2000", address=old_address),
                NamedAddress(name="LS2003", address=ls_address),
            ),
        )
        agent = Agent(config, tmp_path / "agent", clock)
        address = await nursery.start(agent.serve)
        with trio.fail_after(30):
            store = LicenseStore(tmp_path / "xp")
            first = await connect(
                address, store=store, clock=clock, device="XP1", user="alice", client_os=XP_PRO
            )
            assert first.status == "licensed", first.text
            assert first.license is not None
            assert first.license.kind == "temporary"  # unactivated: temporary licenses only
            assert first.license.issuer == "LS2003"
            second = await connect(
                address, store=store, clock=clock, device="XP1", user="alice", client_os=XP_PRO
            )
            assert second.presented_stored
            assert second.status == "licensed", second.text
        skipped = agent.state.entry("LS2000")
        assert skipped is not None
        assert skipped.connectivity is Connectivity.LOWER_VERSION
        entry = agent.state.entry("LS2003")
        assert entry is not None
        assert entry.connectivity is Connectivity.VALID_LS
        # Each successful logon with a temporary in hand marks it (the TS cannot know it was).
        assert agent.state.counts["marked_validated"] == 2
        agent.shutdown()
        server.shutdown()
        old.shutdown()
