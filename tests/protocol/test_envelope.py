"""The envelope and codec refusals, each with its documented wire code.

Replay, freshness at the exact window boundary, sender binding, version, type, conversation,
field validation (INVALID_FIELD naming the field), hostile msgpack (BAD_ENCODING) and
ReplayGuard's bounded memory. Framing refusals are in test_framing.py."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from tslic.protocol import (
    Connection,
    Direction,
    ErrorCode,
    LocalProtocolError,
    MessageType,
    RemoteProtocolError,
)
from tslic.protocol.codec import MAX_ARRAY, MAX_DEPTH, MAX_MAP, pack
from tslic.protocol.domain import PeerRole
from tslic.protocol.envelope import (
    DEFAULT_WINDOW_MS,
    ReplayGuard,
    check_freshness,
    open_envelope,
    public_key,
)
from tslic.protocol.framing import PREFIX
from tslic.protocol.messages import Conversation, Hello

from tests.protocol.helpers import (
    CLIENT_KEY,
    CLIENT_PUB,
    NOW,
    OTHER_KEY,
    SERVER_KEY,
    ConnectionPair,
    sample_of,
    seal_frame,
    seal_inner,
    wire_body,
)

T = MessageType
W = DEFAULT_WINDOW_MS
HELLO_BODY = wire_body(sample_of(T.HELLO))


def server(conversation: Conversation = Conversation.LICENSING, **kw: Any) -> Connection:
    conn = ConnectionPair(conversation, **kw).server
    return conn


def feed_and_pull(conn: Connection, data: bytes, now: int) -> object:
    # Some errors surface in receive_data (a bad length prefix), the rest in next_event.
    conn.receive_data(data)
    return conn.next_event(now=now)


def refused(conn: Connection, data: bytes, *, now: int = NOW) -> RemoteProtocolError:
    """Feed `data`; return the RemoteProtocolError it must cause (conn ends in ERROR)."""
    with pytest.raises(RemoteProtocolError) as info:
        feed_and_pull(conn, data, now)
    assert conn.state == "ERROR"
    assert conn.error is not None
    return info.value


def hello_frame(**kw: Any) -> bytes:
    return seal_frame(CLIENT_KEY, type_=T.HELLO, body=kw.pop("body", HELLO_BODY), **kw)


def test_a_good_hello_is_accepted() -> None:
    conn = server()
    conn.receive_data(hello_frame())
    assert conn.next_event(now=NOW) == sample_of(T.HELLO)
    assert conn.peer_key == CLIENT_PUB


# ---- replay and freshness -----------------------------------------------------------------


def test_replayed_nonce() -> None:
    pair = ConnectionPair(Conversation.DIRECTORY)
    pair.drive_to("READY")
    frame = pair.client.send(sample_of(T.DIR_QUERY_ENTERPRISE), now=NOW)
    pair.server.receive_data(frame)
    pair.server.next_event(now=NOW)
    pair.server.send(sample_of(T.DIR_SERVERS), now=NOW)
    err = refused(pair.server, frame)  # the same bytes again
    assert err.code is ErrorCode.REPLAYED_MESSAGE


def test_replay_is_judged_by_nonce_not_bytes() -> None:
    conn = server()
    conn.receive_data(hello_frame(msg_id=1))
    conn.next_event(now=NOW)
    # Different id and content, same nonce: still a replay.
    err = refused(conn, hello_frame(msg_id=2, body={**HELLO_BODY, "name": "TS2"}))
    assert err.code is ErrorCode.REPLAYED_MESSAGE


@pytest.mark.parametrize(
    ("timestamp", "code"),
    [
        (NOW - W, None),
        (NOW + W, None),
        (NOW - W - 1, ErrorCode.STALE_TIMESTAMP),
        (NOW + W + 1, ErrorCode.FUTURE_TIMESTAMP),
    ],
    ids=["exactly-stale-edge", "exactly-future-edge", "1ms-too-old", "1ms-too-new"],
)
def test_freshness_window_boundary(timestamp: int, code: ErrorCode | None) -> None:
    conn = server()
    frame = hello_frame(timestamp=timestamp)
    if code is None:
        conn.receive_data(frame)
        assert conn.next_event(now=NOW) == sample_of(T.HELLO)
    else:
        err = refused(conn, frame)
        assert err.code is code
        assert "window" in err.message


def test_freshness_follows_the_configured_window() -> None:
    conn = server(window=1000)
    assert refused(conn, hello_frame(timestamp=NOW - 1001)).code is ErrorCode.STALE_TIMESTAMP
    check_freshness(NOW - 1000, NOW, 1000)  # at the edge: accepted


# ---- envelope header ------------------------------------------------------------------------


def test_wrong_sender_mid_connection() -> None:
    pair = ConnectionPair(Conversation.DIRECTORY)
    pair.drive_to("READY")
    body = wire_body(sample_of(T.DIR_QUERY_ENTERPRISE))
    forged = seal_frame(OTHER_KEY, type_=T.DIR_QUERY_ENTERPRISE, body=body, msg_id=2)
    err = refused(pair.server, forged)
    assert err.code is ErrorCode.WRONG_SENDER


def test_unsupported_version() -> None:
    err = refused(server(), hello_frame(version=2))
    assert err.code is ErrorCode.UNSUPPORTED_VERSION
    assert "2" in err.message


def test_unknown_message_type() -> None:
    err = refused(server(), seal_frame(CLIENT_KEY, type_=0x7FE, body={}))
    assert err.code is ErrorCode.UNKNOWN_MESSAGE_TYPE
    assert "0x7fe" in err.message


def test_message_of_another_conversation() -> None:
    conn = server(Conversation.ADMIN)
    body = wire_body(sample_of(T.DIR_QUERY_ENTERPRISE))
    err = refused(conn, seal_frame(CLIENT_KEY, type_=T.DIR_QUERY_ENTERPRISE, body=body))
    assert err.code is ErrorCode.ILLEGAL_STATE
    # Refused for its conversation (before its fields are even read), not for the state.
    assert "is not part of the admin conversation" in err.message


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ({"msg_id": -1}, ErrorCode.INVALID_FIELD),
        ({"reply_to": True}, ErrorCode.INVALID_FIELD),
        ({"timestamp": "now"}, ErrorCode.INVALID_FIELD),
        ({"nonce": b"short"}, ErrorCode.INVALID_FIELD),
        ({"body": [1, 2]}, ErrorCode.INVALID_FIELD),
        ({"version": "1"}, ErrorCode.UNSUPPORTED_VERSION),
    ],
    ids=["negative-id", "bool-reply-to", "str-timestamp", "short-nonce", "list-body", "str-ver"],
)
def test_bad_header_fields(header: dict[str, Any], code: ErrorCode) -> None:
    assert refused(server(), hello_frame(**header)).code is code


def test_bad_outer_shapes() -> None:
    sig = CLIENT_KEY.sign(b"x")
    cases = [
        (pack([CLIENT_PUB, b"inner"]), ErrorCode.MALFORMED_FRAME),
        (pack({"sender": CLIENT_PUB}), ErrorCode.MALFORMED_FRAME),
        (pack([CLIENT_PUB[:31], b"inner", sig]), ErrorCode.MALFORMED_FRAME),
        (pack([CLIENT_PUB, "inner", sig]), ErrorCode.MALFORMED_FRAME),
        (pack([CLIENT_PUB, b"inner", sig[:63]]), ErrorCode.BAD_SIGNATURE),
        (pack([CLIENT_PUB, b"inner", sig]), ErrorCode.BAD_SIGNATURE),
        (pack([b"\xff" * 32, b"inner", sig]), ErrorCode.BAD_SIGNATURE),  # not a curve point
    ]
    for body, code in cases:
        with pytest.raises(RemoteProtocolError) as info:
            open_envelope(body)
        assert info.value.code is code, body
    with pytest.raises(RemoteProtocolError) as bad_key:
        public_key(b"\x00" * 31)
    assert bad_key.value.code is ErrorCode.BAD_SIGNATURE


def test_signed_inner_that_is_not_a_header() -> None:
    err = refused(server(), seal_inner(CLIENT_KEY, pack([1, 2, 3])))
    assert err.code is ErrorCode.MALFORMED_FRAME


# ---- fields ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": None}, "name"),  # wrong type
        ({"version": "2003"}, "version"),  # wrong type
        ({"version": True}, "version"),  # bool is not an int here
        ({"version": 1999}, "version"),  # right type, forbidden value
        ({"role": "wizard"}, "role"),  # invalid enum value
        ({"conversation": 7}, "conversation"),  # enum of the wrong base type
        ({"cert_chain": ["text"]}, "cert_chain[0]"),  # wrong element type
        ({"features": "per-user"}, "features"),  # str is not an array
        ({"extra_field": 1}, "extra_field"),  # extra field
    ],
)
def test_invalid_field_names_the_field(change: dict[str, Any], field: str) -> None:
    err = refused(server(), hello_frame(body={**HELLO_BODY, **change}))
    assert err.code is ErrorCode.INVALID_FIELD
    assert err.detail["field"] == field
    assert field in err.message


@pytest.mark.parametrize(
    ("field", "value"),
    [("server_time", True), ("max_frame", 1.5), ("name", b"DIR"), ("features", [1])],
)
def test_scalars_are_exact_types(field: str, value: Any) -> None:
    # bool is an int subclass and bytes/str are distinct on the wire: none may stand in.
    conn = ConnectionPair(Conversation.DIRECTORY).client
    conn.state = "HELLO_SENT"
    body = {**wire_body(sample_of(T.WELCOME)), field: value}
    err = refused(conn, seal_frame(SERVER_KEY, type_=T.WELCOME, body=body))
    assert err.code is ErrorCode.INVALID_FIELD
    assert str(err.detail["field"]).startswith(field)


def test_missing_field_names_the_field() -> None:
    body = {k: v for k, v in HELLO_BODY.items() if k != "role"}
    err = refused(server(), hello_frame(body=body))
    assert err.code is ErrorCode.INVALID_FIELD
    assert err.detail["field"] == "role"
    assert "missing" in err.message


def test_invalid_nested_record_field() -> None:
    conn = ConnectionPair(Conversation.ADMIN).client
    conn.state = "AWAITING_ADMIN_GET_STATUS"
    body = wire_body(sample_of(T.ADMIN_STATUS))
    body["status"]["contact"]["email"] = 5
    err = refused(conn, seal_frame(SERVER_KEY, type_=T.ADMIN_STATUS, body=body))
    assert err.code is ErrorCode.INVALID_FIELD
    assert err.detail["field"] == "email"
    assert "email" in err.message


def test_building_an_invalid_message_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError) as info:
        Hello(
            role=PeerRole.TERMINAL_SERVER,
            name="",
            version=2003,
            conversation=Conversation.LICENSING,
        )
    assert info.value.code is ErrorCode.INVALID_FIELD
    assert info.value.detail["field"] == "name"


# ---- hostile msgpack --------------------------------------------------------------------------


def _inner_with_raw_body(raw_body: bytes) -> bytes:
    """A 7-item header whose body is the given (possibly invalid) msgpack bytes."""
    head = [1, int(T.HELLO), 1, 0, b"\x00" * 15 + b"\x07", NOW]
    return b"\x97" + b"".join(pack(v) for v in head) + raw_body


def _nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "inner",
    [
        _inner_with_raw_body(pack({"name": msgpack.ExtType(5, b"x")})),
        _inner_with_raw_body(b"\x81\xa4name\xd6\xff" + b"\x00" * 4),  # timestamp ext (-1)
        _inner_with_raw_body(b"\x81\xa4name\xa2\xff\xfe"),  # invalid UTF-8
        _inner_with_raw_body(b"\x81\xa2\xc3\x28\x01"),  # invalid UTF-8 in a key
        _inner_with_raw_body(pack({"name": _nested(MAX_DEPTH + 2)})),
        _inner_with_raw_body(b"\x81\xa4name" + b"\x91" * 5000 + b"\x00"),  # past msgpack's stack
        _inner_with_raw_body(pack({"name": list(range(MAX_ARRAY + 1))})),
        _inner_with_raw_body(pack({f"k{i}": i for i in range(MAX_MAP + 1)})),
        _inner_with_raw_body(b"\x81\x01\x02"),  # int map key
        _inner_with_raw_body(pack(HELLO_BODY) + b"\x00"),  # trailing bytes after the header
        _inner_with_raw_body(b"\xc1"),  # never-used msgpack byte
        _inner_with_raw_body(b"\x81\xa4name"),  # truncated
    ],
    ids=[
        "ext-type",
        "timestamp-ext",
        "utf8",
        "utf8-key",
        "deep-nesting",
        "very-deep-nesting",
        "big-array",
        "big-map",
        "int-key",
        "trailing",
        "reserved-byte",
        "truncated",
    ],
)
def test_hostile_msgpack_is_bad_encoding(inner: bytes) -> None:
    err = refused(server(), seal_inner(CLIENT_KEY, inner))
    assert err.code is ErrorCode.BAD_ENCODING
    assert "Traceback" not in err.message


def test_trailing_bytes_after_the_outer_array() -> None:
    frame = hello_frame()
    body = frame[4:] + b"\x00"
    err = refused(server(), PREFIX.pack(len(body)) + body)
    assert err.code is ErrorCode.BAD_ENCODING


# ---- ReplayGuard memory ----------------------------------------------------------------------


def test_replay_guard_forgets_after_two_windows() -> None:
    guard = ReplayGuard(window=1000)
    guard.check(b"k", b"n1", NOW, NOW)
    guard.check(b"k", b"n2", NOW + 2000, NOW + 2000)  # exactly two windows later: still kept
    assert len(guard) == 2
    guard.check(b"k", b"n3", NOW + 2001, NOW + 2001)  # n1 is now beyond 2 windows
    assert len(guard) == 2
    # The forgotten nonce cannot be replayed anyway: its timestamp is stale by now.
    with pytest.raises(RemoteProtocolError) as info:
        guard.check(b"k", b"n1", NOW, NOW + 2001)
    assert info.value.code is ErrorCode.STALE_TIMESTAMP
    with pytest.raises(RemoteProtocolError) as replay:
        guard.check(b"k", b"n3", NOW + 2001, NOW + 2002)
    assert replay.value.code is ErrorCode.REPLAYED_MESSAGE
    guard.check(b"other-sender", b"n3", NOW + 2001, NOW + 2002)  # another sender: accepted


def test_replay_guard_memory_is_bounded_by_the_rate() -> None:
    guard = ReplayGuard(window=1000)
    # 10 messages per ms for 10 windows: memory holds about 2 windows' worth, not all.
    peak = 0
    for t in range(0, 10_000, 10):
        for i in range(10):
            guard.check(b"k", t.to_bytes(4, "big") + bytes([i]), NOW + t, NOW + t)
        peak = max(peak, len(guard))
    assert peak <= 10 * (2 * 1000 // 10 + 2)
    assert len(guard) < 10_000 // 10 * 10  # most entries were dropped


def test_replay_guard_capacity_is_a_hard_ceiling() -> None:
    guard = ReplayGuard(window=W, capacity=5)
    for i in range(20):
        guard.check(b"k", bytes([i]), NOW, NOW)
    assert len(guard) == 5


def test_connection_shares_a_guard_across_connections() -> None:
    guard = ReplayGuard()
    frame = hello_frame()
    first = Connection(
        conversation=Conversation.LICENSING,
        our_role=Direction.SERVER,
        key=OTHER_KEY,
        nonce_source=lambda: b"\x00" * 16,
        replay_guard=guard,
    )
    first.receive_data(frame)
    first.next_event(now=NOW)
    second = Connection(
        conversation=Conversation.LICENSING,
        our_role=Direction.SERVER,
        key=OTHER_KEY,
        nonce_source=lambda: b"\x00" * 16,
        replay_guard=guard,
    )
    # A Hello captured on one connection and replayed on another is still a replay.
    assert refused(second, frame).code is ErrorCode.REPLAYED_MESSAGE
