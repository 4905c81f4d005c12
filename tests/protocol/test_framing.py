"""Framing refusals, each with its documented wire code: length zero and length over the
maximum (judged from the prefix alone, before any of the body is buffered), the exact maximum,
EOF inside a frame versus between frames, and a send whose bytes never left.
"""

from __future__ import annotations

import pytest
from tslic.protocol import (
    NEED_DATA,
    PEER_CLOSED,
    Connection,
    ErrorCode,
    LocalProtocolError,
    MessageType,
    RemoteProtocolError,
)
from tslic.protocol.framing import PREFIX, FrameDecoder, encode_frame
from tslic.protocol.messages import Conversation

from tests.protocol.helpers import CLIENT_KEY, NOW, ConnectionPair, sample_of, seal_frame, wire_body

T = MessageType


def server(max_frame: int = 64 * 1024) -> Connection:
    return ConnectionPair(Conversation.LICENSING, max_frame=max_frame).server


def hello_frame() -> bytes:
    return seal_frame(CLIENT_KEY, type_=T.HELLO, body=wire_body(sample_of(T.HELLO)))


def test_length_zero_is_refused_at_the_prefix() -> None:
    conn = server()
    with pytest.raises(RemoteProtocolError) as info:
        conn.receive_data(PREFIX.pack(0))
    assert info.value.code is ErrorCode.MALFORMED_FRAME
    assert conn.state == "ERROR"


@pytest.mark.parametrize("max_frame", [64 * 1024, 100])
def test_length_over_max_is_refused_before_the_body(max_frame: int) -> None:
    decoder = FrameDecoder(max_frame=max_frame)
    decoder.feed(PREFIX.pack(max_frame)[:3])  # not yet judged
    with pytest.raises(RemoteProtocolError) as info:
        decoder.feed(PREFIX.pack(max_frame + 1)[3:])
    assert info.value.code is ErrorCode.FRAME_TOO_LARGE
    assert str(max_frame) in info.value.message
    conn = server(max_frame=max_frame)
    with pytest.raises(RemoteProtocolError):
        conn.receive_data(PREFIX.pack(max_frame + 1))  # nothing of the body was sent
    assert conn.state == "ERROR"


def test_exactly_max_frame_is_accepted() -> None:
    decoder = FrameDecoder(max_frame=10)
    decoder.feed(encode_frame(b"0123456789", max_frame=10))
    assert decoder.next_frame() == b"0123456789"
    with pytest.raises(LocalProtocolError) as info:
        encode_frame(b"0123456789A", max_frame=10)
    assert info.value.code is ErrorCode.FRAME_TOO_LARGE
    with pytest.raises(LocalProtocolError):
        encode_frame(b"")


def test_a_message_too_big_for_the_frame_cannot_be_sent() -> None:
    pair = ConnectionPair(Conversation.LICENSING, max_frame=200)
    with pytest.raises(LocalProtocolError) as info:
        pair.client.send(sample_of(T.HELLO), now=NOW)  # its chain is far over 200 bytes
    assert info.value.code is ErrorCode.FRAME_TOO_LARGE
    assert pair.client.state == "START"  # nothing was sent; a smaller message may follow


@pytest.mark.parametrize("cut", [1, 3, 4, 10, -1])
def test_eof_inside_a_frame(cut: int) -> None:
    conn = server()
    conn.receive_data(hello_frame()[:cut])
    assert conn.next_event(now=NOW) is NEED_DATA
    conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError) as info:
        conn.next_event(now=NOW)
    assert info.value.code is ErrorCode.MALFORMED_FRAME
    assert "closed inside a frame" in info.value.message


def test_eof_between_frames_is_clean() -> None:
    conn = server()
    conn.receive_data(hello_frame())
    conn.receive_data(b"")
    assert conn.next_event(now=NOW) == sample_of(T.HELLO)
    assert conn.next_event(now=NOW) is PEER_CLOSED
    assert conn.state == "CLOSED"
    # Data after EOF is a caller bug; it is reported as a protocol error, not a crash.
    with pytest.raises(RemoteProtocolError) as info:
        conn.receive_data(b"more")
    assert info.value.code is ErrorCode.ILLEGAL_STATE


def test_send_failed_moves_to_error() -> None:
    pair = ConnectionPair(Conversation.DIRECTORY)
    pair.client.send(sample_of(T.HELLO), now=NOW)
    pair.client.send_failed()
    assert pair.client.state == "ERROR"
    assert pair.client.error is not None
    assert pair.client.error.code is ErrorCode.CONNECTION_LOST
