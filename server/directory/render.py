"""Rendering the directory's answers: rich tables and lines for people, JSON for scripts.

Contract:
- `print_reply(reply, as_json)` prints one reply of a client action of `tslic directory`
  (DirServers, DirComputer, DirGroup or DirAck) to stdout: JSON with sorted keys when
  `as_json`, else a table or one line. Any other message is a ServiceError (ILLEGAL_STATE),
  never a traceback.
- `computers_table(title, rows)` builds the table of computers that `print_reply` and
  `tslic directory check` show; rows are ComputerInfo or ServerRef values as dicts.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence

from rich.table import Table
from tslic.protocol import ErrorCode, Message, ServiceError
from tslic.protocol.messages.directory import DirAck, DirComputer, DirGroup, DirServers
from tslic.runtime.console import make_console


def print_reply(reply: Message, as_json: bool) -> None:
    """Print a directory reply: a table or a line for people, or JSON (sorted keys).

    Raises:
        ServiceError: ILLEGAL_STATE for a reply no client action expects.
    """
    value: dict[str, object]
    if isinstance(reply, DirServers):
        value = {
            "distinguished_name": reply.distinguished_name,
            "servers": [dataclasses.asdict(s) for s in reply.servers],
        }
    elif isinstance(reply, DirComputer):
        value = {"computer": dataclasses.asdict(reply.computer)}
    elif isinstance(reply, DirGroup):
        value = {"group": reply.group, "members": list(reply.members)}
    elif isinstance(reply, DirAck):
        value = {"ok": True, "detail": reply.detail}
    else:
        raise ServiceError(
            f"the directory answered with an unexpected {type(reply).__name__}",
            code=ErrorCode.ILLEGAL_STATE,
        )
    if as_json:
        print(json.dumps(value, indent=2, sort_keys=True))
        return
    console = make_console()
    if isinstance(reply, DirServers):
        if reply.servers:
            console.print(
                computers_table(
                    reply.distinguished_name, [dataclasses.asdict(s) for s in reply.servers]
                )
            )
        else:
            console.print(f"{reply.distinguished_name}: no servers", soft_wrap=True)
    elif isinstance(reply, DirComputer):
        console.print(computers_table(reply.computer.name, [dataclasses.asdict(reply.computer)]))
    elif isinstance(reply, DirGroup):
        members = ", ".join(reply.members) or "(no members)"
        console.print(f"{reply.group}: {members}", soft_wrap=True)
    else:
        console.print(reply.detail, soft_wrap=True)


def computers_table(title: str, rows: Sequence[Mapping[str, object]]) -> Table:
    """A table of computers (ComputerInfo or ServerRef rows as dicts); OS only when known."""
    with_os = any(r.get("os_version") for r in rows)  # ServerRef rows carry no OS
    table = Table(title=title)
    for column in ("Name", "Domain", "Site", "Role", *(["OS"] if with_os else []), "Address"):
        table.add_column(column)
    for r in rows:
        cells = [
            str(r["name"]),
            str(r.get("domain", "")),
            str(r.get("site", "")),
            "domain controller" if r.get("is_domain_controller") else "member server",
        ]
        if with_os:
            cells.append(f"Windows {r['os_version']}")
        table.add_row(*cells, str(r.get("address") or "(not registered)"))
    return table
