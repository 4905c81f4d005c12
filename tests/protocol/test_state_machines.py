"""Every (state × direction × message) of every conversation, exhaustively (the h2 pattern).

For each conversation, each state (reachable ones, reached by a BFS path, plus ERROR), each
direction and each message variant in the registry, the event is either a documented
transition (next_state is not None: send succeeds and both sides land in that state) or it
is refused with ILLEGAL_STATE, locally on send and remotely on receive, and the refusing side
is left in ERROR. Messages of another conversation are refused the same way.
"""

from __future__ import annotations

import pytest
from tslic.protocol import (
    Connection,
    Direction,
    ErrorCode,
    LocalProtocolError,
    Message,
    RemoteProtocolError,
)
from tslic.protocol.codec import to_wire
from tslic.protocol.messages import Conversation, MessageType
from tslic.protocol.states import (
    ERROR,
    REPLIES,
    TRANSITIONS,
    awaiting,
    legal_events,
    mermaid,
    next_state,
)

from tests.protocol.helpers import ConnectionPair, all_variants, reachable_states, seal_frame

VARIANTS = all_variants()


def _forged(sender: Connection, msg: Message, serial: int) -> bytes:
    """A correctly signed frame of `msg` from `sender`'s key, bypassing its state check."""
    return seal_frame(
        sender._key,
        type_=int(msg.TYPE),
        body=to_wire(msg),
        msg_id=1000 + serial,
        nonce=(10**6 + serial).to_bytes(16, "big"),
    )


@pytest.mark.parametrize("conversation", list(Conversation))
def test_every_event_in_every_state(conversation: Conversation) -> None:
    states = [*reachable_states(conversation), ERROR]
    assert set(states) == set(TRANSITIONS[conversation])  # no unreachable table rows
    serial = 0
    documented = refused = 0
    for state in states:
        if state != ERROR:  # ERROR is reached only by a failure (see the test below)
            ConnectionPair(conversation).drive_to(state)  # reachable by real traffic
        for direction in Direction:
            for msg in VARIANTS:
                serial += 1
                target = None
                if conversation in msg.CONVERSATIONS:
                    target = next_state(conversation, state, direction, msg.TYPE, msg.variant())
                # Fresh connections in the same state (the h2 pattern sets state directly;
                # the pair above proved the state is reachable by real traffic).
                pair = ConnectionPair(conversation)
                sender, receiver = pair.side(direction), pair.peer(direction)
                sender.state = receiver.state = state
                receiver.peer_key = sender.our_key
                if target is not None:
                    documented += 1
                    frame = sender.send(msg, now=pair.now)
                    assert sender.state == target
                    if state != ERROR:
                        receiver.receive_data(frame)
                        assert receiver.next_event(now=pair.now) == msg
                        assert receiver.state == target
                    continue
                refused += 1
                with pytest.raises(LocalProtocolError) as local:
                    sender.send(msg, now=pair.now)
                assert local.value.code is ErrorCode.ILLEGAL_STATE, (state, direction, msg)
                assert sender.state == ERROR
                if state == ERROR:
                    continue  # receiving in ERROR fails fast; tested separately
                receiver.receive_data(_forged(sender, msg, serial))
                with pytest.raises(RemoteProtocolError) as remote:
                    receiver.next_event(now=pair.now)
                assert remote.value.code is ErrorCode.ILLEGAL_STATE, (state, direction, msg)
                assert receiver.state == ERROR
    assert documented > 0
    assert refused > documented


def test_error_state_fails_fast_but_may_still_say_why() -> None:
    pair = ConnectionPair(Conversation.DIRECTORY)
    with pytest.raises(RemoteProtocolError) as first:
        # A zero-length frame is judged as soon as its prefix arrives.
        pair.client.receive_data(b"\x00\x00\x00\x00")
    assert first.value.code is ErrorCode.MALFORMED_FRAME
    assert pair.client.state == ERROR
    assert pair.client.error is first.value
    for _ in range(3):
        with pytest.raises(RemoteProtocolError) as again:
            pair.client.next_event(now=pair.now)
        assert again.value.code is first.value.code
    pair.client.receive_data(b"anything")  # ignored once in ERROR
    fatal = next(m for m in VARIANTS if m.variant() == "fatal")
    assert pair.client.send(fatal, now=pair.now)  # the documented way out of ERROR
    assert pair.client.state == "CLOSED"


def test_legal_events_and_mermaid_agree_with_the_table() -> None:
    for conversation in Conversation:
        diagram = mermaid(conversation)
        for state, row in TRANSITIONS[conversation].items():
            assert set(legal_events(conversation, state)) == set(row)
            for (_d, type_, _v), target in row.items():
                assert f"{state} --> {target}:" in diagram
                assert type_.name in diagram


# ---- the tables themselves, against the documented flows ----------------------------------
# The exhaustive test above proves Connection obeys the table; these pin the table to the
# protocol as documented (who may send what, no pipelining, MS-RDPELE's alert transitions),
# so a wrong table entry cannot pass just because Connection follows it faithfully.

T = MessageType
C, S = Direction.CLIENT, Direction.SERVER
OPENING = {T.HELLO, T.GOODBYE, T.ERROR}
RDP_CLIENT_SENDS = {
    T.NEW_LICENSE_REQUEST,
    T.LICENSE_INFO,
    T.PLATFORM_CHALLENGE_RESPONSE,
    T.CLIENT_LOGON,
    T.ERROR_ALERT,
    T.GOODBYE,
    T.ERROR,
}


@pytest.mark.parametrize("conversation", sorted(REPLIES))
def test_request_reply_tables_send_the_right_way(conversation: Conversation) -> None:
    requests = set(REPLIES[conversation])
    replies = {r for rs in REPLIES[conversation].values() for r in rs}
    for state, row in TRANSITIONS[conversation].items():
        for direction, type_, variant in row:
            if direction is C:
                assert type_ in requests | OPENING, (state, type_)
                if type_ is T.ERROR:
                    assert variant == "fatal"  # a client never "refuses" a server
            else:
                assert type_ in replies | {T.WELCOME, T.ERROR, T.GOODBYE}, (state, type_)
    for request, answers in REPLIES[conversation].items():
        waiting = awaiting(request)
        assert next_state(conversation, "READY", C, request, None) == waiting
        # No pipelining: nothing from the client while a reply is outstanding but a fatal
        # Error; and only this request's reply types (or a refusal) answer it.
        assert {t for d, t, _v in legal_events(conversation, waiting) if d is C} == {T.ERROR}
        for reply in replies:
            expected = "READY" if reply in answers else None
            assert next_state(conversation, waiting, S, reply, None) == expected
        assert next_state(conversation, waiting, S, T.ERROR, "refusal") == "READY"
        assert next_state(conversation, waiting, S, T.GOODBYE, None) == "CLOSED"
        assert next_state(conversation, "READY", S, request, None) is None
    assert next_state(conversation, "START", C, T.HELLO, None) == "HELLO_SENT"
    assert next_state(conversation, "HELLO_SENT", S, T.WELCOME, None) == "READY"
    assert next_state(conversation, "HELLO_SENT", S, T.ERROR, "refusal") == "CLOSED"
    assert next_state(conversation, "START", S, T.WELCOME, None) is None


def test_rdp_table_follows_ms_rdpele() -> None:
    rdp = Conversation.RDP
    for state, row in TRANSITIONS[rdp].items():
        for direction, type_, variant in row:
            if direction is C:
                assert type_ in RDP_CLIENT_SENDS, (state, type_)
                if type_ is T.ERROR_ALERT:
                    assert variant == "ST_TOTAL_ABORT"  # a client alert only aborts
            else:
                assert type_ not in RDP_CLIENT_SENDS - {T.ERROR_ALERT, T.GOODBYE, T.ERROR}
    flow = [
        ("START", S, T.LICENSE_REQUEST, None, "LICENSE_REQUESTED"),
        ("LICENSE_REQUESTED", C, T.NEW_LICENSE_REQUEST, None, "NEW_LICENSE_REQUESTED"),
        ("LICENSE_REQUESTED", C, T.LICENSE_INFO, None, "LICENSE_INFO_PRESENTED"),
        ("NEW_LICENSE_REQUESTED", S, T.PLATFORM_CHALLENGE, None, "CHALLENGED_NEW"),
        ("LICENSE_INFO_PRESENTED", S, T.PLATFORM_CHALLENGE, None, "CHALLENGED_UPGRADE"),
        ("CHALLENGED_NEW", C, T.PLATFORM_CHALLENGE_RESPONSE, None, "RESPONDED_NEW"),
        ("RESPONDED_NEW", S, T.NEW_LICENSE, None, "LICENSED"),
        ("RESPONDED_UPGRADE", S, T.UPGRADE_LICENSE, None, "LICENSED"),
        ("RESPONDED_NEW", S, T.UPGRADE_LICENSE, None, None),  # new and upgrade do not mix
        ("RESPONDED_UPGRADE", S, T.NEW_LICENSE, None, None),
        # dwStateTransition of a server alert (RDPELE 3.1.5.2)
        ("NEW_LICENSE_REQUESTED", S, T.ERROR_ALERT, "ST_NO_TRANSITION", "LICENSED"),
        ("NEW_LICENSE_REQUESTED", S, T.ERROR_ALERT, "ST_TOTAL_ABORT", "ABORTED"),
        ("NEW_LICENSE_REQUESTED", S, T.ERROR_ALERT, "ST_RESET_PHASE_TO_START", "START"),
        ("NEW_LICENSE_REQUESTED", S, T.ERROR_ALERT, "ST_RESEND_LAST_MESSAGE", "LICENSE_REQUESTED"),
        ("RESPONDED_NEW", S, T.ERROR_ALERT, "ST_RESEND_LAST_MESSAGE", "CHALLENGED_NEW"),
        ("RESPONDED_UPGRADE", S, T.ERROR_ALERT, "ST_RESEND_LAST_MESSAGE", "CHALLENGED_UPGRADE"),
        ("CHALLENGED_NEW", C, T.ERROR_ALERT, "ST_TOTAL_ABORT", "ABORTED"),
        ("CHALLENGED_NEW", C, T.ERROR_ALERT, "ST_NO_TRANSITION", None),
        ("LICENSED", C, T.CLIENT_LOGON, None, "LOGGING_ON"),
        ("LOGGING_ON", S, T.LOGON_COMPLETE, None, "SESSION"),
        ("START", C, T.NEW_LICENSE_REQUEST, None, None),  # the server speaks first
        ("SESSION", S, T.GOODBYE, None, "CLOSED"),
    ]
    for state, direction, type_, variant, expected in flow:
        assert next_state(rdp, state, direction, type_, variant) == expected, (state, type_)


def test_every_open_state_admits_a_fatal_error_from_both_sides() -> None:
    for conversation in Conversation:
        for state in TRANSITIONS[conversation]:
            for direction in Direction:
                target = next_state(conversation, state, direction, T.ERROR, "fatal")
                assert target == (None if state == "CLOSED" else "CLOSED")
