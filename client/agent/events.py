"""The terminal server's event log: termsrv event ids with paraphrased messages.

Contract:
- `EventId` (protocol.events.TermsrvEvent) holds the real termsrv.dll ids the agent logs
  (the termsrv.dll message table): 1004, 1008-1011, 1026-1028, 1043, 1044. Messages are
  paraphrased (quoted only where docs/PROTOCOL.md §8.3 quotes).
- `EventLog` appends one JSON object per line to `events.jsonl` in the data directory, flushed
  and fsynced before `log` returns, so an event survives a crash. A torn last line (a crash in
  the middle of a write) is skipped when reading, never fatal.
- Times are virtual epoch-ms. OSError becomes `StorageError`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from tslic.protocol.clock import format_date
from tslic.protocol.codec import Unvalidated
from tslic.protocol.errors import StorageError
from tslic.protocol.events import TermsrvEvent

EVENTS_FILE = "events.jsonl"
SOURCE = "TermService"


# The ids are defined once, in the protocol package; the agent's name for them.
EventId = TermsrvEvent


_TEMPLATES: dict[EventId, tuple[str, str]] = {
    EventId.CANNOT_ISSUE_LICENSE: (
        "error",
        "The terminal server cannot issue a client license to {client}: {reason}",
    ),
    EventId.GRACE_EXPIRED: (
        "error",
        "The Terminal Server licensing grace period has expired and the server is not "
        "registered with a license server with installed licenses. A Terminal Server license "
        "server is required for continuous operation. A terminal server can operate without "
        "a license server for {days} days after initial start up.",
    ),
    EventId.GRACE_EXPIRING: (
        "warning",
        "The Terminal Server licensing grace period is about to expire on {date} and the "
        "server is not registered with a license server with installed licenses.",
    ),
    EventId.NO_LICENSE_SERVER: (
        "error",
        "The terminal server could not locate a license server. Confirm that all license "
        "servers on the network are registered in WINS/DNS, accepting network requests, and "
        "the Terminal Server Licensing Service is running.",
    ),
    EventId.TEMPORARY_EXPIRED: (
        "warning",
        "The terminal server client {client} has been disconnected because its temporary "
        "license has expired.",
    ),
    EventId.NO_LICENSE_SERVER_DOMAIN: (
        "error",
        "The terminal server could not locate a license server in the {domain} domain. "
        "Confirm that all license servers on the network are registered in WINS/DNS, "
        "accepting network requests, and the Terminal Server Licensing Service is running.",
    ),
    EventId.NO_LICENSE_SERVER_WORKGROUP: (
        "error",
        "The terminal server could not locate a license server in the {domain} workgroup or "
        "Windows NT 4 domain. Confirm that all license servers on the network are registered "
        "in WINS/DNS, accepting network requests, and the Terminal Server Licensing Service "
        "is running.",
    ),
    EventId.PERMANENT_NOT_RENEWED: (
        "warning",
        "The terminal server client {client} has been disconnected because its license could "
        "not be renewed.",
    ),
    EventId.NOT_IN_TS_COMPUTERS_GROUP: (
        "error",
        "This Terminal Server is not able to communicate with the License Server. Please make "
        "sure that this Terminal Server's computer account is a member of the \"Terminal "
        'Server Computers" group on License Server ({server}).',
    ),
    EventId.CONVERTED_TO_PER_USER: (
        "information",
        "The Terminal Server has been converted to Per User licensing. Internet Connector "
        "licensing is not supported in this version of Windows.",
    ),
}


class EventJson(TypedDict):
    """One line of events.jsonl, as `tslic agent events --json` prints it."""

    id: int
    time: int
    date: str
    source: str
    level: str
    message: str
    data: dict[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One logged event."""

    event_id: int
    time: int  # virtual epoch-ms
    level: str
    message: str
    data: dict[str, str]

    def to_json(self) -> EventJson:
        return {
            "id": self.event_id,
            "time": self.time,
            "date": format_date(self.time),
            "source": SOURCE,
            "level": self.level,
            "message": self.message,
            "data": self.data,
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Unvalidated]) -> Event:
        """An event read back from events.jsonl (checked here, field by field)."""
        return cls(
            event_id=int(value["id"]),
            time=int(value["time"]),
            level=str(value["level"]),
            message=str(value["message"]),
            data={str(k): str(v) for k, v in dict(value.get("data", {})).items()},
        )


def render(event_id: EventId, **data: str) -> tuple[str, str]:
    """The level and message text of an event, filled with `data`."""
    level, template = _TEMPLATES[event_id]
    return level, template.format_map(_Default(data))


class _Default(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return f"<{key}>"


class EventLog:
    """Append-only JSON-lines event log in a data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / EVENTS_FILE

    def log(self, event_id: EventId, now: int, **data: str) -> Event:
        """Append one event durably and return it.

        Raises:
            StorageError: the file cannot be written.
        """
        level, message = render(event_id, **data)
        event = Event(event_id=int(event_id), time=now, level=level, message=message, data=data)
        line = (json.dumps(event.to_json(), sort_keys=True) + "\n").encode()
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise StorageError(f"cannot write the event log {self.path}: {exc.strerror}") from None
        return event

    def read(self) -> list[Event]:
        """Every event, oldest first; a torn or corrupt line is skipped.

        Raises:
            StorageError: the file exists but cannot be read.
        """
        return read_events(self.path)


def read_events(path: Path) -> list[Event]:
    """Read an events.jsonl file (see `EventLog.read`)."""
    if not path.exists():
        return []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise StorageError(f"cannot read the event log {path}: {exc.strerror}") from None
    events = []
    for line in text.splitlines():
        try:
            events.append(Event.from_json(json.loads(line)))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # a torn line from a crash mid-write
    return events
