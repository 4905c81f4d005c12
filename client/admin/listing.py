"""`tslic admin keypacks | licenses | report`: paged listings, printed as the pages arrive.

Contract (docs/PROTOCOL.md §5.4, PAGE-1..7): a listing sends its request with the filters the
operator gave, then again with each `next_cursor` until it is empty, and prints every page
as soon as it arrives (memory stays one page, whatever the size of the listing).
- Text: a title line, a header, one line per item (columns padded, never cut; what a remote
  peer chose, such as computer and user names, has its control characters escaped), and a
  closing count.
- `--json`: ONE JSON document, written incrementally: `{"type": ..., "<items>": [` then the
  items, comma-separated, then the closing fields. A consumer reading the whole output with
  `json.load` gets valid JSON; the items are the same objects `to_json` makes.
- `report --per-user`: the User CAL key packs (installed, and issued: the users holding a
  User CAL from each pack now), the totals, the per-user usage lines, then the User CALs
  held now: the same licenses the packs' `issued` counts, so the figures agree.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Protocol, TextIO, TypeVar

import trio
from tslic.protocol.domain import CalProduct, LicenseKind, LicenseStatus
from tslic.protocol.messages import Message
from tslic.protocol.messages.admin import (
    AdminKeyPacks,
    AdminLicenses,
    AdminListKeyPacks,
    AdminListLicenses,
    AdminListUsers,
    AdminUsers,
)
from tslic.protocol.messages.records import KeyPackInfo

from .render import date_text, plural, printable, record_json


class Requester(Protocol):
    """What a listing needs of its connection (a `runtime.peer.PeerStream`)."""

    async def request(self, msg: Message) -> Message: ...


PAGE_TIMEOUT = 60.0  # seconds for one page to arrive

Request = AdminListKeyPacks | AdminListLicenses | AdminListUsers
R = TypeVar("R", AdminKeyPacks, AdminLicenses, AdminUsers)


async def pages(stream: Requester, request: Request, reply_type: type[R]) -> AsyncIterator[R]:
    """Every page of a listing, in order (PAGE-2): the request again with each cursor."""
    cursor = b""
    while True:
        with trio.fail_after(PAGE_TIMEOUT):
            reply = await stream.request(dataclasses.replace(request, cursor=cursor))
        if not isinstance(reply, reply_type):
            raise TypeError(f"the license server answered {type(reply).__name__}")
        yield reply
        cursor = reply.next_cursor
        if not cursor:
            return


# ---- columns ------------------------------------------------------------------------------

Column = tuple[str, int, Callable[..., str]]

LICENSE_COLUMNS: list[Column] = [
    ("ID", 7, lambda x: str(x.license_id)),
    ("Kind", 9, lambda x: str(x.kind)),
    ("Product", 26, lambda x: x.product.label),
    ("Machine", 15, lambda x: printable(x.machine)),
    ("User", 15, lambda x: printable(x.user)),
    ("Hardware ID", 16, lambda x: x.hwid.hex()[:16]),
    ("Status", 9, lambda x: x.status.name.lower()),
    ("Validated", 9, lambda x: "yes" if x.validated else "no"),
    ("Terminal server", 15, lambda x: printable(x.terminal_server)),
    ("Issued", 10, lambda x: date_text(x.issued_at)),
    ("Expires", 10, lambda x: date_text(x.expires_at)),
]
KEYPACK_COLUMNS: list[Column] = [
    ("ID", 4, lambda k: str(k.keypack_id)),
    ("Type", 12, lambda k: k.keypack_type.name.lower()),
    ("Product", 26, lambda k: k.product.label),
    ("Program", 20, lambda k: k.program.label if k.program else "-"),
    ("Total", 7, lambda k: str(k.total)),
    ("Issued", 7, lambda k: str(k.issued)),
    ("Available", 9, lambda k: str(k.available)),
    ("In use", 7, lambda k: str(k.in_use)),
    ("Expires", 10, lambda k: date_text(k.expires_at)),
]
USER_COLUMNS: list[Column] = [
    ("User", 20, lambda u: printable(u.user)),
    ("Product", 26, lambda u: u.product.label),
    ("Connections", 11, lambda u: str(u.connections)),
    ("First seen", 10, lambda u: date_text(u.first_seen)),
    ("Last seen", 10, lambda u: date_text(u.last_seen)),
]
# The per-user report's pack lines: a User CAL pack's "issued" is who holds one from it.
USER_PACK_COLUMNS: list[Column] = [
    ("ID", 4, lambda k: str(k.keypack_id)),
    ("Program", 20, lambda k: k.program.label if k.program else "-"),
    ("Installed", 9, lambda k: str(k.total)),
    ("Issued", 7, lambda k: str(k.in_use)),
    ("Expires", 10, lambda k: date_text(k.expires_at)),
]


def line(columns: Sequence[Column], item: object | None = None) -> str:
    """One line: the header (item None) or an item; padded to the column, never cut."""
    cells = [name if item is None else value(item) for name, _, value in columns]
    return "  ".join(c.ljust(width) for c, (_, width, _) in zip(cells, columns, strict=True))


# ---- output -------------------------------------------------------------------------------


class Writer:
    """Text lines or one incrementally written JSON document, flushed per page."""

    def __init__(self, as_json: bool, out: TextIO | None = None) -> None:
        self.as_json = as_json
        self.out = out or sys.stdout
        self._first_item = True

    def open(self, kind: str, **fields: object) -> None:
        if self.as_json:
            # Every document has items after its opening fields, hence the comma.
            self.out.write(json.dumps({"type": kind, **fields}, sort_keys=True)[:-1] + ", ")

    def open_items(self, name: str) -> None:
        if self.as_json:
            self.out.write(f"{json.dumps(name)}: [")
            self._first_item = True

    def items(self, records: Sequence[object], columns: Sequence[Column]) -> None:
        if self.as_json:
            for record in records:
                sep = "\n" if self._first_item else ",\n"
                self.out.write(sep + json.dumps(record_json(record), sort_keys=True))
                self._first_item = False
        else:
            for record in records:
                self.out.write(line(columns, record).rstrip() + "\n")
        self.out.flush()

    def close_items(self, last: bool = False) -> None:
        if self.as_json:
            self.out.write("\n]" + ("" if last else ", "))

    def close(self, **fields: object) -> None:
        if self.as_json:
            tail = "".join(f", {json.dumps(k)}: {json.dumps(v)}" for k, v in sorted(fields.items()))
            self.out.write(tail + "}\n")
        self.out.flush()

    def text(self, *lines: str) -> None:
        if not self.as_json:
            for text in lines:
                self.out.write(text + "\n")
            self.out.flush()


async def _stream_items(
    writer: Writer,
    stream: Requester,
    request: Request,
    reply_type: type[R],
    field: str,
    columns: Sequence[Column],
) -> int:
    """Print every page of one listing under its header; return how many items."""
    writer.text(line(columns).rstrip())
    count = 0
    async for page in pages(stream, request, reply_type):
        records: Sequence[object] = getattr(page, field)
        writer.items(records, columns)
        count += len(records)
    return count


async def list_licenses(writer: Writer, stream: Requester, request: AdminListLicenses) -> None:
    writer.open("AdminLicenses")
    writer.open_items("licenses")
    writer.text("Issued licenses")
    count = await _stream_items(writer, stream, request, AdminLicenses, "licenses", LICENSE_COLUMNS)
    writer.close_items(last=True)
    writer.text(plural(count, "license"))
    writer.close()


async def list_keypacks(writer: Writer, stream: Requester, request: AdminListKeyPacks) -> None:
    writer.open("AdminKeyPacks")
    writer.open_items("keypacks")
    writer.text("Installed license key packs")
    count = await _stream_items(writer, stream, request, AdminKeyPacks, "keypacks", KEYPACK_COLUMNS)
    writer.close_items(last=True)
    writer.text(plural(count, "key pack"))
    writer.close()


async def per_user_report(
    writer: Writer, stream: Requester, request: AdminListLicenses, now: int
) -> None:
    """The per-user report: User CAL packs, totals, usage lines, User CALs held now."""
    packs: list[KeyPackInfo] = []
    async for page in pages(stream, AdminListKeyPacks(product=CalProduct.W2003_USER_CAL),
                            AdminKeyPacks):  # fmt: skip
        packs.extend(page.keypacks)
    live = [k for k in packs if not k.expires_at or k.expires_at > now]
    installed = sum(k.total for k in live)
    issued = sum(k.in_use for k in packs)
    writer.open("PerUserReport", installed=installed, issued=issued, keypack_count=len(live))
    writer.text(
        "Per User CAL report",
        f"User CALs installed: {installed} (in {plural(len(live), 'key pack')});"
        f" issued: {issued} (User CALs held now)",
        "",
        line(USER_PACK_COLUMNS).rstrip(),
    )
    writer.open_items("user_cal_packs")
    writer.items(packs, USER_PACK_COLUMNS)
    writer.close_items()
    writer.text("", "Per User CAL usage")
    writer.open_items("users")
    users = await _stream_items(
        writer, stream,
        AdminListUsers(since=request.since, until=request.until, user=request.user),
        AdminUsers, "users", USER_COLUMNS,
    )  # fmt: skip
    writer.close_items()
    writer.text(plural(users, "user"), "", "User CALs held now")
    writer.open_items("licenses")
    # Held now, whatever the date range: the licenses the packs' `issued` (in_use) counts.
    held = AdminListLicenses(
        product=CalProduct.W2003_USER_CAL, kind=LicenseKind.PERMANENT,
        status=LicenseStatus.ACTIVE, machine=request.machine, user=request.user,
    )  # fmt: skip
    count = await _stream_items(writer, stream, held, AdminLicenses, "licenses", LICENSE_COLUMNS)
    writer.close_items(last=True)
    writer.text(plural(count, "User CAL"))
    writer.close(users_count=users, licenses_count=count)
