"""What `tslic admin` prints: tables a person reads and JSON a script reads."""

from __future__ import annotations

import argparse
import io
import json

import pytest
from rich.console import Console
from tslic.client.admin.cli import _install, add_arguments
from tslic.client.admin.render import show, to_json
from tslic.protocol.domain import (
    ActivationMethod,
    ActivationState,
    CalProduct,
    KeyPackType,
    LicenseKind,
    LicenseStatus,
    Program,
    ServerRole,
    WindowsVersion,
)
from tslic.protocol.errors import ErrorCode, ServiceError
from tslic.protocol.messages import Message
from tslic.protocol.messages.admin import AdminKeyPacks, AdminLicenses, AdminStatus, AdminUsers
from tslic.protocol.messages.records import (
    ContactInfo,
    IssuedLicenseInfo,
    KeyPackInfo,
    ServerStatus,
    UserUsage,
)
from tslic.runtime.console import make_console

DAY = 86_400_000


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(["--server", "h:1", "--credential", "k", *argv])


def render(msg: Message) -> str:
    console = Console(record=True, width=200)
    show(console, msg)
    return console.export_text()


def test_status_and_keypacks_tables() -> None:
    status = ServerStatus(
        name="LS1", version=WindowsVersion.W2003, role=ServerRole.ENTERPRISE, domain="D",
        site="HQ", activation=ActivationState.ACTIVATED, method=ActivationMethod.AUTOMATIC,
        license_server_id="ABCDE-FGHJK", product_id="12345-678-1234567-12345",
        contact=ContactInfo(first_name="Ada"), certificate_temporary=False,
        security_group_enabled=True, security_group_members=("TS1",), prevent_upgrade=True,
    )  # fmt: skip
    text = render(AdminStatus(status=status))
    assert "activated" in text
    assert "ABCDE-FGHJK" in text
    assert "Windows Server 2003" in text
    pack = KeyPackInfo(
        keypack_id=3, product=CalProduct.W2003_DEVICE_CAL, program=Program.RETAIL,
        keypack_type=KeyPackType.RETAIL, description="d", total=10, issued=4, available=6,
        installed_at=DAY, expires_at=0,
    )  # fmt: skip
    table = render(AdminKeyPacks(keypacks=(pack,)))
    assert "Per Device CAL" in table
    assert "never" in table
    assert next(c.strip() for c in table.splitlines() if "retail" in c).count("│") >= 7
    assert (
        json.loads(json.dumps(to_json(AdminKeyPacks(keypacks=(pack,)))))["keypacks"][0]["available"]
        == 6
    )


def test_licenses_and_per_user_report() -> None:
    lic = IssuedLicenseInfo(
        license_id=1, keypack_id=0, product=CalProduct.W2003_USER_CAL,
        kind=LicenseKind.PERMANENT, status=LicenseStatus.ACTIVE, machine="PC1", user="ann",
        hwid=bytes(32), terminal_server="TS1", issued_at=DAY, expires_at=60 * DAY,
        validated=False,
    )  # fmt: skip
    usage = UserUsage(
        user="ann", product=CalProduct.W2003_USER_CAL, connections=3, first_seen=DAY,
        last_seen=2 * DAY,
    )  # fmt: skip
    text = render(AdminUsers(users=(usage,)))
    assert "Per User CAL usage report" in text
    assert "ann" in text
    text = render(AdminLicenses(licenses=(lic,)))
    assert "1970-03-02" in text
    listed = to_json(AdminLicenses(licenses=(lic,)))["licenses"]
    assert isinstance(listed, list)
    assert listed[0]["hwid"] == "00" * 32


def test_install_programs_map_to_the_request_fields() -> None:
    req = _install(parse("install", "--program", "open-license", "--product",
                         "w2003-device-cal", "--license-number", "12345678",
                         "--authorization-number", "ABC"))  # fmt: skip
    assert (req.program, req.license_number, req.authorization_number) == (
        Program.OPEN_LICENSE, "12345678", "ABC",
    )  # fmt: skip
    req = _install(parse("install", "--program", "transition", "--product",
                         "w2003-device-cal", "--token", "T"))  # fmt: skip
    assert req.transition_token == "T"
    with pytest.raises(ServiceError) as info:
        _install(parse("install", "--program", "keypack-code", "--product", "w2000-ts-cal"))
    assert info.value.code is ErrorCode.INVALID_FIELD


def test_names_a_remote_client_chose_are_shown_escaped() -> None:
    """A machine or user name with a terminal escape sequence (stored by an older version, or
    sent by a hostile client) reaches the terminal as visible text, and markup is not taken
    as markup."""
    lic = IssuedLicenseInfo(
        license_id=1, keypack_id=0, product=CalProduct.W2003_USER_CAL,
        kind=LicenseKind.PERMANENT, status=LicenseStatus.ACTIVE, machine="PC\x1b[2J\x07",
        user="[bold]ann[/bold]\u202e", hwid=bytes(32), terminal_server="TS\x1b]0;x\x07",
        issued_at=DAY, expires_at=0, validated=False,
    )  # fmt: skip
    buffer = io.StringIO()
    console = Console(file=buffer, width=300, color_system=None)
    show(console, AdminLicenses(licenses=(lic,)))
    out = buffer.getvalue()
    assert "\x1b" not in out
    assert "\x07" not in out
    assert "\u202e" not in out
    assert "PC\\x1b[2J\\x07" in out
    assert "[bold]ann[/bold]\\u202e" in out


def test_piped_output_is_full_width() -> None:
    """Not a terminal: a width no table reaches, so cells are never cut."""
    buffer = io.StringIO()
    console = make_console(file=buffer)
    assert console.width >= 10_000
    lic = IssuedLicenseInfo(
        license_id=1, keypack_id=0, product=CalProduct.W2003_USER_CAL,
        kind=LicenseKind.TEMPORARY, status=LicenseStatus.ACTIVE, machine="M" * 15,
        user="U" * 20, hwid=bytes(32), terminal_server="T" * 15, issued_at=DAY,
        expires_at=0, validated=False,
    )  # fmt: skip
    show(console, AdminLicenses(licenses=(lic,)))
    out = buffer.getvalue()
    assert "…" not in out
    assert "temporary" in out
    assert "Windows Server 2003 Terminal Server Per User CAL" in out
