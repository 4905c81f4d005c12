"""protocol/paging.py: page cutting by size, size bounds, cursors (PAGE-1..5)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tslic.protocol.codec import MAX_BIN, pack, to_wire
from tslic.protocol.domain import CalProduct, LicenseKind, LicenseStatus
from tslic.protocol.errors import ErrorCode, ServiceError
from tslic.protocol.messages.admin import AdminLicenses
from tslic.protocol.messages.records import IssuedLicenseInfo
from tslic.protocol.paging import (
    MAX_PAGE_ITEMS,
    PAGE_BUDGET,
    Listing,
    make_cursor,
    packed_bound,
    pages_of,
    query_digest,
    read_cursor,
    take_page,
)


def _license(n: int, machine: str = "PC", user: str = "ann") -> IssuedLicenseInfo:
    return IssuedLicenseInfo(
        license_id=n, keypack_id=1, product=CalProduct.W2003_DEVICE_CAL,
        kind=LicenseKind.PERMANENT, status=LicenseStatus.ACTIVE, machine=machine, user=user,
        hwid=bytes(32), terminal_server="TS1", issued_at=n * 1000, expires_at=2**40,
        validated=True,
    )  # fmt: skip


@given(st.text(max_size=300), st.text(max_size=300), st.integers(0, 2**50))
def test_the_size_bound_is_the_packed_size(machine: str, user: str, n: int) -> None:
    record = _license(n, machine[:64], user)
    assert packed_bound(record) == len(pack(to_wire(record)))


def test_pages_fit_one_frame_and_hold_every_item_once() -> None:
    items = [_license(i, user="u" * (i % 7) * 1500) for i in range(600)]
    pages = pages_of(items, 0)
    assert [x for p in pages for x in p] == items
    for page in pages:
        inner = pack(to_wire(AdminLicenses(licenses=tuple(page), next_cursor=b"\x00" * 40)))
        assert len(inner) < MAX_BIN - 512  # room for the inner header
        assert sum(packed_bound(x) for x in page) <= PAGE_BUDGET
    assert len(pages) > 1


def test_take_page_counts_limit_and_says_whether_more_follow() -> None:
    items = [_license(i) for i in range(10)]
    assert take_page(items, 3) == (items[:3], True)
    assert take_page(items, 10) == (items, False)
    assert take_page(items, 0) == (items, False)
    assert take_page([], 0) == ([], False)
    assert len(take_page([_license(i) for i in range(MAX_PAGE_ITEMS + 5)], 0)[0]) <= MAX_PAGE_ITEMS
    big = [_license(i, user="x" * 16_000) for i in range(4)]
    page, more = take_page(big, 0)
    assert (len(page), more) == (2, True)  # cut by size, not by count
    assert take_page(big, 0, budget=10)[0] == big[:1]  # a page always holds one item


def test_a_cursor_reads_back_only_for_its_listing_and_filters() -> None:
    digest = query_digest(0, 0, None, "pc1")
    cursor = make_cursor(Listing.LICENSES, digest, (1_000, 7))
    assert read_cursor(cursor, Listing.LICENSES, digest, (int, int)) == (1_000, 7)
    assert read_cursor(b"", Listing.LICENSES, digest, (int, int)) is None
    wrong = [
        (cursor, Listing.USERS, digest, (int, int)),
        (cursor, Listing.LICENSES, query_digest(0, 0, None, "pc2"), (int, int)),
        (cursor, Listing.LICENSES, digest, (str, str)),
        (b"\xc1", Listing.LICENSES, digest, (int, int)),
        (pack([2, 1, digest, 1, 2]), Listing.LICENSES, digest, (int, int)),
    ]
    for args in wrong:
        with pytest.raises(ServiceError) as refused:
            read_cursor(*args)
        assert refused.value.code is ErrorCode.INVALID_REQUEST
