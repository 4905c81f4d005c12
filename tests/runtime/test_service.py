"""runtime.service.Server and runtime.peer.open_peer over real loopback TCP.

A small directory-like service runs in the test's nursery (`nursery.start(server.serve)`,
127.0.0.1 port 0); pytest-trio's `autojump_clock` makes every timeout instant and exact, and
`TrioClock` keeps the envelopes' virtual time in step with it. Raw clients (a Connection
without the Hello) play the misbehaving peers.
"""

from __future__ import annotations

import os
import resource
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

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
    Message,
    RemoteProtocolError,
    ServiceError,
)
from tslic.protocol.domain import PeerRole
from tslic.protocol.messages import Error, Goodbye, Hello, Welcome
from tslic.protocol.messages.directory import DirAck, DirQueryEnterprise, DirRegister, DirServers
from tslic.protocol.messages.records import ServerRef
from tslic.runtime.clock import TrioClock
from tslic.runtime.fdlimit import RESERVE
from tslic.runtime.peer import PeerStream, open_peer, split_address
from tslic.runtime.service import Limits, Peer, Server
from tslic.runtime.stream import MessageStream

NOW = 1_051_747_200_000
SERVER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
HELLO = Hello(
    role=PeerRole.TERMINAL_SERVER, name="TS9", version=2003, conversation=Conversation.DIRECTORY
)
LS1 = ServerRef(name="LS1", address="10.0.0.5:4170", site="Main")


class DirService:
    """Answers DirQueryEnterprise; the site name selects the behaviour under test."""

    conversation = Conversation.DIRECTORY

    def __init__(self) -> None:
        self.hello_refusal: ServiceError | None = None
        self.slow_seconds = 2.0
        self.slow_started = trio.Event()
        self.peers: list[Peer] = []

    async def on_hello(self, peer: Peer) -> Welcome:
        if self.hello_refusal is not None:
            raise self.hello_refusal
        self.peers.append(peer)
        return Welcome(role=PeerRole.DIRECTORY, name="DIR", version=0, server_time=NOW)

    async def handle(self, peer: Peer, request: Message) -> Message:
        if isinstance(request, DirRegister):
            return DirAck(detail=f"registered {request.computer}")
        assert isinstance(request, DirQueryEnterprise)
        if request.site == "nowhere":
            raise ServiceError("no site named 'nowhere'", code=ErrorCode.NOT_FOUND)
        if request.site == "bug":
            raise KeyError("a bug in the handler")
        if request.site == "wrong-reply":
            return DirAck(detail="not a reply to a query")  # a handler bug of another kind
        if request.site == "slow":
            self.slow_started.set()
            await trio.sleep(self.slow_seconds)
        return DirServers(servers=(LS1,), distinguished_name=f"CN={request.site}")


@asynccontextmanager
async def running(
    service: DirService, limits: Limits | None = None
) -> AsyncIterator[tuple[Server, str]]:
    server = Server(service, key=SERVER_KEY, clock=TrioClock(NOW), limits=limits)
    async with trio.open_nursery() as nursery:
        address = await nursery.start(server.serve)
        yield server, address
        server.shutdown()


def peer(address: str, name: str = "TS1") -> AbstractAsyncContextManager[PeerStream]:
    return open_peer(
        address,
        conversation=Conversation.DIRECTORY,
        key=Ed25519PrivateKey.generate(),
        clock=TrioClock(NOW),
        role=PeerRole.TERMINAL_SERVER,
        name=name,
        version=2003,
    )


async def raw_client(address: str) -> MessageStream:
    """A connected client stream that has sent nothing yet."""
    host, port = split_address(address)
    tcp = await trio.open_tcp_stream(host, port)
    conn = Connection(
        conversation=Conversation.DIRECTORY,
        our_role=Direction.CLIENT,
        key=Ed25519PrivateKey.generate(),
        nonce_source=lambda: os.urandom(16),
    )
    return MessageStream(tcp, conn, TrioClock(NOW).now)


async def expect_fatal(stream: MessageStream, code: ErrorCode) -> None:
    """The server's fatal Error arrives with `code`, then the connection closes."""
    with pytest.raises(RemoteProtocolError) as info:
        await stream.receive()
    assert info.value.code is code
    assert info.value.message.startswith("peer reported: ")
    with pytest.raises(ConnectionLost):
        await stream.receive()
    await stream.aclose()


async def test_request_refusal_and_continue(autojump_clock: trio.testing.MockClock) -> None:
    service = DirService()
    async with running(service) as (server, address), peer(address) as stream:
        assert stream.welcome.name == "DIR"
        reply = await stream.request(DirQueryEnterprise(site="Main"))
        assert reply == DirServers(servers=(LS1,), distinguished_name="CN=Main")
        with pytest.raises(ServiceError) as refused:
            await stream.request(DirQueryEnterprise(site="nowhere"))
        assert refused.value.code is ErrorCode.NOT_FOUND
        assert "nowhere" in refused.value.message
        # A bug in a handler is an INTERNAL_ERROR refusal; the daemon and conversation go on.
        with pytest.raises(ServiceError) as bug:
            await stream.request(DirQueryEnterprise(site="bug"))
        assert bug.value.code is ErrorCode.INTERNAL_ERROR
        # So is a reply the state table does not allow: the client is not blamed for it.
        with pytest.raises(ServiceError) as wrong:
            await stream.request(DirQueryEnterprise(site="wrong-reply"))
        assert wrong.value.code is ErrorCode.INTERNAL_ERROR
        assert await stream.request(DirRegister(computer="LS1", address="10.0.0.5:4170")) == (
            DirAck(detail="registered LS1")
        )
        assert server.counters.active == 1
    assert server.counters.accepted == 1
    assert server.counters.errors == {
        int(ErrorCode.NOT_FOUND): 1,
        int(ErrorCode.INTERNAL_ERROR): 2,
    }
    assert service.peers[0].hello.name == "TS1"


async def test_a_protocol_error_closes_only_that_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(DirService()) as (server, address), peer(address) as good:
        bad = await raw_client(address)
        await bad.stream.send_all(b"\x00\x00\x00\x05hello")  # a frame that is not msgpack
        await expect_fatal(bad, ErrorCode.BAD_ENCODING)
        bad2 = await raw_client(address)
        await bad2.stream.send_all(b"\x7f\xff\xff\xff")  # a 2 GiB frame: refused at once
        await expect_fatal(bad2, ErrorCode.FRAME_TOO_LARGE)
        assert await good.request(DirQueryEnterprise(site="Main")) is not None
        assert server.counters.errors[int(ErrorCode.BAD_ENCODING)] == 1
        assert server.counters.errors[int(ErrorCode.FRAME_TOO_LARGE)] == 1


@pytest.mark.parametrize("after_hello", [False, True], ids=["first", "after-hello"])
async def test_a_peer_fatal_error_does_not_take_the_server_down(
    autojump_clock: trio.testing.MockClock, after_hello: bool
) -> None:
    # The peer hangs up with its own fatal Error: the conversation is CLOSED, the server has
    # nothing more to send, and it must neither crash nor stop serving others.
    async with running(DirService()) as (server, address):
        quitter = await raw_client(address)
        if after_hello:
            await quitter.send(HELLO)
            assert isinstance(await quitter.receive(), Welcome)
        await quitter.send(Error(code=int(ErrorCode.BAD_SIGNATURE), message="I give up"))
        with pytest.raises(ConnectionLost):
            await quitter.receive()  # closed without a reply
        await quitter.aclose()
        async with peer(address) as other:
            assert await other.request(DirQueryEnterprise(site="Main")) is not None
        assert server.counters.accepted == 2


async def test_a_request_before_hello_is_illegal(autojump_clock: trio.testing.MockClock) -> None:
    async with running(DirService()) as (_server, address):
        client = await raw_client(address)
        client.conn.state = "READY"  # pretend, to get the request on the wire
        await client.send(DirQueryEnterprise(site="Main"))
        await expect_fatal(client, ErrorCode.ILLEGAL_STATE)


async def test_handshake_timeout(autojump_clock: trio.testing.MockClock) -> None:
    limits = Limits(handshake_timeout=7.0)
    async with running(DirService(), limits) as (server, address):
        client = await raw_client(address)
        start = trio.current_time()
        await expect_fatal(client, ErrorCode.HANDSHAKE_TIMEOUT)
        assert trio.current_time() - start == pytest.approx(7.0)
        assert server.counters.errors == {int(ErrorCode.HANDSHAKE_TIMEOUT): 1}


async def test_idle_timeout(autojump_clock: trio.testing.MockClock) -> None:
    limits = Limits(idle_timeout=60.0)
    async with running(DirService(), limits) as (server, address), peer(address) as stream:
        await stream.request(DirQueryEnterprise(site="Main"))
        start = trio.current_time()
        with pytest.raises(RemoteProtocolError) as info:
            await stream.receive()
        assert info.value.code is ErrorCode.IDLE_TIMEOUT
        assert trio.current_time() - start == pytest.approx(60.0)
        with pytest.raises(ConnectionLost):
            await stream.receive()
        assert server.counters.errors == {int(ErrorCode.IDLE_TIMEOUT): 1}


async def test_max_connections_busy_at_once(autojump_clock: trio.testing.MockClock) -> None:
    limits = Limits(max_connections=1)
    async with running(DirService(), limits) as (server, address):
        async with peer(address) as first:
            start = trio.current_time()
            extra = await raw_client(address)
            await expect_fatal(extra, ErrorCode.SERVER_BUSY)
            assert trio.current_time() == start  # told at once, not after a timeout
            assert await first.request(DirQueryEnterprise(site="Main")) is not None
        await trio.testing.wait_all_tasks_blocked()
        async with peer(address, "TS2") as second:  # the slot is free again
            assert await second.request(DirQueryEnterprise(site="Main")) is not None
        assert server.counters.refused_busy == 1
        assert server.counters.accepted == 2


async def test_the_open_files_limit_caps_the_connection_limit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """max_connections beyond what the descriptors allow: the server's own ceiling is the
    open-files limit less the reserve, and the connection past it hears SERVER_BUSY at once
    (not an accept() that fails with EMFILE while the peer waits in the kernel's queue)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    opened = len(os.listdir("/proc/self/fd"))
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (opened + RESERVE + 8, hard))
        async with running(DirService(), Limits(max_connections=15_000)) as (server, address):
            ceiling = server.max_connections
            assert ceiling == opened + 8
            # Both ends live in this process: 2 descriptors per connection, which the
            # reserve covers, so the server reaches its own ceiling before any EMFILE.
            held = [await raw_client(address) for _ in range(ceiling)]
            await trio.testing.wait_all_tasks_blocked()
            assert server.counters.active == ceiling
            start = trio.current_time()
            await expect_fatal(await raw_client(address), ErrorCode.SERVER_BUSY)
            assert trio.current_time() == start  # told at once
            assert server.counters.refused_busy == 1
            for stream in held:
                await stream.aclose()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_rate_limit_and_recovery(autojump_clock: trio.testing.MockClock) -> None:
    limits = Limits(rate_per_second=1.0, rate_burst=2.0)
    async with running(DirService(), limits) as (server, address), peer(address) as stream:
        for _ in range(2):
            await stream.request(DirQueryEnterprise(site="Main"))
        with pytest.raises(ServiceError) as info:
            await stream.request(DirQueryEnterprise(site="Main"))
        assert info.value.code is ErrorCode.RATE_LIMITED
        await trio.sleep(1.0)  # one token back
        assert await stream.request(DirQueryEnterprise(site="Main")) is not None
        with pytest.raises(ServiceError):
            await stream.request(DirQueryEnterprise(site="Main"))
        assert server.counters.errors[int(ErrorCode.RATE_LIMITED)] == 2


async def test_graceful_shutdown(autojump_clock: trio.testing.MockClock) -> None:
    service = DirService()
    limits = Limits(shutdown_grace=5.0)
    server = Server(service, key=SERVER_KEY, clock=TrioClock(NOW), limits=limits)
    results: dict[str, object] = {}
    async with trio.open_nursery() as nursery:
        address = await nursery.start(server.serve)
        async with peer(address, "IDLE") as idle, peer(address, "BUSY") as busy:

            async def slow_request() -> None:
                results["reply"] = await busy.request(DirQueryEnterprise(site="slow"))
                results["replied_at"] = trio.current_time()
                results["after"] = await busy.receive()

            async with trio.open_nursery() as clients:
                clients.start_soon(slow_request)
                await service.slow_started.wait()
                start = trio.current_time()
                server.shutdown()
                goodbye = await idle.receive()  # the idle peer is told at once
                assert isinstance(goodbye, Goodbye)
                assert "shutting down" in goodbye.reason
                assert trio.current_time() == start
                with pytest.raises(ConnectionLost) as refused:
                    async with peer(address, "LATE"):
                        pass
                assert address in refused.value.message
        # The in-flight request finished within the grace period, then the peer heard Goodbye.
        assert results["reply"] == DirServers(servers=(LS1,), distinguished_name="CN=slow")
        assert results["replied_at"] == pytest.approx(start + 2.0)
        assert isinstance(results["after"], Goodbye)
    assert server.counters.active == 0


async def test_shutdown_cancels_handlers_after_the_grace(
    autojump_clock: trio.testing.MockClock,
) -> None:
    service = DirService()
    service.slow_seconds = 60.0
    server = Server(service, key=SERVER_KEY, clock=TrioClock(NOW), limits=Limits(shutdown_grace=5))
    async with trio.open_nursery() as nursery:
        address = await nursery.start(server.serve)
        async with peer(address) as stream, trio.open_nursery() as clients:

            async def stop_soon() -> None:
                await service.slow_started.wait()
                server.shutdown()

            clients.start_soon(stop_soon)
            start = trio.current_time()
            # The cancelled request is told why (issue 9: a documented error, not a reset).
            with pytest.raises(RemoteProtocolError) as info:
                await stream.request(DirQueryEnterprise(site="slow"))
            assert info.value.code is ErrorCode.SHUTTING_DOWN
            assert trio.current_time() - start == pytest.approx(5.0)


async def test_open_peer_to_a_closed_port(autojump_clock: trio.testing.MockClock) -> None:
    sock = trio.socket.socket()
    await sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # bound, never listened: connecting is refused
    address = f"127.0.0.1:{port}"
    with pytest.raises(ConnectionLost) as info:
        async with peer(address):
            pass
    assert address in info.value.message
    assert info.value.code is ErrorCode.CONNECTION_LOST


@pytest.mark.parametrize("address", ["localhost", "host:", ":80", "host:99999", "host:http"])
async def test_open_peer_with_a_bad_address(address: str) -> None:
    with pytest.raises(ServiceError) as info:
        async with peer(address):
            pass
    assert info.value.code is ErrorCode.INVALID_FIELD
    assert "HOST:PORT" in info.value.message


async def test_a_refused_hello(autojump_clock: trio.testing.MockClock) -> None:
    service = DirService()
    service.hello_refusal = ServiceError(
        "a Windows 2000 license server cannot serve a Windows Server 2003 terminal server",
        code=ErrorCode.LOWER_VERSION,
    )
    async with running(service) as (server, address):
        with pytest.raises(ServiceError) as info:
            async with peer(address):
                pass
        assert info.value.code is ErrorCode.LOWER_VERSION
        assert "Windows 2000" in info.value.message
        assert server.counters.errors == {int(ErrorCode.LOWER_VERSION): 1}
