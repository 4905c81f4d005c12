"""Opening a conversation with a server: connect, Hello, Welcome.

Contract: `open_peer` is an async context manager yielding a `MessageStream` whose Hello has
been answered with a Welcome (available as `stream.welcome`). A refused Hello raises the
`ServiceError` the server sent (for example LOWER_VERSION), an unreachable address raises
`ConnectionLost` with the address in the message. Callers bound the time with `fail_after`.
On exit the conversation ends with Goodbye when it is in a state that allows one.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.protocol import (
    Connection,
    ConnectionLost,
    Conversation,
    Direction,
    ErrorCode,
    ServiceError,
)
from tslic.protocol.domain import PeerRole
from tslic.protocol.envelope import window_for_speed
from tslic.protocol.messages import Error, Hello, Welcome

from .clock import Clock, clock_view
from .stream import MessageStream


def split_address(address: str) -> tuple[str, int]:
    """'host:port' (or '[v6]:port') as a (host, port) pair.

    Raises:
        ServiceError: INVALID_FIELD if it is not HOST:PORT.
    """
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ServiceError(f"{address!r} is not HOST:PORT", code=ErrorCode.INVALID_FIELD)
    return host.strip("[]"), int(port)


class PeerStream(MessageStream):
    """A client-side message stream that remembers the server's Welcome."""

    welcome: Welcome


async def connect(address: str) -> trio.SocketStream:
    """Open TCP to `address`, translating failures to `ConnectionLost`."""
    host, port = split_address(address)
    try:
        return await trio.open_tcp_stream(host, port)
    except OSError as exc:
        raise ConnectionLost(f"cannot connect to {address}: {exc.strerror or exc}") from None


@asynccontextmanager
async def open_peer(
    address: str,
    *,
    conversation: Conversation,
    key: Ed25519PrivateKey,
    clock: Clock,
    role: PeerRole,
    name: str,
    version: int = 0,
    cert_chain: tuple[bytes, ...] = (),
    features: tuple[str, ...] = (),
    tcp: trio.SocketStream | None = None,
) -> AsyncIterator[PeerStream]:
    """Connect (or use `tcp`, already connected to `address`), say Hello, and yield the
    stream once the server has said Welcome. The stream (and `tcp`) is closed on exit."""
    if tcp is None:
        tcp = await connect(address)
    conn = Connection(
        conversation=conversation,
        our_role=Direction.CLIENT,
        key=key,
        nonce_source=lambda: os.urandom(16),
        window=window_for_speed(clock.speed),
        clock_view=clock_view(clock),
    )
    stream = PeerStream(tcp, conn, clock.now)
    try:
        hello = Hello(
            role=role,
            name=name,
            version=version,
            conversation=conversation,
            cert_chain=cert_chain,
            features=features,
        )
        await stream.send(hello)
        reply = await stream.receive()
        if isinstance(reply, Error):
            raise ServiceError(reply.message, code=reply.error_code, detail=reply.detail)
        assert isinstance(reply, Welcome)
        stream.welcome = reply
        yield stream
    finally:
        await stream.aclose(goodbye="done")
