"""The base of every message and record, the message-type numbers and the registry.

Contract:
- Messages are frozen, slotted, keyword-only dataclasses that subclass `Message` once and are
  never subclassed again. Construction validates every field (codec.check) and then the
  class's own `check()`; an invalid message cannot exist. Lists given at construction become
  tuples, raw enum values become members.
- Every concrete message has a unique `MessageType` number and a `Conversation`; `@message`
  registers it in `REGISTRY`. The numbers are the wire values of docs/PROTOCOL.md §5; the RDP
  ones are 0x100 plus MS-RDPELE's bMsgType, so the real numbers stay visible.
- Records are the same kind of dataclass without a type number: nested values of messages.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import ClassVar, TypeVar

from ..codec import validate_fields
from ..errors import ErrorCode, LocalProtocolError
from ..names import TEXT_MAX, Kind, problem, text_problem


class Conversation(enum.StrEnum):
    """Who talks to whom. Each has its own state table (protocol/states.py)."""

    RDP = "rdp"  # RDP client <-> terminal server (MS-RDPELE semantics)
    LICENSING = "licensing"  # terminal server <-> license server
    ADMIN = "admin"  # licensing utility <-> license server
    CLEARINGHOUSE = "clearinghouse"  # license server or utility <-> Clearinghouse
    DIRECTORY = "directory"  # any daemon <-> directory


class MessageType(enum.IntEnum):
    """Wire numbers of every message (docs/PROTOCOL.md §5)."""

    HELLO = 0x001
    WELCOME = 0x002
    ERROR = 0x003
    GOODBYE = 0x004
    # RDP client <-> terminal server: 0x100 + MS-RDPELE bMsgType
    LICENSE_REQUEST = 0x101
    PLATFORM_CHALLENGE = 0x102
    NEW_LICENSE = 0x103
    UPGRADE_LICENSE = 0x104
    LICENSE_INFO = 0x112
    NEW_LICENSE_REQUEST = 0x113
    PLATFORM_CHALLENGE_RESPONSE = 0x115
    CLIENT_LOGON = 0x120
    LOGON_COMPLETE = 0x121
    ERROR_ALERT = 0x1FF
    # terminal server <-> license server
    LS_REQUEST_TS_CERT = 0x201
    LS_TS_CERT = 0x202
    LS_ISSUE_LICENSE = 0x203
    LS_LICENSE_GRANTED = 0x204
    LS_UPGRADE_LICENSE = 0x205
    LS_MARK_LICENSE = 0x207
    LS_LICENSE_MARKED = 0x208
    LS_RETURN_LICENSE = 0x209
    LS_LICENSE_RETURNED = 0x20A
    LS_REFERRAL = 0x20C
    # licensing utility <-> license server
    ADMIN_GET_STATUS = 0x301
    ADMIN_STATUS = 0x302
    ADMIN_SET_PROPERTIES = 0x303
    ADMIN_ACTIVATE = 0x305
    ADMIN_ACTIVATION_STEP = 0x306
    ADMIN_COMPLETE_ACTIVATION = 0x307
    ADMIN_INSTALL_KEYPACK = 0x309
    ADMIN_KEYPACK_INSTALLED = 0x30A
    ADMIN_LIST_KEYPACKS = 0x30B
    ADMIN_KEYPACKS = 0x30C
    ADMIN_LIST_LICENSES = 0x30D
    ADMIN_LICENSES = 0x30E
    ADMIN_SET_POLICY = 0x30F
    ADMIN_LIST_USERS = 0x310
    ADMIN_USERS = 0x311
    # license server or utility <-> Clearinghouse
    CH_ACTIVATE = 0x401
    CH_ACTIVATED = 0x402
    CH_DEACTIVATE = 0x403
    CH_DEACTIVATED = 0x404
    CH_INSTALL_KEYPACK = 0x405
    CH_KEYPACK = 0x406
    CH_CLAIM_ACTIVATION = 0x407
    CH_CLAIM_KEYPACK = 0x409
    # any daemon <-> directory
    DIR_REGISTER = 0x501
    DIR_ACK = 0x502
    DIR_PUBLISH = 0x503
    DIR_UNPUBLISH = 0x505
    DIR_QUERY_ENTERPRISE = 0x507
    DIR_SERVERS = 0x508
    DIR_QUERY_DOMAIN_CONTROLLERS = 0x509
    DIR_LOOKUP_COMPUTER = 0x50B
    DIR_COMPUTER = 0x50C
    DIR_GROUP_MEMBERS = 0x50D
    DIR_GROUP = 0x50E
    DIR_SET_COMPUTER = 0x50F


class Record:
    """A nested value: a frozen keyword-only dataclass validated on construction."""

    __slots__ = ()

    def __post_init__(self) -> None:
        validate_fields(self)
        self.check()

    def check(self) -> None:
        """Per-class rules beyond field types; raise `invalid(...)` to refuse."""


class Message(Record):
    """A message on the wire. Subclasses set TYPE and CONVERSATIONS and are registered."""

    __slots__ = ()
    TYPE: ClassVar[MessageType]
    CONVERSATIONS: ClassVar[frozenset[Conversation]]

    def variant(self) -> str | None:
        """A discriminator for the state table when one message type moves the state
        differently depending on a field (ErrorAlert's dwStateTransition, Error's code)."""
        return None


REGISTRY: dict[int, type[Message]] = {}

M = TypeVar("M", bound=type[Message])


def message(type_: MessageType, *conversations: Conversation) -> Callable[[M], M]:
    """Class decorator: give a message its number and conversations, and register it."""

    def register(cls: M) -> M:
        if int(type_) in REGISTRY:
            raise TypeError(f"message type {type_!r} registered twice")
        cls.TYPE = type_
        cls.CONVERSATIONS = frozenset(conversations)
        REGISTRY[int(type_)] = cls
        return cls

    return register


def invalid(message_text: str, field: str) -> LocalProtocolError:
    """The error for a field that has the right type but a forbidden value."""
    return LocalProtocolError(
        f"field '{field}': {message_text}", code=ErrorCode.INVALID_FIELD, detail={"field": field}
    )


def require_len(value: bytes | str, field: str, lo: int, hi: int | None = None) -> None:
    """Refuse a bytes or str field whose length is outside lo..hi (hi defaults to lo)."""
    hi = lo if hi is None else hi
    if not lo <= len(value) <= hi:
        span = f"exactly {lo}" if lo == hi else f"{lo} to {hi}"
        raise invalid(f"length must be {span}, got {len(value)}", field)


def require_name(value: str, field: str, kind: Kind, *, optional: bool = False) -> None:
    """Refuse a name that breaks its Windows rule (protocol/names.py); `optional` lets ""
    through."""
    if optional and value == "":
        return
    rule = problem(kind, value)
    if rule is not None:
        raise invalid(rule, field)


def require_names(values: tuple[str, ...], field: str, kind: Kind) -> None:
    for value in values:
        require_name(value, field, kind)


def require_text(value: str, field: str, limit: int = TEXT_MAX, *, required: bool = False) -> None:
    """Refuse free text over `limit` characters, or with control characters."""
    rule = text_problem(value, limit, required=required)
    if rule is not None:
        raise invalid(rule, field)


def require_range(value: int, field: str, lo: int, hi: int) -> None:
    if not lo <= value <= hi:
        raise invalid(f"must be between {lo} and {hi}, got {value}", field)


def describe(msg: Message) -> str:
    """A short human description of a message for logs and transcripts."""
    return f"{type(msg).__name__}(0x{int(msg.TYPE):03x})"
