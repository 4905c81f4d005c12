"""How `tslic admin` shows the license server's answers: rich tables, or JSON.

Contract: `to_json(message)` turns any reply into plain JSON values (bytes as hex, enums as
their values, times as ISO dates next to the raw milliseconds); `show(console, reply)` prints
the table a person reads for each reply type. Neither raises for a reply it does not know:
it prints the JSON form instead.
- Tables print on runtime.console.make_console(): a terminal's own width, and when piped a
  width no table reaches, so a log holds whole rows; cells fold, never cut short ("tem…").
- Every string a table shows goes through `cell()`: no markup is interpreted (a user called
  "[bold]" is shown as such) and control characters, so terminal escape sequences, are shown
  as visible escapes (protocol/names.py `shown`): machine and user names come from remote
  RDP clients.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text
from tslic.protocol.clock import format_date
from tslic.protocol.codec import to_wire
from tslic.protocol.domain import SECURITY_GROUP_NAMES
from tslic.protocol.messages import Message
from tslic.protocol.messages.admin import (
    AdminActivationStep,
    AdminKeyPackInstalled,
    AdminKeyPacks,
    AdminLicenses,
    AdminStatus,
    AdminUsers,
)
from tslic.protocol.messages.records import IssuedLicenseInfo, KeyPackInfo
from tslic.protocol.names import shown


def cell(value: object) -> Text:
    """A table cell: plain text, unprintable characters escaped."""
    return Text(shown(str(value)))


def new_table(title: str, columns: tuple[str, ...], *, right: tuple[str, ...] = ()) -> Table:
    table = Table(title=shown(title))
    for col in columns:
        table.add_column(col, justify="right" if col in right else "left", overflow="fold")
    return table


def add_row(table: Table, *values: object) -> None:
    table.add_row(*(cell(v) for v in values))


def _plain(value: object) -> object:
    if value is None or isinstance(value, str | int):
        return value
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def to_json(msg: Message) -> dict[str, object]:
    """A reply as JSON-ready values, with its type name."""
    data = {name: _plain(value) for name, value in to_wire(msg).items()}
    return {"type": type(msg).__name__, **data}


def record_json(record: object) -> dict[str, object]:
    """One record (a listing's item) as JSON-ready values (listed records are flat maps)."""
    return {k: v.hex() if isinstance(v, bytes) else _plain(v) for k, v in to_wire(record).items()}


def date_text(ms: int, never: str = "never") -> str:
    return format_date(ms) if ms else never


def _pending(members: tuple[str, ...]) -> str:
    return ", ".join(members) or "(empty)"


PENDING_NOTE = (
    'Membership changes take effect when the license server restarts (TechNet "Control the'
    ' issuance of Terminal Server licenses"); until then it enforces the members read at its'
    " start."
)


def plural(count: int, noun: str) -> str:
    """ "1 license", "2 licenses"."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def printable(text: str) -> str:
    """`text` with control and formatting characters (C0, C1, DEL, bidirectional overrides)
    shown as \\xNN / \\uNNNN escapes: a remote peer's text must not drive the terminal
    (protocol/names.py `shown`, one rule for every surface)."""
    return shown(text)


def status_table(reply: AdminStatus) -> Table:
    st = reply.status
    table = Table(title=f"License server {shown(st.name)}", show_header=False)
    table.add_column("property", style="bold", overflow="fold")
    table.add_column("value", overflow="fold")
    c = st.contact
    rows = [
        ("Version", st.version.label),
        ("Role", f"{st.role} license server"),
        ("Domain / site", f"{st.domain} / {st.site}"),
        ("Activation status", str(st.activation)),
        ("Certificate", "temporary (self-signed)" if st.certificate_temporary else "activated"),
        ("License Server ID", st.license_server_id or "-"),
        ("Product ID", st.product_id),
        ("Installation method", str(st.method)),
        ("Required information", f"{c.first_name} {c.last_name}, {c.company}, {c.country}"),
        ("E-mail", c.email or "-"),
        ("Security group policy", "enabled" if st.security_group_enabled else "disabled"),
        (SECURITY_GROUP_NAMES[0], ", ".join(st.security_group_members) or "(empty)"),
        ("  at the next start (local list)", _pending(st.security_group_pending)),
        ("Prevent License Upgrade", "on" if st.prevent_upgrade else "off"),
    ]
    for name, value in rows:
        add_row(table, name, value)
    return table


def program_label(k: KeyPackInfo) -> str:
    """The key pack's license program; a transition token's pack is installed as a retail
    one but says what it is (its description names the offer)."""
    if "transition offer" in k.description:
        return "Transition offer (KB 823313)"
    return k.program.label if k.program else "-"


def keypacks_table(keypacks: tuple[KeyPackInfo, ...]) -> Table:
    table = new_table(
        "Installed license key packs",
        ("ID", "Type", "Product", "Program", "Total", "Issued", "Available", "Expires"),
        right=("Total", "Issued", "Available"),
    )
    for k in keypacks:
        add_row(
            table,
            str(k.keypack_id),
            k.keypack_type.name.lower(),
            k.product.label,
            program_label(k),
            str(k.total),
            str(k.issued),
            str(k.available),
            date_text(k.expires_at),
        )
    return table


def licenses_table(licenses: tuple[IssuedLicenseInfo, ...], title: str) -> Table:
    table = new_table(
        title,
        ("ID", "Kind", "Product", "Machine", "User", "Hardware ID", "Status", "Validated",
         "Terminal server", "Issued", "Expires"),
    )  # fmt: skip
    for x in licenses:
        add_row(
            table,
            str(x.license_id),
            str(x.kind),
            x.product.label,
            printable(x.machine),
            printable(x.user),
            x.hwid.hex()[:16],
            x.status.name.lower(),
            "yes" if x.validated else "no",
            printable(x.terminal_server),
            date_text(x.issued_at),
            date_text(x.expires_at),
        )
    return table


def show(console: Console, reply: Message) -> None:
    """Print a reply for a person."""
    if isinstance(reply, AdminStatus):
        console.print(status_table(reply))
    elif isinstance(reply, AdminKeyPacks):
        console.print(keypacks_table(reply.keypacks))
    elif isinstance(reply, AdminKeyPackInstalled):
        if reply.already_installed:
            console.print("The license key pack is already installed, nothing changed.")
        else:
            console.print("The license key pack was installed.")
        console.print(keypacks_table((reply.keypack,)))
    elif isinstance(reply, AdminUsers):
        table = new_table(
            "Per User CAL usage report",
            ("User", "Product", "Connections", "First seen", "Last seen"),
        )
        for u in reply.users:
            add_row(
                table, u.user, u.product.label, str(u.connections),
                date_text(u.first_seen), date_text(u.last_seen),
            )  # fmt: skip
        console.print(table)
    elif isinstance(reply, AdminLicenses):
        console.print(licenses_table(reply.licenses, "Issued licenses"))
    elif isinstance(reply, AdminActivationStep):
        console.print(cell(f"Product ID:   {reply.product_id}"))
        if reply.request_code:  # the web form does not ask for one
            console.print(cell(f"Request code: {reply.request_code}"))
        console.print(cell(reply.instructions))
    else:
        console.print_json(data=to_json(reply))
