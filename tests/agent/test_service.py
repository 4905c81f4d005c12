"""The RDP listener's error discipline: bad bytes, silence, a rude client; the agent stays up."""

from __future__ import annotations

from pathlib import Path

import trio
from trio.testing import MockClock
from tslic.client.agent.config import AgentConfig
from tslic.protocol.domain import WindowsVersion
from tslic.protocol.errors import ErrorCode
from tslic.runtime.clock import TrioClock

from tests.agent import fakes

CONFIG = AgentConfig(name="TS1", version=WindowsVersion.W2003)


async def test_garbage_and_silence_get_errors_and_the_agent_stays_up(
    tmp_path: Path, autojump_clock: MockClock, clock: TrioClock
) -> None:
    async with fakes.run_agent(CONFIG, tmp_path / "a", clock) as (agent, address):
        host, port = address.rsplit(":", 1)
        rude = await trio.open_tcp_stream(host, int(port))
        await rude.send_all(b"\xff" * 64)  # not a frame
        with trio.fail_after(10):
            while await rude.receive_some(65536):
                pass  # read the LicenseRequest and the fatal Error, until the agent closes
        await rude.aclose()
        silent = await trio.open_tcp_stream(host, int(port))
        with trio.fail_after(30):
            while await silent.receive_some(65536):
                pass  # the agent gives up after the handshake timeout
        await silent.aclose()
        assert agent.errors.get(int(ErrorCode.HANDSHAKE_TIMEOUT)) == 1
        assert sum(agent.errors.values()) == 2
        # A well-behaved client is still served.
        assert (await fakes.rdp(address, tmp_path / "pc", clock)).status == "valid-client"


async def test_shutdown_says_goodbye_and_stops(
    tmp_path: Path, autojump_clock: MockClock, clock: TrioClock
) -> None:
    async with fakes.run_agent(CONFIG, tmp_path / "a", clock) as (agent, address):
        assert (await fakes.rdp(address, tmp_path / "pc", clock)).connected
        agent.shutdown()
    outcome = await fakes.rdp(address, tmp_path / "pc", clock)
    assert outcome.status == "error"
