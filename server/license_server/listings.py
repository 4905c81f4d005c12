"""The admin conversation's paged listings: key packs, issued licenses, per-user usage.

Contract (docs/PROTOCOL.md §5.4, PAGE-1..7; protocol/paging.py): each request is answered with
one page, cut to fit one frame, and the cursor of the next one (empty at the end). Filters
are applied by the database query, before paging. A cursor is checked against the listing
and the filters it was made for before any query runs; a wrong one is refused with
INVALID_FIELD and the connection goes on. Each page is one store operation, read in the
writer's transaction, so it is consistent in itself; between pages the data may change, and
the keyset cursor keeps every item that stays in the listing exactly once.
"""

from __future__ import annotations

import sqlite3

from tslic.protocol.messages.admin import (
    AdminKeyPacks,
    AdminLicenses,
    AdminListKeyPacks,
    AdminListLicenses,
    AdminListUsers,
    AdminUsers,
)
from tslic.protocol.paging import (
    Listing,
    make_cursor,
    page_limit,
    query_digest,
    read_cursor,
    take_page,
)

from .db import keypacks, licenses
from .store import Store


class Listings:
    """Pages of the three listings, read through the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def keypacks(self, req: AdminListKeyPacks) -> AdminKeyPacks:
        digest = query_digest(req.product)
        key = read_cursor(req.cursor, Listing.KEYPACKS, digest, (int,))
        after = None if key is None else int(key[0])

        def op(db: sqlite3.Connection) -> AdminKeyPacks:
            rows = keypacks.keypacks_page(
                db, after=after, rows=page_limit(req.limit) + 1, product=req.product
            )
            page, more = take_page(rows, req.limit)
            nxt = make_cursor(Listing.KEYPACKS, digest, (page[-1].keypack_id,)) if more else b""
            return AdminKeyPacks(keypacks=tuple(page), next_cursor=nxt)

        reply: AdminKeyPacks = await self.store.run_op(op)
        return reply

    async def licenses(self, req: AdminListLicenses) -> AdminLicenses:
        digest = query_digest(
            req.since, req.until, req.product, req.kind, req.status,
            req.machine.casefold(), req.user.casefold(),
        )  # fmt: skip
        key = read_cursor(req.cursor, Listing.LICENSES, digest, (int, int))
        after = None if key is None else (int(key[0]), int(key[1]))

        def op(db: sqlite3.Connection) -> AdminLicenses:
            rows = licenses.iter_licenses(
                db, after=after, rows=page_limit(req.limit) + 1, since=req.since,
                until=req.until, product=req.product, kind=req.kind, status=req.status,
                machine=req.machine, user=req.user,
            )  # fmt: skip
            page, more = take_page(rows, req.limit)
            last = page[-1] if page else None
            nxt = b""
            if more and last is not None:
                nxt = make_cursor(Listing.LICENSES, digest, (last.issued_at, last.license_id))
            return AdminLicenses(licenses=tuple(page), next_cursor=nxt)

        reply: AdminLicenses = await self.store.run_op(op)
        return reply

    async def users(self, req: AdminListUsers) -> AdminUsers:
        digest = query_digest(req.since, req.until, req.product, req.user.casefold())
        key = read_cursor(req.cursor, Listing.USERS, digest, (str, str))
        after = None if key is None else (str(key[0]), str(key[1]))

        def op(db: sqlite3.Connection) -> AdminUsers:
            rows = licenses.iter_usage(
                db, after=after, rows=page_limit(req.limit) + 1, since=req.since,
                until=req.until, product=req.product, user=req.user,
            )  # fmt: skip
            page, more = take_page(rows, req.limit)
            last = page[-1] if page else None
            nxt = b""
            if more and last is not None:
                nxt = make_cursor(Listing.USERS, digest, (last.user, last.product.value))
            return AdminUsers(users=tuple(page), next_cursor=nxt)

        reply: AdminUsers = await self.store.run_op(op)
        return reply
