"""The message catalogue: every conversation's messages, registered by wire number.

Importing this package registers every message in `REGISTRY`; `docs/PROTOCOL.md` §5 lists
the same catalogue (a test checks that they agree).
"""

from __future__ import annotations

from . import admin, clearinghouse, common, directory, licensing, rdp, records
from .admin import *  # noqa: F403
from .base import REGISTRY, Conversation, Message, MessageType, Record, describe
from .clearinghouse import *  # noqa: F403
from .common import Error, Goodbye, Hello, Welcome
from .directory import *  # noqa: F403
from .licensing import *  # noqa: F403
from .rdp import *  # noqa: F403
from .records import *  # noqa: F403

__all__ = [
    "REGISTRY",
    "Conversation",
    "Error",
    "Goodbye",
    "Hello",
    "Message",
    "MessageType",
    "Record",
    "Welcome",
    "admin",
    "clearinghouse",
    "common",
    "describe",
    "directory",
    "licensing",
    "rdp",
    "records",
]
