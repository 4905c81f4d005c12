"""Licensing decisions of a running license server, under the virtual clock."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Unpack

import pytest
from trio.testing import MockClock
from tslic.protocol.clock import MS_PER_DAY, to_datetime
from tslic.protocol.domain import (
    CalProduct,
    ClientOS,
    LicenseKind,
    LicenseStatus,
    LicensingMode,
)
from tslic.protocol.errors import ErrorCode, ServiceError
from tslic.protocol.licenses import verify_license
from tslic.protocol.messages.admin import AdminKeyPacks, AdminListKeyPacks
from tslic.protocol.messages.licensing import LicenseGranted, Referral
from tslic.protocol.pki import cert_from_der
from tslic.runtime.peer import PeerStream
from tslic.server.license_server.config import PeerServer
from tslic.server.license_server.daemon import LicenseServer

from tests.license_server import harness as h

W2000_CAL = CalProduct.W2000_TS_CAL
DEVICE_CAL = CalProduct.W2003_DEVICE_CAL
USER_CAL = CalProduct.W2003_USER_CAL


async def ready(
    lab: h.Lab,
    version: int = 2003,
    packs: Sequence[tuple[CalProduct, int]] = (),
    name: str = "",
    **kw: Unpack[h.Overrides],
) -> LicenseServer:
    ls = await lab.start_ls(lab.config(name or f"LS{version}", version, **kw))
    await lab.activate(ls)
    for product, count in packs:
        await lab.install(ls, product, count)
    return ls


async def available(lab: h.Lab, ls: LicenseServer, product: CalProduct) -> int:
    async with lab.admin(ls) as adm:
        reply = await adm.request(AdminListKeyPacks())
    assert isinstance(reply, AdminKeyPacks)
    return sum(k.available for k in reply.keypacks if k.product is product)


async def permanent_for(dev: h.Device, s: PeerStream) -> LicenseGranted:
    """First connection (temporary), logon (validated), second connection (permanent)."""
    first = await dev.connect(s)
    assert first.kind is LicenseKind.TEMPORARY
    await dev.logon(s)
    return await dev.connect(s)


async def test_2003_ts_gets_2003_device_cal_after_post_logon_validation(
    lab: h.Lab, autojump_clock: MockClock
) -> None:
    ls = await ready(lab, packs=[(DEVICE_CAL, 2)])
    ts = h.TerminalServerPeer(lab, "TS1", 2003)
    await ts.enrol(ls)
    dev = h.Device("PC1", ClientOS.XP_PRO)  # OS equivalency does not exist on 2003
    async with ts.connect(ls) as s:
        first = await dev.connect(s)
        assert first.kind is LicenseKind.TEMPORARY
        assert first.expires_at - lab.clock.now() == pytest.approx(90 * MS_PER_DAY, abs=1000)
        again = await dev.connect(s)  # no logon yet: the same temporary comes back
        assert (again.kind, again.license_id) == (LicenseKind.TEMPORARY, first.license_id)
        await dev.logon(s)
        upgraded = await dev.connect(s)
    assert upgraded.kind is LicenseKind.PERMANENT
    assert upgraded.upgraded
    assert upgraded.product is DEVICE_CAL
    assert await available(lab, ls, DEVICE_CAL) == 1
    # The license is verifiable offline against the Clearinghouse root.
    assert lab.ch is not None
    root = cert_from_der(lab.ch.root_der)
    signed = verify_license(dev.license, root, to_datetime(lab.clock.now()))
    assert signed.body.hwid == dev.hwid
    assert signed.body.issuer == ls.config.name


async def test_2000_ts_built_in_for_pro_clients_and_w2000_cal_first(
    lab: h.Lab, autojump_clock: MockClock
) -> None:
    ls = await ready(lab, packs=[(W2000_CAL, 1), (DEVICE_CAL, 1)])
    ts = h.TerminalServerPeer(lab, "TS2K", 2000)
    await ts.enrol(ls)
    async with ts.connect(ls) as s:
        for os in (ClientOS.W2000_PRO, ClientOS.XP_PRO):
            got = await h.Device(f"PRO-{os}", os).connect(s)
            assert (got.kind, got.product) == (LicenseKind.BUILT_IN, CalProduct.W2000_BUILT_IN)
            assert got.expires_at == 0
        first = await permanent_for(h.Device("HOME1", ClientOS.XP_HOME), s)
        second = await permanent_for(h.Device("NT4", ClientOS.NT4), s)
        third = await h.Device("W98", ClientOS.WIN98).connect(s)
    assert first.product is W2000_CAL  # most appropriate first
    assert second.product is DEVICE_CAL  # then the license upgrade to a 2003 CAL
    assert third.kind is LicenseKind.TEMPORARY


async def test_prevent_license_upgrade_keeps_2003_cals_from_2000_ts(
    lab: h.Lab, autojump_clock: MockClock
) -> None:
    ls = await ready(lab, packs=[(DEVICE_CAL, 3)], prevent_upgrade=True)
    ts = h.TerminalServerPeer(lab, "TS2K", 2000)
    await ts.enrol(ls)
    dev = h.Device("HOME", ClientOS.XP_HOME)
    async with ts.connect(ls) as s:
        await dev.connect(s)
        await dev.logon(s)
        got = await dev.connect(s)
    assert got.kind is LicenseKind.TEMPORARY
    assert got.event_ids == (21,)
    assert await available(lab, ls, DEVICE_CAL) == 3


async def test_empty_pool_temporary_once_then_refused_after_90_days(
    lab: h.Lab, autojump_clock: MockClock
) -> None:
    ls = await ready(lab)
    ts = h.TerminalServerPeer(lab, "TS1", 2003)
    await ts.enrol(ls)
    dev = h.Device("PC1")
    async with ts.connect(ls) as s:
        first = await dev.connect(s)
        await dev.logon(s)
        kept = await dev.connect(s)
    assert kept.license_id == first.license_id
    assert kept.event_ids == (21,)
    await h.sleep_days(lab, 89.9)
    async with ts.connect(ls) as s:
        still = await dev.connect(s)
        assert still.license_id == first.license_id
    await h.sleep_days(lab, 0.2)
    async with ts.connect(ls) as s:
        with pytest.raises(ServiceError) as info:
            await dev.connect(s)
        assert info.value.code is ErrorCode.NO_LICENSE_AVAILABLE
        dev.license = b""  # even as a brand-new request, the device had its temporary
        with pytest.raises(ServiceError) as again:
            await dev.connect(s)
        assert again.value.code is ErrorCode.NO_LICENSE_AVAILABLE
        other = await h.Device("PC2").connect(s)  # another device gets its own
    assert other.kind is LicenseKind.TEMPORARY


async def test_validated_temporary_upgraded_once_cals_are_installed(
    lab: h.Lab, autojump_clock: MockClock
) -> None:
    ls = await ready(lab)
    ts = h.TerminalServerPeer(lab, "TS1", 2003)
    await ts.enrol(ls)
    dev = h.Device("PC1")
    async with ts.connect(ls) as s:
        await dev.connect(s)
        await dev.logon(s)
    await h.sleep_days(lab, 30)
    await lab.install(ls, DEVICE_CAL, 1)
    async with ts.connect(ls) as s:
        got = await dev.connect(s)
    assert got.kind is LicenseKind.PERMANENT
    assert got.upgraded


async def test_lease_is_52_to_89_days_renewed_within_7_days_and_returned_when_expired(
    lab: h.Lab, autojump_clock: MockClock
) -> None:
    ls = await ready(lab, packs=[(DEVICE_CAL, 1)])
    ts = h.TerminalServerPeer(lab, "TS1", 2003)
    await ts.enrol(ls)
    dev = h.Device("PC1")
    async with ts.connect(ls) as s:
        got = await permanent_for(dev, s)
    issued = lab.clock.now()
    days = (got.expires_at - issued) / MS_PER_DAY
    assert 52 <= round(days) <= 89
    # Far from expiry: the client keeps its license unchanged.
    await h.sleep_days(lab, 10)
    async with ts.connect(ls) as s:
        same = await dev.connect(s)
    assert (same.expires_at, same.upgraded) == (got.expires_at, False)
    # Within 7 days of expiry: renewed for a new lease, same license id, same CAL.
    await h.sleep_days(lab, (got.expires_at - lab.clock.now()) / MS_PER_DAY - 6.5)
    async with ts.connect(ls) as s:
        renewed = await dev.connect(s)
    assert renewed.license_id == got.license_id
    assert renewed.upgraded
    assert renewed.expires_at > got.expires_at
    assert 52 <= round((renewed.expires_at - lab.clock.now()) / MS_PER_DAY) <= 89
    assert await available(lab, ls, DEVICE_CAL) == 0
    # Not renewed: the sweeper returns the CAL to the pool once the lease runs out.
    await h.sleep_days(lab, (renewed.expires_at - lab.clock.now()) / MS_PER_DAY + 1.1)
    assert await available(lab, ls, DEVICE_CAL) == 1
    rows = await ls.store.run_op(
        lambda db: db.execute(
            "SELECT status FROM licenses WHERE id = ?", (got.license_id,)
        ).fetchall()
    )
    assert rows == [(int(LicenseStatus.EXPIRED),)]


async def test_lease_lengths_follow_the_seed(lab: h.Lab, autojump_clock: MockClock) -> None:
    lengths = []
    for name in ("A", "B"):
        ls = await ready(lab, packs=[(DEVICE_CAL, 3)], seed=42, data_dir=lab.tmp / name)
        ts = h.TerminalServerPeer(lab, f"TS{name}", 2003)
        await ts.enrol(ls)
        async with ts.connect(ls) as s:
            lengths.append(
                [
                    round(((await permanent_for(h.Device(f"P{i}"), s)).expires_at
                           - lab.clock.now()) / MS_PER_DAY)
                    for i in range(3)
                ]
            )  # fmt: skip
    assert lengths[0] == lengths[1]


async def test_per_user_cals_are_issued_not_decremented_and_reported(
    lab: h.Lab, autojump_clock: MockClock
) -> None:
    from tslic.protocol.messages.admin import (
        AdminKeyPacks,
        AdminListKeyPacks,
        AdminListUsers,
        AdminUsers,
    )

    ls = await ready(lab, packs=[(USER_CAL, 2)])
    ts = h.TerminalServerPeer(lab, "TS1", 2003)
    await ts.enrol(ls)
    async with ts.connect(ls) as s:
        for i, user in enumerate(["ann", "bob", "cy", "ann"]):
            dev = h.Device(f"PC{i}", user=user)
            got = await dev.connect(s, LicensingMode.PER_USER)
            assert (got.kind, got.product) == (LicenseKind.PERMANENT, USER_CAL)
    assert await available(lab, ls, USER_CAL) == 2  # never decremented (KB823313)
    async with lab.admin(ls) as adm:
        report = await adm.request(AdminListUsers())
        packs = await adm.request(AdminListKeyPacks(product=USER_CAL))
    assert isinstance(report, AdminUsers)
    usage = {u.user: u.connections for u in report.users}
    assert usage == {"ann": 2, "bob": 1, "cy": 1}
    assert isinstance(packs, AdminKeyPacks)
    # Not taken from the pool, but the pack says who holds one (issue 15: it said 0 issued).
    assert [(k.issued, k.in_use) for k in packs.keypacks] == [(0, 3)]


async def test_per_user_mode_without_user_cals_gets_temporaries_only(
    lab: h.Lab, autojump_clock: MockClock
) -> None:
    ls = await ready(lab, packs=[(DEVICE_CAL, 2)])
    ts = h.TerminalServerPeer(lab, "TS1", 2003)
    await ts.enrol(ls)
    dev = h.Device("PC1")
    async with ts.connect(ls) as s:
        got = await dev.connect(s, LicensingMode.PER_USER)
        assert got.kind is LicenseKind.TEMPORARY
        assert got.event_ids == (21,)


async def test_unactivated_server_issues_only_temporaries_with_event_18(
    lab: h.Lab, autojump_clock: MockClock
) -> None:
    ls = await lab.start_ls(lab.config("LSU", 2003))
    assert ls.activation.temporary
    ts = h.TerminalServerPeer(lab, "TS1", 2003)
    await ts.enrol(ls)
    dev = h.Device("PC1")
    async with ts.connect(ls) as s:
        await dev.connect(s)
        await dev.logon(s)
        got = await dev.connect(s)
    assert got.kind is LicenseKind.TEMPORARY
    assert got.event_ids == (18,)
    rows = await ls.store.run_op(
        lambda db: db.execute("SELECT COUNT(*) FROM audit WHERE event_id = 18").fetchone()
    )
    assert rows[0] >= 1


async def test_referral_to_a_peer_that_has_the_cals(lab: h.Lab, autojump_clock: MockClock) -> None:
    ls = await ready(
        lab, peers=(PeerServer.parse("LS9=10.0.0.9:4000=w2003-device-cal"),), name="LSR"
    )
    ts = h.TerminalServerPeer(lab, "TS1", 2003)
    await ts.enrol(ls)
    dev = h.Device("PC1")
    async with ts.connect(ls) as s:
        await dev.connect(s)
        await dev.logon(s)
        got = await dev.exchange(s)
    assert isinstance(got, Referral)
    assert got.product is DEVICE_CAL
    assert [(r.name, r.address) for r in got.servers] == [("LS9", "10.0.0.9:4000")]


async def test_returned_license_goes_back_to_the_pool(
    lab: h.Lab, autojump_clock: MockClock
) -> None:
    from tslic.protocol.messages.licensing import ReturnLicense

    ls = await ready(lab, packs=[(DEVICE_CAL, 1)])
    ts = h.TerminalServerPeer(lab, "TS1", 2003)
    await ts.enrol(ls)
    dev = h.Device("PC1")
    async with ts.connect(ls) as s:
        got = await permanent_for(dev, s)
        assert isinstance(got, LicenseGranted)
        assert await available(lab, ls, DEVICE_CAL) == 0
        await s.request(ReturnLicense(license_id=got.license_id, hwid=dev.hwid))
    assert await available(lab, ls, DEVICE_CAL) == 1
