"""Hostile and reordered input: the decoder only ever raises RemoteProtocolError.

- Random bytes, random frames and correctly signed frames with random bodies, fed in random
  chunks, produce NEED_DATA, PEER_CLOSED or a RemoteProtocolError; never another exception,
  never an endless loop (each loop is bounded by the bytes fed).
- A valid multi-frame conversation cut into random chunks decodes to the same messages.
- Flipping any single byte of a signed frame is detected; an altered message is never
  silently accepted.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tslic.protocol import (
    NEED_DATA,
    PEER_CLOSED,
    REGISTRY,
    Connection,
    Direction,
    ErrorCode,
    Message,
    MessageType,
    RemoteProtocolError,
)
from tslic.protocol.framing import PREFIX
from tslic.protocol.messages import Conversation, Error, rdp
from tslic.protocol.messages import directory as dr

from tests.protocol.helpers import (
    CLIENT_KEY,
    NOW,
    ConnectionPair,
    NonceCounter,
    sample_of,
    seal_frame,
)

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

T = MessageType


def _fresh(conversation: Conversation, role: Direction, state: str = "START") -> Connection:
    pair = ConnectionPair(conversation)
    conn = pair.side(role)
    conn.state = state
    return conn


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def _drain(conn: Connection, chunks: list[bytes], *, eof: bool) -> list[Message]:
    """Feed `chunks` (then EOF), pulling events after each; bounded by the bytes fed."""
    got: list[Message] = []
    for chunk in [*chunks, b""] if eof else chunks:
        conn.receive_data(chunk)
        for _ in range(len(chunk) + 2):  # each message needs at least 5 bytes
            event = conn.next_event(now=NOW)
            if event is NEED_DATA or event is PEER_CLOSED:
                break
            assert isinstance(event, Message)
            got.append(event)
        else:
            raise AssertionError("next_event kept producing events: unbounded loop")
    return got


def _refusal(action: Callable[[], object]) -> RemoteProtocolError | None:
    """Run `action`; return the RemoteProtocolError it raised, if any. Any other exception
    propagates and fails the test."""
    try:
        action()
    except RemoteProtocolError as exc:
        return exc
    return None


def _only_remote_errors(conn: Connection, chunks: list[bytes], *, eof: bool) -> None:
    error = _refusal(lambda: _drain(conn, chunks, eof=eof))
    if error is not None:
        assert isinstance(error.code, ErrorCode)
        assert conn.state == "ERROR"


conversations = st.sampled_from(list(Conversation))
roles = st.sampled_from(list(Direction))
cuts = st.lists(st.integers(min_value=0, max_value=10_000), max_size=12)


@FUZZ
@given(conversations, roles, st.binary(max_size=400), cuts, st.booleans())
def test_random_bytes(
    conversation: Conversation, role: Direction, data: bytes, cut: list[int], eof: bool
) -> None:
    _only_remote_errors(_fresh(conversation, role), _chunks(data, cut), eof=eof)


@FUZZ
@given(conversations, roles, st.lists(st.binary(min_size=1, max_size=120), max_size=4), cuts)
def test_random_frames(
    conversation: Conversation, role: Direction, bodies: list[bytes], cut: list[int]
) -> None:
    data = b"".join(PREFIX.pack(len(b)) + b for b in bodies)
    _only_remote_errors(_fresh(conversation, role), _chunks(data, cut), eof=True)


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=True)
    | st.text(max_size=20)
    | st.binary(max_size=40)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def hostile_bodies(draw: st.DrawFn) -> tuple[int, Any]:
    """A registered type with a body of the right field names but arbitrary values (or an
    arbitrary value altogether), so decoding gets past the signature into the codec."""
    type_ = draw(st.sampled_from(sorted(REGISTRY)))
    cls: type = REGISTRY[type_]  # a registered dataclass (mypy sees only Message)
    names = [f.name for f in dataclasses.fields(cls)]
    shape = draw(st.sampled_from(["fields", "sample-tweak", "anything"]))
    if shape == "anything":
        return type_, draw(values)
    base = {n: draw(values) for n in names} if shape == "fields" else {}
    if shape == "sample-tweak":
        from tslic.protocol.codec import to_wire

        base = to_wire(sample_of(MessageType(type_)))
        if names:
            base[draw(st.sampled_from(names))] = draw(values)
    return type_, base


@FUZZ
@given(
    conversations, roles, st.sampled_from(["START", "READY", "HELLO_SENT"]), hostile_bodies(), cuts
)
def test_signed_frames_with_hostile_bodies(
    conversation: Conversation,
    role: Direction,
    state: str,
    typed_body: tuple[int, Any],
    cut: list[int],
) -> None:
    type_, body = typed_body
    conn = _fresh(conversation, role, state)
    frame = seal_frame(CLIENT_KEY, type_=type_, body=body)
    error = _refusal(lambda: _drain(conn, _chunks(frame, cut), eof=True))
    if error is not None:
        assert isinstance(error.code, ErrorCode)
        assert str(error)  # a message a person can read


# ---- a valid stream in random chunks ----------------------------------------------------

C, S = Direction.CLIENT, Direction.SERVER

SCRIPTS: dict[Conversation, list[tuple[Direction, Message]]] = {
    Conversation.DIRECTORY: [
        (C, sample_of(T.HELLO)),
        (S, sample_of(T.WELCOME)),
        (C, sample_of(T.DIR_QUERY_ENTERPRISE)),
        (S, sample_of(T.DIR_SERVERS)),
        (C, dr.DirLookupComputer(name="NOPE")),
        (S, Error(code=int(ErrorCode.NOT_FOUND), message="no computer NOPE")),
        (C, sample_of(T.DIR_GROUP_MEMBERS)),
        (S, sample_of(T.DIR_GROUP)),
        (C, sample_of(T.DIR_REGISTER)),
        (S, sample_of(T.DIR_ACK)),
        (C, sample_of(T.GOODBYE)),
    ],
    Conversation.RDP: [
        (S, sample_of(T.LICENSE_REQUEST)),
        (C, sample_of(T.NEW_LICENSE_REQUEST)),
        (S, sample_of(T.PLATFORM_CHALLENGE)),
        (C, sample_of(T.PLATFORM_CHALLENGE_RESPONSE)),
        (S, sample_of(T.NEW_LICENSE)),
        (C, sample_of(T.CLIENT_LOGON)),
        (S, sample_of(T.LOGON_COMPLETE)),
        (S, sample_of(T.GOODBYE)),
    ],
}


def _recorded(conversation: Conversation) -> dict[Direction, bytes]:
    """Each side's outgoing bytes when the script is played through a pair."""
    pair = ConnectionPair(conversation)
    out: dict[Direction, bytes] = {C: b"", S: b""}
    for direction, msg in SCRIPTS[conversation]:
        out[direction] += pair.send(direction, msg)
    return out


STREAMS = {conv: _recorded(conv) for conv in SCRIPTS}


def _replay(conversation: Conversation, receiver_role: Direction, chunks: list[bytes]) -> None:
    """Feed one side's recorded stream to a fresh peer that plays the other side of the
    script in between (as a real peer would), and check every decoded message."""
    script = SCRIPTS[conversation]
    conn = Connection(
        conversation=conversation,
        our_role=receiver_role,
        key=ConnectionPair(conversation).side(receiver_role)._key,
        nonce_source=NonceCounter(10**9),
    )
    position = 0

    def play_own_turns() -> None:
        nonlocal position
        while position < len(script) and script[position][0] is receiver_role:
            conn.send(script[position][1], now=NOW)
            position += 1

    play_own_turns()
    for chunk in [*chunks, b""]:
        conn.receive_data(chunk)
        while True:
            event = conn.next_event(now=NOW)
            if event is NEED_DATA or event is PEER_CLOSED:
                break
            assert position < len(script), f"extra message {event!r}"
            assert event == script[position][1]
            position += 1
            play_own_turns()
    assert position == len(script)
    assert conn.state == "CLOSED"


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(SCRIPTS)), roles, cuts)
def test_random_chunkings_of_a_valid_stream(
    conversation: Conversation, receiver_role: Direction, cut: list[int]
) -> None:
    sent_by = C if receiver_role is S else S
    stream = STREAMS[conversation][sent_by]
    _replay(conversation, receiver_role, _chunks(stream, cut))


@pytest.mark.parametrize("conversation", sorted(SCRIPTS))
@pytest.mark.parametrize("receiver_role", list(Direction))
def test_a_valid_stream_one_byte_at_a_time(
    conversation: Conversation, receiver_role: Direction
) -> None:
    stream = STREAMS[conversation][C if receiver_role is S else S]
    _replay(conversation, receiver_role, [stream[i : i + 1] for i in range(len(stream))])


# ---- single-byte alterations ------------------------------------------------------------

DETECTED = {
    ErrorCode.BAD_SIGNATURE,
    ErrorCode.MALFORMED_FRAME,
    ErrorCode.BAD_ENCODING,
    ErrorCode.FRAME_TOO_LARGE,
}

FLIPPED: list[tuple[Conversation, Direction, str, Message]] = [
    (Conversation.LICENSING, C, "START", sample_of(T.HELLO)),
    (Conversation.ADMIN, S, "AWAITING_ADMIN_GET_STATUS", sample_of(T.ADMIN_STATUS)),
    (Conversation.DIRECTORY, S, "AWAITING_DIR_QUERY_ENTERPRISE", sample_of(T.DIR_SERVERS)),
    (Conversation.RDP, S, "START", sample_of(T.LICENSE_REQUEST)),
    (
        Conversation.RDP,
        S,
        "NEW_LICENSE_REQUESTED",
        rdp.ErrorAlert(
            error_code=rdp.RdpError.ERR_NO_LICENSE_SERVER,
            state_transition=rdp.StateTransition.ST_TOTAL_ABORT,
        ),
    ),
]


@pytest.mark.parametrize("mask", [0x01, 0x80, 0xFF], ids=lambda m: f"xor{m:02x}")
@pytest.mark.parametrize(
    ("conversation", "sender", "state", "msg"),
    FLIPPED,
    ids=[f"{type(m).__name__}-{c}" for c, _d, _s, m in FLIPPED],
)
def test_every_single_byte_flip_is_detected(
    conversation: Conversation, sender: Direction, state: str, msg: Message, mask: int
) -> None:
    pair = ConnectionPair(conversation)
    pair.side(sender).state = state
    frame = pair.side(sender).send(msg, now=NOW)
    receiver_role = S if sender is C else C
    # The untouched frame is accepted, so a refusal below is due to the flip alone.
    intact = _fresh(conversation, receiver_role, state)
    intact.receive_data(frame)
    assert intact.next_event(now=NOW) == msg
    waited = 0
    for i in range(len(frame)):
        altered = bytearray(frame)
        altered[i] ^= mask
        conn = _fresh(conversation, receiver_role, state)
        events: list[object] = []

        def feed(
            conn: Connection = conn, data: bytes = bytes(altered), events: list[object] = events
        ) -> None:
            conn.receive_data(data)
            for _ in range(2):  # a shortened length prefix can leave a second "frame"
                events.append(conn.next_event(now=NOW))
                if events[-1] is NEED_DATA:
                    break

        error = _refusal(feed)
        assert not any(isinstance(e, Message) for e in events), f"byte {i} altered, accepted"
        if error is None:
            assert events[-1] is NEED_DATA
            waited += 1
        else:
            assert error.code in DETECTED, (i, error)
    assert waited <= 4  # only a lengthened prefix leaves the decoder waiting
