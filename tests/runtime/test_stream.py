"""runtime.stream.MessageStream over in-memory Trio streams.

The adapter's contract: trio's Broken/ClosedResourceError become ConnectionLost, a peer's
fatal Error becomes RemoteProtocolError, a refusal becomes ServiceError, a cancelled send
never leaves half a frame, and closing never raises for a broken peer.
"""

from __future__ import annotations

import itertools

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
    LocalProtocolError,
    RemoteProtocolError,
    ServiceError,
)
from tslic.protocol.domain import PeerRole
from tslic.protocol.messages import Error, Goodbye, Hello, Welcome
from tslic.protocol.messages.directory import DirQueryEnterprise, DirServers
from tslic.runtime.stream import MessageStream

NOW = 1_051_747_200_000
HELLO = Hello(
    role=PeerRole.TERMINAL_SERVER, name="TS1", version=2003, conversation=Conversation.DIRECTORY
)
WELCOME = Welcome(role=PeerRole.DIRECTORY, name="DIR", version=0)
QUERY = DirQueryEnterprise(site="Main")


def _conn(role: Direction, seed: int) -> Connection:
    counter = itertools.count(seed * 1_000_000)
    return Connection(
        conversation=Conversation.DIRECTORY,
        our_role=role,
        key=Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32),
        nonce_source=lambda: next(counter).to_bytes(16, "big"),
    )


def pair(
    streams: tuple[trio.abc.Stream, trio.abc.Stream] | None = None,
) -> tuple[MessageStream, MessageStream]:
    a, b = streams or trio.testing.memory_stream_pair()
    return (
        MessageStream(a, _conn(Direction.CLIENT, 1), lambda: NOW),
        MessageStream(b, _conn(Direction.SERVER, 2), lambda: NOW),
    )


async def opened() -> tuple[MessageStream, MessageStream]:
    client, server = pair()
    await client.send(HELLO)
    assert await server.receive() == HELLO
    await server.send(WELCOME)
    assert await client.receive() == WELCOME
    return client, server


async def test_request_reply_and_refusal() -> None:
    client, server = await opened()
    async with trio.open_nursery() as nursery:

        async def serve_two() -> None:
            assert await server.receive() == QUERY
            await server.send(DirServers(servers=()))
            assert await server.receive() == QUERY
            await server.send(Error(code=int(ErrorCode.NOT_FOUND), message="no such site"))

        nursery.start_soon(serve_two)
        assert await client.request(QUERY) == DirServers(servers=())
        with pytest.raises(ServiceError) as info:
            await client.request(QUERY)
        assert info.value.code is ErrorCode.NOT_FOUND
    assert client.conn.state == "READY"  # a refusal leaves the conversation usable


async def test_peer_fatal_error_is_a_remote_protocol_error() -> None:
    client, server = await opened()
    await server.send_error(ErrorCode.ILLEGAL_STATE, "unexpected message", hint="send Hello")
    with pytest.raises(RemoteProtocolError) as info:
        await client.receive()
    assert info.value.code is ErrorCode.ILLEGAL_STATE
    assert info.value.detail == {"hint": "send Hello"}
    assert "unexpected message" in info.value.message


async def test_peer_closed_is_connection_lost() -> None:
    client, server = await opened()
    await server.stream.aclose()
    with pytest.raises(ConnectionLost) as info:
        await client.receive()
    assert "closed" in info.value.message
    assert info.value.code is ErrorCode.CONNECTION_LOST


async def test_peer_closed_mid_frame_is_a_protocol_error() -> None:
    client, server = pair()
    await client.stream.send_all(b"\x00\x00\x00\x10abc")
    await client.stream.aclose()
    with pytest.raises(RemoteProtocolError) as info:
        await server.receive()
    assert info.value.code is ErrorCode.MALFORMED_FRAME


async def test_garbage_is_a_remote_protocol_error_not_a_msgpack_one() -> None:
    client, server = pair()
    await client.stream.send_all(b"\x00\x00\x00\x03\xc1\xc1\xc1")
    with pytest.raises(RemoteProtocolError) as info:
        await server.receive()
    assert info.value.code is ErrorCode.BAD_ENCODING


async def test_send_to_a_closed_peer_is_connection_lost() -> None:
    client, server = await opened()
    await server.stream.aclose()
    with pytest.raises(ConnectionLost) as info:
        await client.send(QUERY)
    assert "sending" in info.value.message
    assert client.conn.state == "ERROR"  # the core knows the frame never left
    assert client.conn.error is not None
    assert client.conn.error.code is ErrorCode.CONNECTION_LOST


async def test_use_after_own_close_is_connection_lost() -> None:
    client, _server = await opened()
    await client.stream.aclose()
    with pytest.raises(ConnectionLost):
        await client.receive()
    with pytest.raises(ConnectionLost):
        await client.send(QUERY)


async def test_an_illegal_send_is_local_and_writes_nothing() -> None:
    client, server = pair()
    with pytest.raises(LocalProtocolError) as info:
        await client.send(QUERY)  # before Hello
    assert info.value.code is ErrorCode.ILLEGAL_STATE
    await client.stream.aclose()
    with pytest.raises(ConnectionLost):
        await server.receive()  # clean EOF: not a byte was written


async def test_a_cancelled_send_still_writes_the_whole_frame() -> None:
    # lockstep: send_all blocks until the peer reads, so the cancel lands mid-write.
    client, server = pair(trio.testing.lockstep_stream_pair())
    async with trio.open_nursery() as nursery:
        with trio.CancelScope() as scope:

            async def cancel_when_blocked() -> None:
                await trio.testing.wait_all_tasks_blocked()
                scope.cancel()
                assert await server.receive() == HELLO  # whole, despite the cancel

            nursery.start_soon(cancel_when_blocked)
            await client.send(HELLO)
            await trio.sleep_forever()  # the cancellation is delivered here, after the write
    assert scope.cancelled_caught
    assert client.conn.state == "HELLO_SENT"


async def test_aclose_says_goodbye_once_and_tolerates_a_broken_peer() -> None:
    client, server = await opened()
    await client.aclose(goodbye="done")
    assert await server.receive() == Goodbye(reason="done")
    await client.aclose(goodbye="again")  # idempotent
    with pytest.raises(ConnectionLost):
        await server.receive()
    # The server's peer is gone: saying Goodbye fails quietly.
    await server.aclose(goodbye="bye")
    await server.aclose()


async def test_send_error_to_a_gone_peer_is_quiet() -> None:
    client, server = await opened()
    await client.stream.aclose()
    await server.send_error(ErrorCode.IDLE_TIMEOUT, "idle for too long")  # must not raise
    assert server.conn.state == "ERROR"


async def test_send_error_after_the_peer_hung_up_with_an_error_is_quiet() -> None:
    client, server = await opened()
    await client.send_error(ErrorCode.BAD_SIGNATURE, "your signature is wrong")
    with pytest.raises(RemoteProtocolError):
        await server.receive()
    assert server.conn.state == "CLOSED"
    # Nothing may follow a fatal Error; saying why we close too must not raise.
    await server.send_error(ErrorCode.ILLEGAL_STATE, "closing")
