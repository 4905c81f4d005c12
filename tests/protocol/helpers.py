"""Shared fixtures-as-code for the sans-IO core tests.

Contract:
- `ConnectionPair(conversation)` is a client and a server `Connection` with fixed keys, one
  deterministic nonce counter and a fixed `now`. `send(side, msg)` sends from one side,
  feeds the bytes to the other and asserts that the peer decodes exactly `msg` (and nothing
  more), so every test that talks through a pair checks the round trip for free.
- `sample_messages()` returns one valid, realistic instance of every class in `REGISTRY`;
  `variants_of(msg)` adds the instances whose `variant()` differs (Error fatal/refusal,
  ErrorAlert per dwStateTransition), so state-table tests can reach every row.
- `path_to(conversation, state)` is a breadth-first search over `states.TRANSITIONS`, so the
  tests follow the tables instead of hand-coding routes that would rot when a table changes.
- `seal_frame(...)` builds arbitrary (possibly hostile) frames for the envelope tests.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
from collections.abc import Iterator
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.protocol import NEED_DATA, Connection, Direction, ErrorCode, Message, raw_public
from tslic.protocol.codec import pack, to_wire
from tslic.protocol.envelope import DEFAULT_WINDOW_MS, PROTOCOL_VERSION, SIGNATURE_CONTEXT
from tslic.protocol.framing import PREFIX
from tslic.protocol.messages import Conversation, MessageType, common, rdp
from tslic.protocol.states import START, TRANSITIONS, EventKey

from tests.protocol.samples import (
    CLIENT_KEY,
    CLIENT_PUB,
    DAY,
    HWID,
    NOW,
    OTHER_KEY,
    SERVER_KEY,
    SERVER_PUB,
    sample_messages,
)

__all__ = [  # the samples' keys and constants are re-exported for the tests' convenience
    "CLIENT_KEY",
    "CLIENT_PUB",
    "DAY",
    "HWID",
    "NOW",
    "OTHER_KEY",
    "SERVER_KEY",
    "SERVER_PUB",
    "ConnectionPair",
    "NonceCounter",
    "all_variants",
    "message_for",
    "path_to",
    "reachable_states",
    "sample_messages",
    "sample_of",
    "seal_frame",
    "seal_inner",
    "variants_of",
    "wire_body",
]


class NonceCounter:
    """A deterministic nonce source: 16-byte big-endian counter values, never repeated."""

    def __init__(self, start: int = 1) -> None:
        self._count = itertools.count(start)

    def __call__(self) -> bytes:
        return next(self._count).to_bytes(16, "big")


class ConnectionPair:
    """A client and a server `Connection` of one conversation, talking in memory."""

    def __init__(
        self,
        conversation: Conversation,
        *,
        now: int = NOW,
        window: int = DEFAULT_WINDOW_MS,
        max_frame: int = 64 * 1024,
    ) -> None:
        self.conversation = conversation
        self.now = now
        self.nonces = NonceCounter()
        common_args: dict[str, Any] = {
            "conversation": conversation,
            "nonce_source": self.nonces,
            "window": window,
            "max_frame": max_frame,
        }
        self.client = Connection(our_role=Direction.CLIENT, key=CLIENT_KEY, **common_args)
        self.server = Connection(our_role=Direction.SERVER, key=SERVER_KEY, **common_args)

    def side(self, direction: Direction) -> Connection:
        return self.client if direction is Direction.CLIENT else self.server

    def peer(self, direction: Direction) -> Connection:
        return self.server if direction is Direction.CLIENT else self.client

    def send(self, side: Direction, msg: Message) -> bytes:
        """Send `msg` from `side`; assert the peer decodes exactly it and both agree on the
        new state. Returns the frame that went over the wire."""
        sender, receiver = self.side(side), self.peer(side)
        frame = sender.send(msg, now=self.now)
        receiver.receive_data(frame)
        got = receiver.next_event(now=self.now)
        assert type(got) is type(msg), f"sent {msg!r}, peer decoded {got!r}"
        assert got == msg
        assert receiver.next_event(now=self.now) is NEED_DATA
        assert sender.state == receiver.state
        return frame

    def drive_to(self, state: str) -> None:
        """Exchange the messages of the shortest table path from START to `state`."""
        for direction, type_, variant in path_to(self.conversation, state):
            self.send(direction, message_for(type_, variant))
        assert self.client.state == self.server.state == state


def path_to(conversation: Conversation, state: str) -> list[EventKey]:
    """The shortest list of events leading from START to `state` (BFS over the table).

    Raises:
        LookupError: if `state` is not reachable from START.
    """
    table = TRANSITIONS[conversation]
    parents: dict[str, tuple[str, EventKey] | None] = {START: None}
    queue = collections.deque([START])
    while queue:
        current = queue.popleft()
        if current == state:
            path: list[EventKey] = []
            link = parents[current]
            while link is not None:
                previous, event = link
                path.append(event)
                link = parents[previous]
            return path[::-1]
        for event, target in table.get(current, {}).items():
            if target not in parents:
                parents[target] = (current, event)
                queue.append(target)
    raise LookupError(f"{state} is not reachable in the {conversation} conversation")


def reachable_states(conversation: Conversation) -> list[str]:
    """Every state reachable from START by table transitions (ERROR is reached only by a
    failure, so it is not among them)."""
    found = []
    for state in TRANSITIONS[conversation]:
        try:
            path_to(conversation, state)
        except LookupError:
            continue
        found.append(state)
    return found


_SAMPLES: dict[MessageType, Message] = {m.TYPE: m for m in sample_messages()}


def sample_of(type_: MessageType) -> Message:
    return _SAMPLES[type_]


def message_for(type_: MessageType, variant: str | None) -> Message:
    """A sample message of `type_` whose `variant()` is `variant` (any, if None)."""
    if type_ is MessageType.ERROR and variant == "fatal":
        return common.Error(code=int(ErrorCode.ILLEGAL_STATE), message="unexpected message")
    if type_ is MessageType.ERROR and variant == "refusal":
        return common.Error(code=int(ErrorCode.NOT_FOUND), message="no such computer")
    if type_ is MessageType.ERROR_ALERT and variant is not None:
        sample = _SAMPLES[type_]
        assert isinstance(sample, rdp.ErrorAlert)
        return dataclasses.replace(
            sample,
            error_code=rdp.RdpError.ERR_NO_LICENSE_SERVER,
            state_transition=rdp.StateTransition[variant],
        )
    return _SAMPLES[type_]


def variants_of(msg: Message) -> Iterator[Message]:
    """`msg` and, for messages whose variant steers the state table, one per variant."""
    if msg.TYPE is MessageType.ERROR:
        yield message_for(msg.TYPE, "refusal")
        yield message_for(msg.TYPE, "fatal")
    elif msg.TYPE is MessageType.ERROR_ALERT:
        for transition in rdp.StateTransition:
            yield message_for(msg.TYPE, transition.name)
    else:
        yield msg


def all_variants() -> list[Message]:
    return [v for m in sample_messages() for v in variants_of(m)]


def seal_inner(key: Ed25519PrivateKey, inner: bytes, *, sender: bytes | None = None) -> bytes:
    """A length-prefixed frame around already-serialized `inner` bytes, signed by `key`."""
    signature = key.sign(SIGNATURE_CONTEXT + inner)
    body = pack([sender if sender is not None else raw_public(key), inner, signature])
    return PREFIX.pack(len(body)) + body


def seal_frame(
    key: Ed25519PrivateKey,
    *,
    type_: int,
    body: Any,
    msg_id: int = 1,
    reply_to: int = 0,
    nonce: bytes = b"\x00" * 15 + b"\x01",
    timestamp: int = NOW,
    version: int = PROTOCOL_VERSION,
) -> bytes:
    """A correctly signed frame with arbitrary header values and body (no validation)."""
    inner = pack([version, type_, msg_id, reply_to, nonce, timestamp, body])
    return seal_inner(key, inner)


def wire_body(msg: Message) -> dict[str, Any]:
    """The plain map a message is sent as (to tamper with before sealing)."""
    return to_wire(msg)
