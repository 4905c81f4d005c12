"""How `tslic admin` shows the license server's answers: rich tables, or JSON.

Contract: `to_json(message)` turns any reply into plain JSON values (bytes as hex, enums as
their values, times as ISO dates next to the raw milliseconds); `show(console, reply)` prints
the table a person reads for each reply type. Neither raises for a reply it does not know:
it prints the JSON form instead.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
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


# C0 and C1 control characters (and DEL): a remote peer's text must not drive the terminal.
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}


def printable(text: str) -> str:
    """`text` with control characters shown as \\xNN escapes."""
    return text.translate(_CONTROL)


def status_table(reply: AdminStatus) -> Table:
    st = reply.status
    table = Table(title=f"License server {st.name}", show_header=False)
    table.add_column("property", style="bold")
    table.add_column("value")
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
        table.add_row(name, value)
    return table


def keypacks_table(keypacks: tuple[KeyPackInfo, ...]) -> Table:
    table = Table(title="Installed license key packs")
    for col in ("ID", "Type", "Product", "Program", "Total", "Issued", "Available", "Expires"):
        table.add_column(
            col, justify="right" if col in ("Total", "Issued", "Available") else "left"
        )
    for k in keypacks:
        table.add_row(
            str(k.keypack_id),
            k.keypack_type.name.lower(),
            k.product.label,
            k.program.label if k.program else "-",
            str(k.total),
            str(k.issued),
            str(k.available),
            date_text(k.expires_at),
        )
    return table


def licenses_table(licenses: tuple[IssuedLicenseInfo, ...], title: str) -> Table:
    table = Table(title=title)
    for col in ("ID", "Kind", "Product", "Machine", "User", "Hardware ID", "Status",
                "Validated", "Terminal server", "Issued", "Expires"):  # fmt: skip
        table.add_column(col)
    for x in licenses:
        table.add_row(
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
        console.print("The license key pack was installed.")
        console.print(keypacks_table((reply.keypack,)))
    elif isinstance(reply, AdminUsers):
        table = Table(title="Per User CAL usage report")
        for col in ("User", "Product", "Connections", "First seen", "Last seen"):
            table.add_column(col)
        for u in reply.users:
            table.add_row(
                printable(u.user), u.product.label, str(u.connections),
                date_text(u.first_seen), date_text(u.last_seen),
            )  # fmt: skip
        console.print(table)
    elif isinstance(reply, AdminLicenses):
        console.print(licenses_table(reply.licenses, "Issued licenses"))
    elif isinstance(reply, AdminActivationStep):
        console.print(f"Product ID:   {reply.product_id}")
        console.print(f"Request code: {reply.request_code}")
        console.print(reply.instructions)
    else:
        console.print_json(data=to_json(reply))
