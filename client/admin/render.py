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
)
from tslic.protocol.messages.records import IssuedLicenseInfo, KeyPackInfo


def _plain(value: object) -> object:
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


def _date(ms: int, never: str = "never") -> str:
    return format_date(ms) if ms else never


def _pending(members: tuple[str, ...]) -> str:
    return ", ".join(members) or "(empty)"


PENDING_NOTE = (
    'Membership changes take effect when the license server restarts (TechNet "Control the'
    ' issuance of Terminal Server licenses"); until then it enforces the members read at its'
    " start."
)


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
            _date(k.expires_at),
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
            x.machine,
            x.user,
            x.hwid.hex()[:16],
            x.status.name.lower(),
            "yes" if x.validated else "no",
            x.terminal_server,
            _date(x.issued_at),
            _date(x.expires_at),
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
    elif isinstance(reply, AdminLicenses):
        if reply.users:
            table = Table(title="Per User CAL usage report")
            for col in ("User", "Product", "Connections", "First seen", "Last seen"):
                table.add_column(col)
            for u in reply.users:
                table.add_row(
                    u.user, u.product.label, str(u.connections),
                    _date(u.first_seen), _date(u.last_seen),
                )  # fmt: skip
            console.print(table)
        console.print(licenses_table(reply.licenses, "Issued licenses"))
    elif isinstance(reply, AdminActivationStep):
        console.print(f"Product ID:   {reply.product_id}")
        console.print(f"Request code: {reply.request_code}")
        console.print(reply.instructions)
    else:
        console.print_json(data=to_json(reply))
