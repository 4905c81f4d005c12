"""runtime.service.Server running a server-first conversation (runtime/session.py).

A tiny RDP-shaped conversant greets each client with a LicenseRequest, then waits for its
answer; autojump_clock makes the timeouts instant. The listener applies the same limits as
for request/reply: handshake and idle timeouts, per-key rate limit, graceful shutdown, its
own failures answered INTERNAL_ERROR, one replay memory for all connections.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.protocol import (
    Connection,
    ConnectionLost,
    Conversation,
    Direction,
    ErrorCode,
    RemoteProtocolError,
)
from tslic.protocol.domain import ClientOS, LicensingMode
from tslic.protocol.errors import StorageError
from tslic.protocol.messages import Goodbye
from tslic.protocol.messages.rdp import (
    DisconnectReason,
    ErrorAlert,
    LicenseRequest,
    NewLicenseRequest,
    RdpError,
    StateTransition,
)
from tslic.protocol.messages.records import ProductInfo
from tslic.runtime.clock import TrioClock
from tslic.runtime.peer import connect
from tslic.runtime.service import Limits, Server
from tslic.runtime.session import Session
from tslic.runtime.stream import MessageStream

NOW = 1_051_747_200_000
GREETING = LicenseRequest(
    server_random=bytes(32),
    product=ProductInfo(version=0x00050002, company="Microsoft Corporation", product_id="A02"),
    cert_chain=(),
    scopes=("microsoft.com",),
    mode=LicensingMode.PER_DEVICE,
)
REQUEST = NewLicenseRequest(
    platform_id=0x04010000,
    client_random=bytes(32),
    user_name="alice",
    machine_name="PC1",
    client_os=ClientOS.XP_PRO,
)
WELCOME_ALERT = ErrorAlert(
    error_code=RdpError.STATUS_VALID_CLIENT,
    state_transition=StateTransition.ST_NO_TRANSITION,
    disconnect_reason=DisconnectReason.NONE,
    text="",
)


class Greeter:
    """Greets, accepts the client without a license, then waits (idle) for its Goodbye."""

    conversation = Conversation.RDP

    def __init__(self) -> None:
        self.fail_with: BaseException | None = None
        self.served = 0

    async def converse(self, session: Session) -> None:
        await session.send(GREETING)
        await session.receive()
        if self.fail_with is not None:
            raise self.fail_with
        await session.send(WELCOME_ALERT)
        self.served += 1
        await session.receive(idle=True)


@asynccontextmanager
async def running(
    conversant: Greeter, limits: Limits | None = None
) -> AsyncIterator[tuple[Server, str]]:
    server = Server(conversant, key=Ed25519PrivateKey.generate(), clock=TrioClock(NOW),
                    limits=limits)  # fmt: skip
    try:
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server.serve)
            yield server, address
            server.shutdown()
    finally:
        while _OPEN:
            await _OPEN.pop().aclose()


_OPEN: list[MessageStream] = []  # the clients' streams, closed when the server stops


async def client(address: str, key: Ed25519PrivateKey | None = None) -> MessageStream:
    """A connected RDP client that has read the greeting."""
    conn = Connection(
        conversation=Conversation.RDP,
        our_role=Direction.CLIENT,
        key=key or Ed25519PrivateKey.generate(),
        nonce_source=lambda: os.urandom(16),
    )
    stream = MessageStream(await connect(address), conn, TrioClock(NOW).now)
    _OPEN.append(stream)
    assert isinstance(await stream.receive(), LicenseRequest)
    return stream


async def fatal(stream: MessageStream) -> ErrorCode:
    with pytest.raises(RemoteProtocolError) as err:
        await stream.receive()
    return err.value.code


async def test_a_client_is_served_and_says_goodbye(autojump_clock: trio.testing.MockClock) -> None:
    greeter = Greeter()
    async with running(greeter) as (server, address):
        stream = await client(address)
        await stream.send(REQUEST)
        assert isinstance(await stream.receive(), ErrorAlert)
        await stream.aclose(goodbye="done")
        await trio.sleep(1)
        assert greeter.served == 1
        assert server.counters.active == 0
        assert server.counters.errors == {}


async def test_handshake_and_idle_timeouts(autojump_clock: trio.testing.MockClock) -> None:
    limits = Limits(handshake_timeout=3.0, idle_timeout=20.0)
    async with running(Greeter(), limits) as (server, address):
        silent = await client(address)
        start = trio.current_time()
        assert await fatal(silent) is ErrorCode.HANDSHAKE_TIMEOUT
        assert trio.current_time() - start == pytest.approx(3.0, abs=0.1)
        # In a session, the client's silence is bounded by the idle timeout.
        idle = await client(address)
        await idle.send(REQUEST)
        assert isinstance(await idle.receive(), ErrorAlert)
        start = trio.current_time()
        assert await fatal(idle) is ErrorCode.IDLE_TIMEOUT
        assert trio.current_time() - start == pytest.approx(20.0, abs=0.1)
        assert server.counters.errors == {
            int(ErrorCode.HANDSHAKE_TIMEOUT): 1,
            int(ErrorCode.IDLE_TIMEOUT): 1,
        }


async def test_replay_across_connections_is_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    key = Ed25519PrivateKey.generate()
    async with running(Greeter()) as (server, address):
        first = await client(address, key)
        frame = first.conn.send(REQUEST, now=NOW)
        await first.stream.send_all(frame)
        assert isinstance(await first.receive(), ErrorAlert)
        second = await client(address, key)
        await second.stream.send_all(frame)
        assert await fatal(second) is ErrorCode.REPLAYED_MESSAGE
        assert server.counters.errors == {int(ErrorCode.REPLAYED_MESSAGE): 1}


async def test_rate_limit_ends_the_conversation_with_server_busy(
    autojump_clock: trio.testing.MockClock,
) -> None:
    key = Ed25519PrivateKey.generate()
    async with running(Greeter(), Limits(rate_per_second=1.0, rate_burst=1.0)) as (
        server,
        address,
    ):
        first = await client(address, key)
        await first.send(REQUEST)
        assert isinstance(await first.receive(), ErrorAlert)
        second = await client(address, key)  # the same key, at once: no token left
        await second.send(REQUEST)
        assert await fatal(second) is ErrorCode.SERVER_BUSY
        assert server.counters.errors == {int(ErrorCode.SERVER_BUSY): 1}


@pytest.mark.parametrize("failure", [StorageError("disk full"), KeyError("a bug")])
async def test_a_failure_of_ours_ends_that_conversation_and_the_server_stays_up(
    autojump_clock: trio.testing.MockClock, failure: BaseException
) -> None:
    greeter = Greeter()
    async with running(greeter) as (server, address):
        greeter.fail_with = failure
        broken = await client(address)
        await broken.send(REQUEST)
        # RDP has no refusal to carry INTERNAL_ERROR: the conversation ends, the daemon goes on.
        with pytest.raises(ConnectionLost):
            await broken.receive()
        greeter.fail_with = None
        fine = await client(address)
        await fine.send(REQUEST)
        assert isinstance(await fine.receive(), ErrorAlert)
        assert server.counters.errors == {}


async def test_shutdown_says_goodbye_to_idle_sessions_and_refuses_newcomers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(Greeter()) as (server, address):
        session = await client(address)
        await session.send(REQUEST)
        assert isinstance(await session.receive(), ErrorAlert)
        server.shutdown()
        assert isinstance(await session.receive(), Goodbye)
    with pytest.raises(ConnectionLost):
        await client(address)
