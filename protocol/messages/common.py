"""Messages every request/response conversation shares: Hello, Welcome, Error, Goodbye.

Contract (docs/PROTOCOL.md §5.1): the client opens with `Hello`, naming its role and version
and presenting its certificate chain (root first, leaf last) if it has one; the envelope's
sender key must be the leaf's key. The server answers `Welcome` or `Error`. `Error` with a 1xxx
code is fatal (the sender closes); any other code refuses one request and the conversation
goes on. `Goodbye` ends a conversation cleanly from either side.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..domain import PeerRole
from ..errors import ErrorCode
from ..framing import DEFAULT_MAX_FRAME
from .base import Conversation, Message, MessageType, invalid, message, require_len, require_text

_REQUEST_REPLY = (
    Conversation.LICENSING,
    Conversation.ADMIN,
    Conversation.CLEARINGHOUSE,
    Conversation.DIRECTORY,
)
_ALL = (*_REQUEST_REPLY, Conversation.RDP)


@message(MessageType.HELLO, *_REQUEST_REPLY)
@dataclass(frozen=True, slots=True, kw_only=True)
class Hello(Message):
    """Client -> server, first message of a conversation."""

    role: PeerRole
    name: str
    version: int  # 2000 or 2003 for terminal and license servers; 0 for other roles
    conversation: Conversation
    cert_chain: tuple[bytes, ...] = ()
    features: tuple[str, ...] = ()

    def check(self) -> None:
        require_len(self.name, "name", 1, 64)
        require_text(self.name, "name", 64)
        # MSG-9: the version goes with the role, so a terminal server saying 0 and one saying
        # 2001 are the same fault (INVALID_FIELD), not a refusal for one and a fault for the
        # other.
        if self.role in _VERSIONED:
            if self.version not in (2000, 2003):
                raise invalid(f"must be 2000 or 2003 for a {self.role}", "version")
        elif self.version != 0:
            raise invalid(f"must be 0 for a {self.role}", "version")


_VERSIONED = (PeerRole.TERMINAL_SERVER, PeerRole.LICENSE_SERVER)


@message(MessageType.WELCOME, *_REQUEST_REPLY)
@dataclass(frozen=True, slots=True, kw_only=True)
class Welcome(Message):
    """Server -> client: the conversation is open."""

    role: PeerRole
    name: str
    version: int
    cert_chain: tuple[bytes, ...] = ()
    features: tuple[str, ...] = ()
    max_frame: int = DEFAULT_MAX_FRAME
    server_time: int = 0  # the server's virtual clock, ms since the epoch


@message(MessageType.ERROR, *_ALL)
@dataclass(frozen=True, slots=True, kw_only=True)
class Error(Message):
    """Either direction: a protocol error (1xxx, fatal) or a refused request."""

    code: int
    message: str
    detail: dict[str, str] = field(default_factory=dict)

    def check(self) -> None:
        try:
            ErrorCode(self.code)
        except ValueError:
            raise invalid(f"unknown error code {self.code}", "code") from None

    @property
    def error_code(self) -> ErrorCode:
        return ErrorCode(self.code)

    @property
    def fatal(self) -> bool:
        return ErrorCode(self.code).closes_connection

    def variant(self) -> str:
        return "fatal" if self.fatal else "refusal"


@message(MessageType.GOODBYE, *_ALL)
@dataclass(frozen=True, slots=True, kw_only=True)
class Goodbye(Message):
    """Either direction: end the conversation; the sender closes after it."""

    reason: str = ""
