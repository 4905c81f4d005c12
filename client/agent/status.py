"""`tslic agent status` and `tslic agent events`: read the persisted state, print it.

Contract: read-only; works while the agent runs or after it stopped. Times are judged on the
deployment's clock when one is given (`--clock-file`, `--clock` or TSLIC_CLOCK_FILE, as every
command: runtime.args), else on the clock the agent recorded in state.json when it started.
Output is a table for people or, with --json, one JSON document.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypedDict

from tslic.protocol.clock import ClockSpec, format_date, to_datetime
from tslic.protocol.domain import Connectivity, WindowsVersion
from tslic.runtime.clock import Clock, WallClock

from .events import EventJson, read_events
from .state import STATE_FILE, ServerEntry, ServerJson, grace_from_json, load_for_status

_CONNECTIVITY_TEXT = {
    Connectivity.VALID_LS: "valid license server",
    Connectivity.LOWER_VERSION: "connectable, but a lower version (incompatible)",
    Connectivity.NOT_IN_TSCGROUP: (
        'connectable, but this server is not in "Terminal Server Computers"'
    ),
    Connectivity.NOT_CONNECTABLE: "not connectable",
    Connectivity.ACCESS_DENIED: "connectable, but access denied",
    Connectivity.UNKNOWN: "not checked yet",
    Connectivity.UNKNOWN_VALIDITY: "connectable, validity unknown",
}


class GraceStatus(TypedDict):
    """The grace period as the status shows it (dates as YYYY-MM-DD)."""

    days_left: int
    in_grace: bool
    started: str | None
    expires: str | None
    ended: str | None
    end_reason: str | None
    end_rule: str


class ServerStatus(ServerJson):
    """A discovered server as the status shows it: its state.json entry and more."""

    connectivity_value: int
    connectivity_text: str
    in_use: bool


class AgentStatus(TypedDict):
    """`tslic agent status --json`."""

    name: str | None
    version: int
    mode: str | None
    now: str
    license_server_in_use: str | None
    certificate_from: str | None
    servers: list[ServerStatus]
    grace: GraceStatus
    licenses: dict[str, int]


def status_document(data_dir: Path, clock: Clock | None = None) -> AgentStatus:
    """The status of the agent whose data is in `data_dir`, judged at `clock`'s time (the
    clock the agent recorded when it started, without one).

    Raises:
        ServiceError: NOT_FOUND if there is no agent state; StorageError if it is damaged.
    """
    raw = load_for_status(data_dir)
    if clock is None:
        clock = WallClock(ClockSpec.from_arg(str(raw.get("clock", "real"))))
    now = clock.now()
    try:
        version = WindowsVersion(int(raw["version"]))
        grace = grace_from_json(version, dict(raw.get("grace", {})))
        entries = [ServerEntry.from_json(s) for s in raw.get("servers", [])]
    except (KeyError, ValueError, TypeError):
        from tslic.protocol.errors import StorageError

        raise StorageError(f"{data_dir / STATE_FILE} is damaged; restore it or delete it") from None
    servers: list[ServerStatus] = []
    for entry in entries:
        status = entry.connectivity
        servers.append(
            {
                **entry.to_json(),
                "connectivity_value": int(status),
                "connectivity_text": _CONNECTIVITY_TEXT.get(status, status.name.lower()),
                "in_use": entry.name == raw.get("current"),
            }
        )
    dt = to_datetime(now)
    return {
        "name": raw.get("name"),
        "version": int(version),
        "mode": raw.get("mode"),
        "now": format_date(now),
        "license_server_in_use": raw.get("current"),
        "certificate_from": raw.get("cert_issuer") or None,
        "servers": servers,
        "grace": {
            "days_left": grace.days_left(dt),
            "in_grace": grace.in_grace(dt),
            "started": None if grace.started_at is None else grace.started_at.strftime("%Y-%m-%d"),
            "expires": None if grace.expires_at is None else grace.expires_at.strftime("%Y-%m-%d"),
            "ended": None if grace.ended_at is None else grace.ended_at.strftime("%Y-%m-%d"),
            "end_reason": None if grace.end_reason is None else str(grace.end_reason),
            "end_rule": str(grace.end_rule),
        },
        "licenses": dict(raw.get("counts", {})),
    }


def render_status(doc: AgentStatus) -> str:
    """The status as text for people."""
    grace = doc["grace"]
    if grace["ended"]:
        grace_line = f"ended {grace['ended']} ({grace['end_reason']})"
    elif grace["started"] is None:
        grace_line = f"not started ({grace['days_left']} days once the first client connects)"
    else:
        grace_line = (
            f"{grace['days_left']} days left "
            f"(started {grace['started']}, runs out {grace['expires']})"
        )
    product = "Windows 2000" if doc["version"] == 2000 else "Windows Server 2003"
    lines = [
        f"Terminal server {doc['name']} ({product})",
        f"  Licensing mode:     {'Per User' if doc['mode'] == 'per-user' else 'Per Device'}",
        f"  Virtual date:       {doc['now']}",
        f"  Grace period:       {grace_line}",
        f"  License server:     {doc['license_server_in_use'] or '(none in use)'}",
        f"  Certificate from:   {doc['certificate_from'] or '(no certificate yet)'}",
        "",
        "  Discovered license servers:",
    ]
    if not doc["servers"]:
        lines.append("    (none)")
    for s in doc["servers"]:
        mark = "*" if s["in_use"] else " "
        lines.append(
            f"   {mark}{s['name']:<16} {s['address'] or '-':<22} found by {s['how']:<10} "
            f"{s['connectivity']} ({s['connectivity_value']}): {s['connectivity_text']}"
            f"; reachable {_yes(s['reachable'])}, issuing {_yes(s['issuing'])}"
        )
    lines += ["", "  Licenses handled:"]
    lines += [f"    {k.replace('_', ' '):<20} {v}" for k, v in doc["licenses"].items()]
    return "\n".join(lines)


def _yes(flag: object) -> str:
    return "yes" if flag else "no"


def events_document(data_dir: Path) -> list[EventJson]:
    return [e.to_json() for e in read_events(data_dir / "events.jsonl")]


def render_events(events: list[EventJson]) -> str:
    if not events:
        return "No events."
    return "\n".join(
        f"{e['date']}  {e['level']:<11} {e['source']} {e['id']}  {e['message']}" for e in events
    )


def dumps(value: object) -> str:
    return json.dumps(value, indent=2, sort_keys=True)
