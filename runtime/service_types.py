"""What a request/reply service implements and what it is told, for `runtime.service.Server`.

Contract:
- A `Service` answers one conversation: `on_hello(peer)` returns the Welcome (or raises
  `ServiceError`), then `handle(peer, request)` answers each request. Both are awaited by the
  connection's own task, one request at a time.
- A `Peer` is what a handler knows about the other end of one connection: its address, the
  key that signs its frames, its Hello, and `state`, the service's own per-connection notes.
- `Counters` are the listener's connection-level counts (accepted, refused busy, active,
  Errors sent by code) for status pages and metrics.
These are plain types with no behaviour of their own, apart so that handlers (server/,
client/) can name them without the listener's machinery; runtime/service.py re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from tslic.protocol import Conversation, ErrorCode, Message
from tslic.protocol.messages import Hello, Welcome


@dataclass(slots=True)
class Peer:
    """What a handler knows about the other end of one connection."""

    address: str
    key: bytes
    hello: Hello
    state: dict[str, object] = field(default_factory=dict)  # the service's, per connection


class Service(Protocol):
    """A daemon's request handlers for one conversation."""

    conversation: Conversation

    async def on_hello(self, peer: Peer) -> Welcome: ...

    async def handle(self, peer: Peer, request: Message) -> Message: ...


@dataclass(slots=True)
class Counters:
    """Connection-level counts for status pages and metrics."""

    accepted: int = 0
    refused_busy: int = 0
    active: int = 0
    errors: dict[int, int] = field(default_factory=dict)

    def error(self, code: ErrorCode) -> None:
        self.errors[int(code)] = self.errors.get(int(code), 0) + 1
