"""Every registered message round-trips through a real pair of Connections.

For each message (and each variant that steers a state table), in each conversation that
carries it and each direction some state admits it, the pair is driven along the shortest
table path (BFS over states.TRANSITIONS) to a state where the message is legal, then the
message is sent: fed whole, one byte at a time, and followed by trailing bytes.
"""

from __future__ import annotations

import msgpack
import pytest
from tslic.protocol import (
    NEED_DATA,
    REGISTRY,
    Direction,
    ErrorCode,
    Message,
    MessageType,
    RemoteProtocolError,
    raw_public,
)
from tslic.protocol.codec import from_wire, to_wire, unpack_untrusted
from tslic.protocol.framing import PREFIX
from tslic.protocol.messages import Conversation, Error
from tslic.protocol.states import next_state

from tests.protocol.helpers import (
    SERVER_KEY,
    ConnectionPair,
    all_variants,
    path_to,
    reachable_states,
    sample_messages,
    seal_frame,
)

Case = tuple[Message, Conversation, Direction, str]


def _cases() -> list[Case]:
    cases: list[Case] = []
    for msg in all_variants():
        for conversation in sorted(msg.CONVERSATIONS):
            for direction in Direction:
                legal = [
                    s
                    for s in reachable_states(conversation)
                    if next_state(conversation, s, direction, msg.TYPE, msg.variant()) is not None
                ]
                if legal:
                    best = min(legal, key=lambda s: len(path_to(conversation, s)))
                    cases.append((msg, conversation, direction, best))
    return cases


CASES = _cases()
IDS = [
    f"{type(m).__name__}-{m.variant() or 'any'}-{c}-{d}".replace("_", "") for m, c, d, _ in CASES
]


def test_samples_cover_the_whole_registry() -> None:
    samples = sample_messages()
    assert {type(m) for m in samples} == set(REGISTRY.values())
    assert len(samples) == len(REGISTRY)  # one each, no duplicates


def test_every_message_is_legal_somewhere() -> None:
    # A registered message that no state of any conversation admits could never be sent.
    covered = {type(m) for m, _c, _d, _s in CASES}
    assert covered == set(REGISTRY.values())
    # Both request/response sides and both RDP sides are exercised.
    assert {(c, d) for _m, c, d, _s in CASES} == {(c, d) for c in Conversation for d in Direction}


@pytest.mark.parametrize("msg", sample_messages(), ids=lambda m: type(m).__name__)
def test_codec_round_trip(msg: Message) -> None:
    wire = msgpack.packb(to_wire(msg), use_bin_type=True)
    assert from_wire(type(msg), unpack_untrusted(wire)) == msg


def _ready(case: Case) -> tuple[ConnectionPair, Message, Direction]:
    msg, conversation, direction, state = case
    pair = ConnectionPair(conversation)
    pair.drive_to(state)
    return pair, msg, direction


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_whole_frame(case: Case) -> None:
    pair, msg, direction = _ready(case)
    before = pair.side(direction).state
    pair.send(direction, msg)  # asserts the peer decodes exactly msg
    expected = next_state(pair.conversation, before, direction, msg.TYPE, msg.variant())
    assert pair.client.state == pair.server.state == expected
    receiver = pair.peer(direction)
    assert receiver.last_received is not None
    assert receiver.last_received.sender == raw_public(pair.side(direction)._key)
    assert receiver.frames_in >= 1


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_one_byte_at_a_time(case: Case) -> None:
    pair, msg, direction = _ready(case)
    sender, receiver = pair.side(direction), pair.peer(direction)
    frame = sender.send(msg, now=pair.now)
    for i in range(len(frame) - 1):
        receiver.receive_data(frame[i : i + 1])
        assert receiver.next_event(now=pair.now) is NEED_DATA
    receiver.receive_data(frame[-1:])
    assert receiver.next_event(now=pair.now) == msg
    assert receiver.next_event(now=pair.now) is NEED_DATA
    assert receiver.state == sender.state


def _follow_up(pair: ConnectionPair, direction: Direction) -> bytes:
    """A fatal Error frame from the same sender, with a nonce and id not used before."""
    key = pair.side(direction)._key
    body = {"code": int(ErrorCode.ILLEGAL_STATE), "message": "bye", "detail": {}}
    return seal_frame(key, type_=MessageType.ERROR, body=body, msg_id=999, nonce=b"\xee" * 16)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_trailing_frame_stays_buffered(case: Case) -> None:
    pair, msg, direction = _ready(case)
    sender, receiver = pair.side(direction), pair.peer(direction)
    frame = sender.send(msg, now=pair.now)
    follow = _follow_up(pair, direction)
    cut = len(follow) // 2
    receiver.receive_data(frame + follow[:cut])
    assert receiver.next_event(now=pair.now) == msg
    assert receiver.next_event(now=pair.now) is NEED_DATA  # half a frame: wait for the rest
    receiver.receive_data(follow[cut:])
    legal = next_state(pair.conversation, receiver.state, direction, MessageType.ERROR, "fatal")
    if legal is not None:
        got = receiver.next_event(now=pair.now)
        assert isinstance(got, Error)
        assert got.code == ErrorCode.ILLEGAL_STATE
        assert receiver.state == legal
    else:
        # After a closing message nothing more may come; the buffered frame is judged intact
        # (it gets as far as the state table) and refused there.
        with pytest.raises(RemoteProtocolError) as info:
            receiver.next_event(now=pair.now)
        assert info.value.code is ErrorCode.ILLEGAL_STATE


@pytest.mark.parametrize(
    ("garbage", "code"),
    [
        (PREFIX.pack(3) + b"\xc1\xc1\xc1", ErrorCode.BAD_ENCODING),
        (PREFIX.pack(0), ErrorCode.MALFORMED_FRAME),
        (PREFIX.pack(10**9), ErrorCode.FRAME_TOO_LARGE),
    ],
    ids=["bad-msgpack", "zero-length", "too-large"],
)
@pytest.mark.parametrize(
    "case", CASES[:: max(1, len(CASES) // 12)], ids=IDS[:: max(1, len(CASES) // 12)]
)
def test_garbage_after_a_good_frame_is_judged_next_call(
    case: Case, garbage: bytes, code: ErrorCode
) -> None:
    pair, msg, direction = _ready(case)
    sender, receiver = pair.side(direction), pair.peer(direction)
    receiver.receive_data(sender.send(msg, now=pair.now) + garbage)
    assert receiver.next_event(now=pair.now) == msg  # the good frame is not lost
    with pytest.raises(RemoteProtocolError) as info:
        receiver.next_event(now=pair.now)
    assert info.value.code is code
    assert receiver.state == "ERROR"
    # Fail fast afterwards, with the same error.
    with pytest.raises(RemoteProtocolError) as again:
        receiver.next_event(now=pair.now)
    assert again.value.code is code


def test_signed_by_the_expected_keys() -> None:
    pair = ConnectionPair(Conversation.DIRECTORY)
    pair.drive_to("READY")
    assert pair.client.peer_key == raw_public(SERVER_KEY)
    assert pair.server.peer_key == pair.client.our_key
