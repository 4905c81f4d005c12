"""A referral that ends in a permanent CAL (CAL-11, CAL-12, SEC-9): the referring server says
whether the device's temporary was validated, the target trusts a terminal-server
certificate another activated server issued, and upgrades another server's validated
temporary only when the forwarded statement and a genuine, unexpired license agree."""

from __future__ import annotations

from dataclasses import replace
from typing import Unpack

import pytest
from trio.testing import MockClock
from tslic.protocol.domain import CalProduct, ClientOS, LicenseKind, LicensingMode
from tslic.protocol.errors import ErrorCode, ServiceError
from tslic.protocol.licenses import open_license
from tslic.protocol.messages.admin import AdminKeyPacks, AdminListKeyPacks
from tslic.protocol.messages.licensing import (
    IssueLicense,
    LicenseGranted,
    Referral,
    UpgradeLicenseRequest,
)
from tslic.server.license_server.config import PeerServer
from tslic.server.license_server.daemon import LicenseServer

from tests.license_server import harness as h

DEVICE_CAL = CalProduct.W2003_DEVICE_CAL


async def ready(lab: h.Lab, name: str, cals: int = 0, **kw: Unpack[h.Overrides]) -> LicenseServer:
    ls = await lab.start_ls(lab.config(name, 2003, **kw))
    await lab.activate(ls)
    if cals:
        await lab.install(ls, DEVICE_CAL, cals)
    return ls


async def available(lab: h.Lab, ls: LicenseServer) -> int:
    async with lab.admin(ls) as adm:
        reply = await adm.request(AdminListKeyPacks())
    assert isinstance(reply, AdminKeyPacks)
    return sum(k.available for k in reply.keypacks if k.product is DEVICE_CAL)


async def pair(lab: h.Lab) -> tuple[LicenseServer, LicenseServer, h.TerminalServerPeer]:
    """LS3 with CALs; LS7 without, knowing LS3; a terminal server enrolled at LS7 only."""
    ls3 = await ready(lab, "LS3", cals=2)
    ls7 = await ready(lab, "LS7", peers=(PeerServer.parse(f"LS3={ls3.address}"),))
    ts = h.TerminalServerPeer(lab, "TS131", 2003)
    await ts.enrol(ls7)
    return ls3, ls7, ts


def upgrade(dev: h.Device, *, validated: bool) -> UpgradeLicenseRequest:
    return UpgradeLicenseRequest(
        license=dev.license,
        hwid=dev.hwid,
        machine=dev.machine,
        user=dev.user,
        client_os=dev.os,
        mode=LicensingMode.PER_DEVICE,
        temporary_validated=validated,
    )


async def test_referral_says_whether_the_temporary_was_validated(
    lab: h.Lab, autojump_clock: MockClock
) -> None:
    _, ls7, ts = await pair(lab)
    dev = h.Device("PC1", ClientOS.XP_PRO)
    async with ts.connect(ls7) as s:
        assert (await dev.connect(s)).kind is LicenseKind.TEMPORARY
        before = await dev.connect(s)  # no logon yet: LS7 keeps the device's temporary
        assert isinstance(before, LicenseGranted)
        await dev.logon(s)
        after = await dev.exchange(s)
    assert isinstance(after, Referral)
    assert after.temporary_validated
    assert [r.name for r in after.servers] == ["LS3"]


async def test_target_upgrades_a_validated_temporary_it_did_not_issue(
    lab: h.Lab, autojump_clock: MockClock
) -> None:
    ls3, ls7, ts = await pair(lab)
    dev = h.Device("PC1", ClientOS.XP_PRO)
    async with ts.connect(ls7) as s:
        await dev.connect(s)
        await dev.logon(s)
    # SEC-9: LS3 accepts the certificate LS7 issued (it chains to the Clearinghouse root).
    async with ts.connect(ls3) as s:
        plain = await s.request(upgrade(dev, validated=False))
        assert isinstance(plain, LicenseGranted)
        # Without the statement another server's license is a new request: a temporary.
        assert plain.kind is LicenseKind.TEMPORARY
        assert open_license(plain.license).body.issuer == "LS3"
        got = await s.request(upgrade(dev, validated=True))
    assert isinstance(got, LicenseGranted)
    assert (got.kind, got.product) == (LicenseKind.PERMANENT, DEVICE_CAL)
    body = open_license(got.license).body
    assert (body.issuer, body.hwid, body.machine) == ("LS3", dev.hwid, "PC1")
    assert await available(lab, ls3) == 1


async def test_statement_needs_a_genuine_unexpired_license_of_this_device(
    lab: h.Lab, autojump_clock: MockClock
) -> None:
    ls3, ls7, ts = await pair(lab)
    dev = h.Device("PC1", ClientOS.XP_PRO)
    other = h.Device("PC2", ClientOS.XP_PRO)
    async with ts.connect(ls7) as s:
        await dev.connect(s)
        await dev.logon(s)
    async with ts.connect(ls3) as s:
        # Another device's license: refused outright (HWID_MISMATCH).
        with pytest.raises(ServiceError) as refused:
            await s.request(replace(upgrade(dev, validated=True), hwid=other.hwid))
        assert refused.value.code is ErrorCode.HWID_MISMATCH
        # A damaged license: INVALID_LICENSE, nothing issued.
        damaged = replace(upgrade(dev, validated=True), license=dev.license[:-8] + bytes(8))
        with pytest.raises(ServiceError) as bad:
            await s.request(damaged)
        assert bad.value.code is ErrorCode.INVALID_LICENSE
    assert await available(lab, ls3) == 2
    # 91 days later LS7's temporary has expired: the statement no longer earns a CAL.
    await h.sleep_days(lab, 91)
    async with ts.connect(ls3) as s:
        late = await s.request(upgrade(dev, validated=True))
    assert isinstance(late, LicenseGranted)
    assert late.kind is LicenseKind.TEMPORARY
    assert await available(lab, ls3) == 2


async def test_certificate_of_an_unactivated_server_is_not_trusted_elsewhere(
    lab: h.Lab, autojump_clock: MockClock
) -> None:
    ls3 = await ready(lab, "LS3", cals=2)
    unactivated = await lab.start_ls(lab.config("LS0", 2003))
    ts = h.TerminalServerPeer(lab, "TS9", 2003)
    await ts.enrol(unactivated)  # a chain topped by LS0's temporary self-signed certificate
    dev = h.Device("PC9", ClientOS.XP_PRO)
    async with ts.connect(ls3) as s:
        with pytest.raises(ServiceError) as denied:
            await s.request(
                IssueLicense(
                    hwid=dev.hwid,
                    machine=dev.machine,
                    user=dev.user,
                    client_os=dev.os,
                    mode=LicensingMode.PER_DEVICE,
                )
            )
    assert denied.value.code is ErrorCode.ACCESS_DENIED
