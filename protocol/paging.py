"""Paged listings of the admin conversation: cursors and page sizes (docs/PROTOCOL.md §5.4).

Contract (rules PAGE-1..7):
- A listing request names its filters, a `cursor` (empty: from the start) and a `limit` (most
  items wanted, 0: as many as fit, at most MAX_PAGE_ITEMS). The reply carries one page and
  `next_cursor`, empty when nothing follows. The client repeats the request, filters
  unchanged, with `cursor = next_cursor` until it is empty. No listing is ever one frame.
- Pages are cut by size: `take_page` adds items while an upper bound of their packed size
  (`packed_bound`) stays within PAGE_BUDGET, so a page's reply always fits in one frame
  (the inner bytes are a msgpack bin of at most codec.MAX_BIN). A page holds at least one
  item when any remain (a single item is always below the budget: its fields are bounded).
- Cursors are keyset positions: the sort key of the last item returned, the listing and a
  digest of the filters, packed. They are opaque to clients. The next page starts strictly
  after that key, so concurrent inserts never make a listing repeat or skip an item that
  was there all along. `read_cursor` refuses a cursor made for another listing or other
  filters (INVALID_REQUEST, field `cursor`: a refusal, the conversation goes on).
Sans-IO: plain functions; the server runs the queries.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, TypeVar

from .codec import MAX_ARRAY, MAX_BIN, pack, unpack_untrusted
from .errors import ErrorCode, ProtocolError, ServiceError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance  # what dataclasses.is_dataclass narrows to

# Bytes of items in one page. The rest of MAX_BIN holds the inner header (~60 bytes), the
# reply's other fields (the cursor: under 100 bytes for licenses and key packs) and slack.
PAGE_BUDGET = MAX_BIN - 4096
MAX_PAGE_ITEMS = 1024  # below codec.MAX_ARRAY, the decoder's cap on one array
CURSOR_VERSION = 1
_DIGEST_BYTES = 8

assert MAX_PAGE_ITEMS <= MAX_ARRAY

T = TypeVar("T")

CursorKey = tuple[int | str, ...]


class Listing(enum.IntEnum):
    """What a cursor pages through (it is bound to one of these)."""

    LICENSES = 1  # keyed by (issued_at, license_id)
    KEYPACKS = 2  # keyed by (keypack_id,)
    USERS = 3  # keyed by (user, product)


def _int_size(v: int) -> int:
    if -32 <= v <= 127:
        return 1
    if -(2**7) <= v <= 0xFF:
        return 2
    if -(2**15) <= v <= 0xFFFF:
        return 3
    return 5 if -(2**31) <= v <= 0xFFFFFFFF else 9


def _str_size(n: int) -> int:
    return n + (1 if n < 32 else 2 if n < 256 else 3 if n < 65536 else 5)


def _container(n: int) -> int:
    return 1 if n < 16 else 3 if n < 65536 else 5


def packed_bound(value: object) -> int:
    """`value`'s msgpack size as `codec.to_wire` + `codec.pack` would send it (records and
    messages as maps of their field names), computed without packing: exact for the types
    of the codec's vocabulary, never below the real size."""
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, int):  # IntEnum too
        return _int_size(value)
    if isinstance(value, str):  # StrEnum too
        return _str_size(len(value.encode()))
    if isinstance(value, bytes):
        return len(value) + (2 if len(value) < 256 else 3 if len(value) < 65536 else 5)
    if isinstance(value, tuple | list):
        return _container(len(value)) + sum(packed_bound(v) for v in value)
    if isinstance(value, dict):
        return _container(len(value)) + sum(
            packed_bound(k) + packed_bound(v) for k, v in value.items()
        )
    names = _FIELD_NAMES.get(type(value))
    if names is None:
        if not dataclasses.is_dataclass(value) or isinstance(value, type):
            raise TypeError(f"no msgpack size for {type(value).__name__}")
        names = _FIELD_NAMES[type(value)] = _field_names(value)
    fixed, fields = names
    return fixed + sum(packed_bound(getattr(value, name)) for name in fields)


# Per record type: the size of the map header and the field-name keys, and the field names.
_FIELD_NAMES: dict[type, tuple[int, tuple[str, ...]]] = {}


def _field_names(record: DataclassInstance) -> tuple[int, tuple[str, ...]]:
    names = tuple(f.name for f in dataclasses.fields(record))
    return _container(len(names)) + sum(_str_size(len(n)) for n in names), names


def page_limit(limit: int) -> int:
    """The most items a page may hold for a request's `limit` (0: the server's maximum)."""
    return MAX_PAGE_ITEMS if limit <= 0 else min(limit, MAX_PAGE_ITEMS)


def take_page(items: Iterable[T], limit: int, budget: int = PAGE_BUDGET) -> tuple[list[T], bool]:
    """The first items that fit one page, and whether any item follows them.

    A page holds at most `page_limit(limit)` items and no more than `budget` bytes by
    `packed_bound`, but always the first item. `items` is consumed lazily: at most one item
    past the page is read (to tell whether one follows).
    """
    page: list[T] = []
    used = 0
    most = page_limit(limit)
    iterator = iter(items)
    for item in iterator:
        size = packed_bound(item)
        if page and used + size > budget:
            return page, True
        page.append(item)
        used += size
        if len(page) >= most:
            return page, next(iterator, None) is not None
    return page, False


def query_digest(*filters: object) -> bytes:
    """A short digest of a request's filters, which binds a cursor to them."""
    return hashlib.sha256(pack(list(filters))).digest()[:_DIGEST_BYTES]


def make_cursor(listing: Listing, digest: bytes, key: CursorKey) -> bytes:
    """The opaque cursor after the item whose sort key is `key`."""
    return pack([CURSOR_VERSION, int(listing), digest, *key])


def read_cursor(cursor: bytes, listing: Listing, digest: bytes, shape: tuple[type, ...]) -> (
    CursorKey | None
):  # fmt: skip
    """The key a cursor names (None for the empty cursor: from the start).

    Args:
        shape: the types of the key's parts (e.g. (int, int) for licenses).

    Raises:
        ServiceError: INVALID_REQUEST (field `cursor`) for a cursor that is not one this
            listing made for these filters.
    """
    if not cursor:
        return None
    try:
        parts = unpack_untrusted(cursor)
    except ProtocolError:
        parts = None
    ok = (
        isinstance(parts, list)
        and len(parts) == 3 + len(shape)
        and parts[:3] == [CURSOR_VERSION, int(listing), digest]
        and all(type(v) is t for v, t in zip(parts[3:], shape, strict=True))
    )
    if not ok:
        raise ServiceError(
            "the cursor was not made by this server for this listing and these filters;"
            " start again without a cursor",
            code=ErrorCode.INVALID_REQUEST,
            detail={"field": "cursor"},
        )
    return tuple(parts[3:])


def pages_of(items: list[T], limit: int, budget: int = PAGE_BUDGET) -> list[list[T]]:
    """A whole list cut into the pages a server would send (vectors and tests)."""
    pages: list[list[T]] = []
    start = 0
    while start < len(items):
        page, _ = take_page(items[start:], limit, budget)
        pages.append(page)
        start += len(page)
    return pages
