"""CLOCK-3 in the sans-IO core: a `Connection` given a `ClockView` judges timestamps against
the clock just left and re-reads the clock before refusing, without opening a replay hole."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.protocol import Connection, Conversation, Direction, ErrorCode, RemoteProtocolError
from tslic.protocol.clock import MS_PER_DAY
from tslic.protocol.domain import PeerRole
from tslic.protocol.envelope import ReplayGuard
from tslic.protocol.messages import Hello

BEFORE = 1_051_747_200_000
AFTER = BEFORE + 121 * MS_PER_DAY
HELLO = Hello(
    role=PeerRole.TERMINAL_SERVER, name="TS1", version=2003, conversation=Conversation.DIRECTORY
)


class View:
    """A shared clock as a receiver sees it: `left` readings, and the time a re-read gives."""

    def __init__(self, left: tuple[int, ...] = (), reread_to: int = 0) -> None:
        self.left = left
        self.reread_to = reread_to
        self.rereads = 0

    def recent(self) -> tuple[int, ...]:
        return self.left

    def reread(self) -> int:
        self.rereads += 1
        return self.reread_to


def hello_frame(stamp: int, key: Ed25519PrivateKey, nonce: bytes) -> bytes:
    client = Connection(conversation=Conversation.DIRECTORY, our_role=Direction.CLIENT, key=key,
                        nonce_source=lambda: nonce)  # fmt: skip
    return client.send(HELLO, now=stamp)


def server(view: View | None, guard: ReplayGuard | None = None) -> Connection:
    return Connection(conversation=Conversation.DIRECTORY, our_role=Direction.SERVER,
                      key=Ed25519PrivateKey.generate(), nonce_source=lambda: os.urandom(16),
                      replay_guard=guard, clock_view=view)  # fmt: skip


def receive(conn: Connection, frame: bytes, now: int) -> object:
    conn.receive_data(frame)
    return conn.next_event(now=now)


def test_a_receiver_behind_the_file_rereads_it_before_refusing() -> None:
    frame = hello_frame(AFTER, Ed25519PrivateKey.generate(), os.urandom(16))
    view = View(reread_to=AFTER)
    assert receive(server(view), frame, BEFORE) == HELLO
    assert view.rereads == 1
    with pytest.raises(RemoteProtocolError) as info:  # without a view: refused
        receive(server(None), frame, BEFORE)
    assert info.value.code is ErrorCode.FUTURE_TIMESTAMP


def test_a_receiver_ahead_accepts_the_clock_it_just_left_but_no_replay() -> None:
    key, nonce = Ed25519PrivateKey.generate(), os.urandom(16)
    frame = hello_frame(BEFORE, key, nonce)
    guard = ReplayGuard()
    assert receive(server(None, guard), frame, BEFORE) == HELLO  # seen before the jump
    view = View(left=(BEFORE,), reread_to=AFTER)
    with pytest.raises(RemoteProtocolError) as info:  # replayed just after the jump
        receive(server(view, guard), frame, AFTER)
    assert info.value.code is ErrorCode.REPLAYED_MESSAGE
    fresh = hello_frame(BEFORE, key, os.urandom(16))
    assert receive(server(view, guard), fresh, AFTER) == HELLO
    view.left = ()  # SETTLE has passed: the old clock is no longer accepted
    with pytest.raises(RemoteProtocolError) as info:
        receive(server(view, guard), hello_frame(BEFORE, key, os.urandom(16)), AFTER)
    assert info.value.code is ErrorCode.STALE_TIMESTAMP
