"""Installed key packs and their pools.

Contract: named queries over the `keypacks` table, run inside a `Store` operation. A key pack
is a pool of `total` CALs of one product of which `issued` are taken; a pack with
`expires_at` 0 never expires. Device CALs are taken from and returned to their pool; User
CALs are never decremented (§7.2), so their packs count only what is installed.
"""

from __future__ import annotations

import sqlite3

from tslic.protocol.domain import CalProduct, KeyPackType, Program
from tslic.protocol.messages.records import KeyPackInfo

from .licenses import held_by_keypack

_COLUMNS = (
    "id, product, program, keypack_type, description, total, issued, installed_at, expires_at"
)

_KeyPackRow = tuple[int, str, str | None, int, str, int, int, int, int]


def _info(row: _KeyPackRow, in_use: int = 0) -> KeyPackInfo:
    kid, product, program, ktype, description, total, issued, installed, expires = row
    return KeyPackInfo(
        keypack_id=kid,
        product=CalProduct(product),
        program=Program(program) if program else None,
        keypack_type=KeyPackType(ktype),
        description=description,
        total=total,
        issued=issued,
        available=total - issued,
        installed_at=installed,
        expires_at=expires,
        in_use=in_use,
    )


def keypacks_page(
    db: sqlite3.Connection, *, after: int | None, rows: int, product: CalProduct | None = None
) -> list[KeyPackInfo]:
    """Key packs by id, strictly after id `after`, of `product` if given; at most `rows`.
    Each says how many licenses are held from it now (`in_use`)."""
    where: list[str] = ["id > ?"]
    args: list[object] = [after or 0]
    if product is not None:
        where.append("product = ?")
        args.append(product.value)
    found = db.execute(
        f"SELECT {_COLUMNS} FROM keypacks WHERE {' AND '.join(where)} ORDER BY id LIMIT ?",
        (*args, rows),
    ).fetchall()
    held = held_by_keypack(db, [row[0] for row in found])
    return [_info(row, held.get(row[0], 0)) for row in found]


def get_keypack(db: sqlite3.Connection, keypack_id: int) -> KeyPackInfo:
    """One key pack.

    Raises:
        LookupError: no such key pack.
    """
    found = db.execute(f"SELECT {_COLUMNS} FROM keypacks WHERE id = ?", (keypack_id,)).fetchone()
    if found is None:
        raise LookupError(keypack_id)
    return _info(found, held_by_keypack(db, [keypack_id]).get(keypack_id, 0))


def keypack_holding_grant(db: sqlite3.Connection, grant_id: int) -> int | None:
    """The key pack a Clearinghouse grant was installed as, if it was."""
    row = db.execute("SELECT id FROM keypacks WHERE grant_id = ?", (grant_id,)).fetchone()
    return None if row is None else int(row[0])


def install_keypack(
    db: sqlite3.Connection,
    *,
    product: CalProduct,
    program: Program,
    keypack_type: KeyPackType,
    description: str,
    total: int,
    installed_at: int,
    expires_at: int,
    grant_id: int | None,
    keypack_code: str,
    grant_blob: bytes,
) -> int:
    """Add a key pack with nothing issued yet; return its id."""
    cur = db.execute(
        "INSERT INTO keypacks (product, program, keypack_type, description, total,"
        " issued, installed_at, expires_at, grant_id, keypack_code, grant_blob)"
        " VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?)",
        (product.value, program.value, int(keypack_type), description, total, installed_at,
         expires_at, grant_id, keypack_code, grant_blob),
    )  # fmt: skip
    return int(cur.lastrowid or 0)


def available_by_product(db: sqlite3.Connection, now: int) -> dict[CalProduct, int]:
    """Free CALs per product in unexpired key packs."""
    rows = db.execute(
        "SELECT product, SUM(total - issued) FROM keypacks"
        " WHERE expires_at = 0 OR expires_at > ? GROUP BY product",
        (now,),
    ).fetchall()
    return {CalProduct(product): int(free) for product, free in rows}


def installed_by_product(db: sqlite3.Connection, now: int) -> dict[CalProduct, int]:
    """Installed CALs per product in unexpired key packs (User CALs are never decremented)."""
    rows = db.execute(
        "SELECT product, SUM(total) FROM keypacks"
        " WHERE expires_at = 0 OR expires_at > ? GROUP BY product",
        (now,),
    ).fetchall()
    return {CalProduct(product): int(total) for product, total in rows}


def take_from_pool(db: sqlite3.Connection, product: CalProduct, now: int) -> int:
    """Decrement the key pack of `product` that expires first; return its id (0: none).
    One statement (UPDATE ... RETURNING): it runs on every new Per Device CAL (issue 19)."""
    rows = db.execute(
        "UPDATE keypacks SET issued = issued + 1 WHERE id = ("
        "SELECT id FROM keypacks WHERE product = ? AND issued < total"
        " AND (expires_at = 0 OR expires_at > ?)"
        " ORDER BY CASE expires_at WHEN 0 THEN 1 ELSE 0 END, expires_at, id LIMIT 1"
        ") RETURNING id",
        (product.value, now),
    ).fetchall()  # to the end: the statement is finished before the next one runs
    return int(rows[0][0]) if rows else 0


def first_keypack_of(db: sqlite3.Connection, product: CalProduct) -> int:
    """The oldest key pack of `product` (0: none), which User CALs are recorded against."""
    row = db.execute(
        "SELECT id FROM keypacks WHERE product = ? ORDER BY id LIMIT 1", (product.value,)
    ).fetchone()
    return 0 if row is None else int(row[0])


def return_to_pool(db: sqlite3.Connection, keypack_id: int) -> None:
    """Give one CAL back to its key pack."""
    db.execute("UPDATE keypacks SET issued = issued - 1 WHERE id = ? AND issued > 0", (keypack_id,))
