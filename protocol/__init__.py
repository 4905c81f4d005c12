"""tslic.protocol: the sans-IO core of the tslic wire protocol.

Framing, the signed envelope, the message catalogue, the state tables, PKI, the licensing
rules and the virtual-clock value type. Nothing here does I/O, reads a clock, draws random
numbers or installs logging handlers: time, ids, nonces and keys are passed in. The Trio
adapter over it is `tslic.runtime.stream`.
"""

from __future__ import annotations

from .connection import NEED_DATA, PEER_CLOSED, Connection, Sentinel, raw_public
from .errors import (
    ConnectionLost,
    ErrorCode,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    ServiceError,
    StorageError,
    Timeout,
    TslicError,
)
from .messages import REGISTRY, Conversation, Message, MessageType
from .states import Direction

__all__ = [
    "NEED_DATA",
    "PEER_CLOSED",
    "REGISTRY",
    "Connection",
    "ConnectionLost",
    "Conversation",
    "Direction",
    "ErrorCode",
    "LocalProtocolError",
    "Message",
    "MessageType",
    "ProtocolError",
    "RemoteProtocolError",
    "Sentinel",
    "ServiceError",
    "StorageError",
    "Timeout",
    "TslicError",
    "raw_public",
]
