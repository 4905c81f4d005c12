"""Paged admin listings against a license server in process (PAGE-1..7, issue 15).

Each test drives the real admin conversation (harness.Lab) and checks pages, cursors,
filters and the per-user figures; the 100,000-license listing over the real CLI is in
tests/admin/test_listing_scale.py.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
from tslic.protocol.domain import CalProduct, ClientOS, LicenseKind, LicenseStatus, LicensingMode
from tslic.protocol.errors import ErrorCode, LocalProtocolError, ServiceError
from tslic.protocol.messages.admin import (
    AdminKeyPacks,
    AdminLicenses,
    AdminListKeyPacks,
    AdminListLicenses,
    AdminListUsers,
    AdminUsers,
)
from tslic.protocol.messages.licensing import IssueLicense
from tslic.protocol.messages.records import IssuedLicenseInfo
from tslic.protocol.paging import MAX_PAGE_ITEMS
from tslic.runtime.peer import PeerStream
from tslic.server.license_server.daemon import LicenseServer

from tests.license_server import harness as h


async def _ready(lab: Any) -> tuple[LicenseServer, Any]:
    ls = await lab.start_ls(lab.config("LS1", 2003))
    ts = h.TerminalServerPeer(lab, "TS1", 2003)
    await ts.enrol(ls)
    return ls, ts


async def _issue(stream: PeerStream, machine: str, count: int, user: str = "alice") -> None:
    for _ in range(count):
        await h.Device(machine, user=user).connect(stream)


async def _pages(adm: PeerStream, request: AdminListLicenses) -> list[AdminLicenses]:
    pages: list[AdminLicenses] = []
    cursor = request.cursor
    while True:
        fields = {n: getattr(request, n) for n in request.__dataclass_fields__}
        reply = await adm.request(AdminListLicenses(**{**fields, "cursor": cursor}))
        assert isinstance(reply, AdminLicenses)
        pages.append(reply)
        cursor = reply.next_cursor
        if not cursor:
            return pages


def _keys(licenses: list[IssuedLicenseInfo]) -> list[tuple[int, int]]:
    return [(x.issued_at, x.license_id) for x in licenses]


async def test_pages_follow_the_cursor_and_stay_stable_under_inserts(
    lab: Any, autojump_clock: trio.testing.MockClock
) -> None:
    ls, ts = await _ready(lab)
    request = AdminListLicenses(machine="PCX", limit=2)
    async with ts.connect(ls) as s, lab.admin(ls) as adm:
        await _issue(s, "PCX", 4)
        await _issue(s, "OTHER", 2)
        first = await adm.request(request)
        assert isinstance(first, AdminLicenses)
        await _issue(s, "PCX", 3)
        fields = {n: getattr(request, n) for n in request.__dataclass_fields__}
        rest = await _pages(adm, AdminListLicenses(**{**fields, "cursor": first.next_cursor}))
    listed = [*first.licenses, *(x for p in rest for x in p.licenses)]
    assert [len(first.licenses), *(len(p.licenses) for p in rest)] == [2, 2, 2, 1]
    assert _keys(listed) == sorted(_keys(listed))
    assert len({x.license_id for x in listed}) == 7
    assert {x.machine for x in listed} == {"PCX"}


async def test_pages_are_cut_to_fit_a_frame_whatever_the_names(
    lab: Any, autojump_clock: trio.testing.MockClock
) -> None:
    # Issue 15: one reply for the whole listing was FRAME_TOO_LARGE past ~64 KiB. A client's
    # user name is now bounded on the wire (255 characters, MS-RDPBCGR's cbUserName): a longer
    # one is refused before it can be stored, so every record is bounded; the byte budget that
    # cuts pages is tested with large items in tests/protocol/test_paging.py.
    with pytest.raises(LocalProtocolError):
        IssueLicense(
            hwid=bytes(32), machine="PCBIG", user="u" * 9_000, client_os=ClientOS.XP_PRO,
            mode=LicensingMode.PER_DEVICE,
        )  # fmt: skip
    ls, ts = await _ready(lab)
    async with ts.connect(ls) as s:
        for i in range(12):
            await _issue(s, "PCBIG", 1, user=f"{i:02d}" + "u" * 253)
    async with lab.admin(ls) as adm:
        pages = await _pages(adm, AdminListLicenses(machine="PCBIG"))
    assert sum(len(p.licenses) for p in pages) == 12
    assert all(p.licenses for p in pages)
    assert {len(x.user) for p in pages for x in p.licenses} == {255}


async def test_a_cursor_for_another_listing_or_other_filters_is_refused(
    lab: Any, autojump_clock: trio.testing.MockClock
) -> None:
    ls, ts = await _ready(lab)
    async with ts.connect(ls) as s:
        await _issue(s, "PCX", 3)
    async with lab.admin(ls) as adm:
        first = await adm.request(AdminListLicenses(machine="PCX", limit=1))
        assert isinstance(first, AdminLicenses)
        packs = await adm.request(AdminListKeyPacks(cursor=b""))
        assert isinstance(packs, AdminKeyPacks)
        for bad in (
            AdminListLicenses(machine="PCY", limit=1, cursor=first.next_cursor),
            AdminListLicenses(cursor=b"not a cursor"),
            AdminListUsers(cursor=first.next_cursor),
        ):
            with pytest.raises(ServiceError) as refused:
                await adm.request(bad)
            assert refused.value.code is ErrorCode.INVALID_REQUEST
            assert refused.value.detail["field"] == "cursor"
        again = await adm.request(
            AdminListLicenses(machine="pcx", limit=1, cursor=first.next_cursor)
        )
    assert isinstance(again, AdminLicenses)  # same filters (any case): accepted, connection alive
    assert again.licenses[0].license_id != first.licenses[0].license_id


async def test_filters_are_applied_by_the_server(
    lab: Any, autojump_clock: trio.testing.MockClock
) -> None:
    ls, ts = await _ready(lab)
    async with ts.connect(ls) as s:
        await _issue(s, "PC1", 2, user="Ann")
    start = lab.clock.now()
    await trio.sleep(3600)
    async with ts.connect(ls) as s:
        await _issue(s, "PC2", 3, user="bob")
    async with lab.admin(ls) as adm:
        everything = await _pages(adm, AdminListLicenses())
        ann = await _pages(adm, AdminListLicenses(user="ANN"))
        later = await _pages(adm, AdminListLicenses(since=start + 1))
        temporaries = await _pages(adm, AdminListLicenses(kind=LicenseKind.TEMPORARY))
        returned = await _pages(adm, AdminListLicenses(status=LicenseStatus.RETURNED))
        user_cals = await _pages(adm, AdminListLicenses(product=CalProduct.W2003_USER_CAL))
    every = [x for p in everything for x in p.licenses]
    assert len(every) == 5
    assert {x.user for p in ann for x in p.licenses} == {"Ann"}
    assert sum(len(p.licenses) for p in ann) == 2
    assert {x.machine for p in later for x in p.licenses} == {"PC2"}
    assert sum(len(p.licenses) for p in temporaries) == 5  # an unactivated server
    assert [x for p in returned for x in p.licenses] == []
    assert [x for p in user_cals for x in p.licenses] == []


async def test_key_packs_and_users_are_paged_and_user_cal_packs_count_holders(
    lab: Any, autojump_clock: trio.testing.MockClock
) -> None:
    ls = await lab.start_ls(lab.config("LS1", 2003))
    await lab.activate(ls)
    for product, count in ((CalProduct.W2003_USER_CAL, 2), (CalProduct.W2003_DEVICE_CAL, 5),
                           (CalProduct.W2003_USER_CAL, 1)):  # fmt: skip
        await lab.install(ls, product, count)
    ts = h.TerminalServerPeer(lab, "TS1", 2003)
    await ts.enrol(ls)
    async with ts.connect(ls) as s:
        for user in ("ann", "bob", "cy", "dee"):  # more users than the 3 User CALs installed
            got = await h.Device(f"PC-{user}", user=user).connect(s, LicensingMode.PER_USER)
            assert got.kind is LicenseKind.PERMANENT
    async with lab.admin(ls) as adm:
        packs: list[AdminKeyPacks] = []
        cursor = b""
        while True:
            page = await adm.request(AdminListKeyPacks(limit=1, cursor=cursor))
            assert isinstance(page, AdminKeyPacks)
            packs.append(page)
            if not (cursor := page.next_cursor):
                break
        users = await adm.request(AdminListUsers(limit=3))
        assert isinstance(users, AdminUsers)
        rest = await adm.request(AdminListUsers(limit=3, cursor=users.next_cursor))
        held = await _pages(adm, AdminListLicenses(
            product=CalProduct.W2003_USER_CAL, kind=LicenseKind.PERMANENT,
            status=LicenseStatus.ACTIVE,
        ))  # fmt: skip
    assert [len(p.keypacks) for p in packs] == [1, 1, 1]
    listed = [k for p in packs for k in p.keypacks]
    user_packs = [k for k in listed if k.product is CalProduct.W2003_USER_CAL]
    assert [(k.total, k.issued) for k in user_packs] == [(2, 0), (1, 0)]
    # Issue 15: a pack line said 0 issued while the table listed User CALs from it.
    assert sum(k.in_use for k in user_packs) == 4 == sum(len(p.licenses) for p in held)
    assert isinstance(rest, AdminUsers)
    assert [u.user for u in (*users.users, *rest.users)] == ["ann", "bob", "cy", "dee"]
    assert rest.next_cursor == b""


def test_a_limit_above_the_page_maximum_is_refused() -> None:
    from tslic.protocol.errors import LocalProtocolError

    with pytest.raises(LocalProtocolError, match="limit"):
        AdminListLicenses(limit=MAX_PAGE_ITEMS + 1)
