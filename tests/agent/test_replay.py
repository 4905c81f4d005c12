"""The agent's listener is the shared runtime: one replay memory for all its connections.

A byte-identical NewLicenseRequest sent on a second connection is refused REPLAYED_MESSAGE
(ENV-11); before the agent ran on runtime.service.Server each connection had its own memory
and the copy was answered as a new client.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio
import trio.testing
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.client.agent.config import AgentConfig
from tslic.protocol import Connection, Conversation, Direction, ErrorCode, RemoteProtocolError
from tslic.protocol.domain import ClientOS, WindowsVersion
from tslic.protocol.messages.rdp import (
    ErrorAlert,
    LicenseRequest,
    NewLicenseRequest,
    PlatformChallenge,
)
from tslic.runtime.clock import TrioClock
from tslic.runtime.peer import connect
from tslic.runtime.stream import MessageStream

from tests.agent import fakes

CONFIG = AgentConfig(name="TS1", version=WindowsVersion.W2003)


async def _greeted(address: str, key: Ed25519PrivateKey, clock: TrioClock) -> MessageStream:
    conn = Connection(
        conversation=Conversation.RDP,
        our_role=Direction.CLIENT,
        key=key,
        nonce_source=lambda: os.urandom(16),
    )
    stream = MessageStream(await connect(address), conn, clock.now)
    assert isinstance(await stream.receive(), LicenseRequest)
    return stream


async def test_a_request_replayed_on_another_connection_is_refused(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, clock: TrioClock
) -> None:
    key = Ed25519PrivateKey.generate()
    request = NewLicenseRequest(
        platform_id=0x04010000,
        client_random=bytes(32),
        user_name="alice",
        machine_name="PC1",
        client_os=ClientOS.XP_PRO,
    )
    async with fakes.run_agent(CONFIG, tmp_path / "a", clock) as (agent, address):
        first = await _greeted(address, key, clock)
        frame = first.conn.send(request, now=clock.now())
        await first.stream.send_all(frame)
        # Accepted: no license server, in grace, so the client is let in without a license.
        reply = await first.receive()
        assert isinstance(reply, ErrorAlert | PlatformChallenge)
        second = await _greeted(address, key, clock)
        await second.stream.send_all(frame)  # the same bytes: same sender, same nonce
        with pytest.raises(RemoteProtocolError) as refused:
            await second.receive()
        assert refused.value.code is ErrorCode.REPLAYED_MESSAGE
        assert agent.errors.get(int(ErrorCode.REPLAYED_MESSAGE)) == 1
        await first.aclose()
        await second.aclose()
        # The agent still serves a well-behaved client.
        assert (await fakes.rdp(address, tmp_path / "pc", clock)).connected
