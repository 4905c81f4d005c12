"""Issued licenses and the per-user usage record.

Contract: named queries over the `licenses` and `user_usage` tables, run inside a `Store`
operation. The issuance path reads a device's rows (`licenses_of_device`) and writes one row
(`insert_license` or `update_license`) in the same transaction as its pool decrement; each is
one statement. `LicenseRow` is one row as the issuer works with it; listings leave as the
protocol's `IssuedLicenseInfo` and `UserUsage`.
"""

from __future__ import annotations

import enum
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from tslic.protocol.domain import CalProduct, LicenseKind, LicenseStatus
from tslic.protocol.messages.records import IssuedLicenseInfo, UserUsage

_INFO_COLUMNS = (
    "id, keypack_id, product, kind, status, hwid, machine, user, terminal_server,"
    " issued_at, expires_at, validated"
)
_ROW_QUERY = f"SELECT {_INFO_COLUMNS}, blob, client_os, mode FROM licenses"
_FOREVER = 2**62  # an `until` of 0 means no upper bound
_LIVE = (int(LicenseStatus.ACTIVE), int(LicenseStatus.TEMPORARY))

_InfoTuple = tuple[int, int, str, str, int, bytes, str, str, str, int, int, int]
_RowTuple = tuple[
    int, int, str, str, int, bytes, str, str, str, int, int, int, bytes | None, str, str
]


@dataclass(slots=True, eq=False)
class LicenseRow:
    """One license row as the issuer works with it (rows are told apart by identity)."""

    id: int
    keypack_id: int
    product: CalProduct
    kind: LicenseKind
    status: LicenseStatus
    hwid: bytes
    machine: str
    user: str
    terminal_server: str
    issued_at: int
    expires_at: int
    validated: bool
    blob: bytes
    client_os: str
    mode: str


def _row(r: _RowTuple) -> LicenseRow:
    return LicenseRow(
        r[0], r[1], CalProduct(r[2]), LicenseKind(r[3]), LicenseStatus(r[4]), bytes(r[5]), r[6],
        r[7], r[8], r[9], r[10], bool(r[11]), bytes(r[12]) if r[12] is not None else b"", r[13],
        r[14],
    )  # fmt: skip


# ---- the issuance path ---------------------------------------------------------------------


def licenses_of_device(db: sqlite3.Connection, hwid: bytes) -> list[LicenseRow]:
    """Every license issued to the device with hardware id `hwid`, oldest first."""
    return [_row(r) for r in db.execute(_DEVICE_QUERY, (hwid,))]


_DEVICE_QUERY = f"{_ROW_QUERY} WHERE hwid = ? ORDER BY id"


def device_known(db: sqlite3.Connection, hwid: bytes) -> bool:
    """Whether any license was issued to the device with hardware id `hwid`. Cheaper than
    `licenses_of_device` when the answer is no (a device's first request, the usual one
    under load): one column to describe instead of fifteen."""
    (known,) = db.execute(_KNOWN_QUERY, (hwid,)).fetchone()
    return bool(known)


_KNOWN_QUERY = "SELECT EXISTS (SELECT 1 FROM licenses WHERE hwid = ?)"


def latest_user_cal(db: sqlite3.Connection, product: CalProduct, user: str) -> LicenseRow | None:
    """The newest permanent `product` license issued to `user` (a User CAL to re-issue)."""
    found = db.execute(
        f"{_ROW_QUERY} WHERE kind = ? AND product = ? AND user = ? ORDER BY id DESC LIMIT 1",
        (LicenseKind.PERMANENT.value, product.value, user),
    ).fetchone()
    return None if found is None else _row(found)


def next_license_id(db: sqlite3.Connection) -> int:
    """The id SQLite would give the next license row (MAX(id) + 1)."""
    (value,) = db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM licenses").fetchone()
    return int(value)


def insert_license(db: sqlite3.Connection, row: LicenseRow) -> None:
    """Write a new license row, whole (signed blob included).

    Raises:
        sqlite3.IntegrityError: the id is taken.
    """
    db.execute(_INSERT, _values(row))


def load_licenses(db: sqlite3.Connection, rows: Iterable[LicenseRow]) -> None:
    """Write many whole license rows with one statement (offline: db/synthetic.py fills a
    database this way for tests and bench/listing.py)."""
    db.executemany(_INSERT, (_values(row) for row in rows))


_INSERT = (
    "INSERT INTO licenses (id, keypack_id, product, kind, status, hwid, machine, user,"
    " client_os, mode, terminal_server, issued_at, expires_at, validated, blob)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _values(row: LicenseRow) -> tuple[object, ...]:
    # Exact str and int: sqlite3 binds those at once, but looks any other type up as an
    # adapter (and formats two AttributeErrors on the way): a StrEnum, an IntEnum or a bool
    # cost ~0.8 us each, on every license (issue 19). `_value_` is the member's plain value
    # (`.value` is a Python-level property). Bytes: see store.py.
    return (
        row.id, row.keypack_id, row.product._value_, row.kind._value_, row.status._value_,
        row.hwid, row.machine, row.user, _plain(row.client_os), _plain(row.mode),
        row.terminal_server, row.issued_at, row.expires_at, int(row.validated), row.blob,
    )  # fmt: skip


def _plain(value: str) -> str:
    """A StrEnum member's value, or the str itself (rows read back hold plain strings)."""
    return value if type(value) is str else str.__str__(value)


def update_license(db: sqlite3.Connection, row: LicenseRow) -> None:
    """Rewrite a renewed or re-issued license (its id, product and issue date stay)."""
    db.execute(
        "UPDATE licenses SET blob = ?, expires_at = ?, status = ?, machine = ?, user = ?,"
        " hwid = ?, terminal_server = ?, keypack_id = ? WHERE id = ?",
        (row.blob, row.expires_at, int(row.status), row.machine, row.user, row.hwid,
         row.terminal_server, row.keypack_id, row.id),
    )  # fmt: skip


def set_license_status(db: sqlite3.Connection, license_id: int, status: LicenseStatus) -> None:
    db.execute("UPDATE licenses SET status = ? WHERE id = ?", (int(status), license_id))


def mark_validated(db: sqlite3.Connection, license_id: int) -> None:
    """Record that a logon validated the license (MarkLicense)."""
    db.execute("UPDATE licenses SET validated = 1 WHERE id = ?", (license_id,))


class LicenseHolder(NamedTuple):
    """Who holds a license and from which pool (MarkLicense / ReturnLicense)."""

    terminal_server: str
    hwid: bytes
    kind: LicenseKind
    status: LicenseStatus
    keypack_id: int
    product: CalProduct


def license_holder(db: sqlite3.Connection, license_id: int) -> LicenseHolder | None:
    row = db.execute(
        "SELECT terminal_server, hwid, kind, status, keypack_id, product FROM licenses"
        " WHERE id = ?",
        (license_id,),
    ).fetchone()
    if row is None:
        return None
    ts, hwid, kind, status, keypack, product = row
    return LicenseHolder(
        ts, bytes(hwid), LicenseKind(kind), LicenseStatus(status), int(keypack), CalProduct(product)
    )


# ---- expiry (the sweeper) ------------------------------------------------------------------


class Expired(NamedTuple):
    license_id: int
    keypack_id: int
    product: CalProduct
    kind: LicenseKind


def expired_licenses(db: sqlite3.Connection, now: int) -> list[Expired]:
    """Active and temporary licenses whose expiry is at or before `now`."""
    rows = db.execute(
        "SELECT id, keypack_id, product, kind FROM licenses"
        " WHERE status IN (?, ?) AND expires_at > 0 AND expires_at <= ?",
        (*_LIVE, now),
    ).fetchall()
    return [Expired(int(i), int(k), CalProduct(p), LicenseKind(kind)) for i, k, p, kind in rows]


def next_expiry(db: sqlite3.Connection) -> int:
    """The earliest expiry of an active or temporary license (0: none)."""
    (value,) = db.execute(
        "SELECT MIN(expires_at) FROM licenses WHERE status IN (?, ?) AND expires_at > 0", _LIVE
    ).fetchone()
    return int(value or 0)


# ---- listings ------------------------------------------------------------------------------


def _info(row: _InfoTuple) -> IssuedLicenseInfo:
    lid, kid, product, kind, status, hwid, machine, user, ts, issued, expires, validated = row
    return IssuedLicenseInfo(
        license_id=lid,
        keypack_id=kid,
        product=CalProduct(product),
        kind=LicenseKind(kind),
        status=LicenseStatus(status),
        machine=machine,
        user=user,
        hwid=bytes(hwid),
        terminal_server=ts,
        issued_at=issued,
        expires_at=expires,
        validated=bool(validated),
    )


def iter_licenses(
    db: sqlite3.Connection,
    *,
    after: tuple[int, int] | None,
    rows: int,
    since: int = 0,
    until: int = 0,
    product: CalProduct | None = None,
    kind: LicenseKind | None = None,
    status: LicenseStatus | None = None,
    machine: str = "",
    user: str = "",
) -> Iterator[IssuedLicenseInfo]:
    """Licenses in listing order (issued_at, id), strictly after the key `after`, issued in
    [since, until] (until 0: no upper bound) and matching every filter given (machine and
    user in any case); at most `rows`, read lazily (one page at a time, PAGE-3)."""
    # The keyset bound is also the index range's lower end (issued_at >= the cursor's), so
    # each page starts where the last ended instead of scanning from `since` (O(n) a page).
    where = ["issued_at >= ?", "issued_at <= ?"]
    args: list[object] = [since if after is None else max(since, after[0]), until or _FOREVER]
    if after is not None:
        where.append("(issued_at, id) > (?, ?)")
        args += after
    for column, value in (("product", product), ("kind", kind), ("status", status)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value.value if isinstance(value, enum.Enum) else value)
    for column, text in (("machine", machine), ("user", user)):
        if text:
            where.append(f"{column} = ? COLLATE NOCASE")
            args.append(text)
    sql = (
        f"SELECT {_INFO_COLUMNS} FROM licenses WHERE {' AND '.join(where)}"
        " ORDER BY issued_at, id LIMIT ?"
    )
    return (_info(row) for row in db.execute(sql, (*args, rows)))


def held_by_keypack(db: sqlite3.Connection, keypack_ids: list[int]) -> dict[int, int]:
    """Active permanent licenses recorded against each of these key packs (KeyPackInfo.in_use)."""
    if not keypack_ids:
        return {}
    marks = ", ".join("?" * len(keypack_ids))
    rows = db.execute(
        f"SELECT keypack_id, COUNT(*) FROM licenses WHERE status = ? AND kind = ?"
        f" AND keypack_id IN ({marks}) GROUP BY keypack_id",
        (int(LicenseStatus.ACTIVE), LicenseKind.PERMANENT.value, *keypack_ids),
    ).fetchall()
    return {int(k): int(n) for k, n in rows}


def load_usage(db: sqlite3.Connection, lines: Iterable[UserUsage]) -> None:
    """Write many per-user usage lines with one statement (offline, as `load_licenses`)."""
    db.executemany(
        "INSERT INTO user_usage (user, product, connections, first_seen, last_seen)"
        " VALUES (?, ?, ?, ?, ?)",
        ((u.user, u.product.value, u.connections, u.first_seen, u.last_seen) for u in lines),
    )


def record_usage(db: sqlite3.Connection, user: str, product: CalProduct, now: int) -> None:
    """Count one connection of `user` under a User CAL of `product` (the per-user report)."""
    db.execute(
        "INSERT INTO user_usage (user, product, connections, first_seen, last_seen)"
        " VALUES (?, ?, 1, ?, ?) ON CONFLICT(user, product) DO UPDATE SET"
        " connections = connections + 1, last_seen = excluded.last_seen",
        (user, product.value, now, now),
    )


def iter_usage(
    db: sqlite3.Connection,
    *,
    after: tuple[str, str] | None,
    rows: int,
    since: int = 0,
    until: int = 0,
    product: CalProduct | None = None,
    user: str = "",
) -> Iterator[UserUsage]:
    """Per-user usage lines in listing order (user, product), strictly after `after`, of users
    seen in [since, until] (until 0: no upper bound); at most `rows`, read lazily."""
    where = ["last_seen >= ?", "first_seen <= ?"]
    args: list[object] = [since, until or _FOREVER]
    if after is not None:  # user >= ...: the primary key's range starts at the cursor
        where.append("user >= ? AND (user, product) > (?, ?)")
        args += (after[0], *after)
    if product is not None:
        where.append("product = ?")
        args.append(product.value)
    if user:
        where.append("user = ? COLLATE NOCASE")
        args.append(user)
    sql = (
        "SELECT user, product, connections, first_seen, last_seen FROM user_usage"
        f" WHERE {' AND '.join(where)} ORDER BY user, product LIMIT ?"
    )
    return (
        UserUsage(user=u, product=CalProduct(p), connections=c, first_seen=f, last_seen=last)
        for u, p, c, f, last in db.execute(sql, (*args, rows))
    )
