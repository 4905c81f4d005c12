"""The license server's tables and the small queries every part shares.

Contract: plain synchronous functions over a `sqlite3.Connection`, meant to run inside a
`Store` operation (so inside its transaction). Times are virtual epoch-ms. Settings and the
activation state live in `meta` as JSON values; certificates and key material in `blobs`.
Rows are turned into the protocol's records (`KeyPackInfo`, `IssuedLicenseInfo`, `UserUsage`)
here, so handlers never see a raw row.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from tslic.protocol.domain import (
    CalProduct,
    KeyPackType,
    LicenseKind,
    LicenseStatus,
    Program,
)
from tslic.protocol.messages.records import IssuedLicenseInfo, KeyPackInfo, UserUsage

SCHEMA_VERSION = 1

_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS keypacks (
    id INTEGER PRIMARY KEY,
    product TEXT NOT NULL,
    program TEXT,
    keypack_type INTEGER NOT NULL,
    description TEXT NOT NULL,
    total INTEGER NOT NULL CHECK (total >= 0),
    issued INTEGER NOT NULL DEFAULT 0 CHECK (issued >= 0 AND issued <= total),
    installed_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL DEFAULT 0,
    grant_id INTEGER,
    keypack_code TEXT NOT NULL DEFAULT '',
    grant_blob BLOB
);
CREATE UNIQUE INDEX IF NOT EXISTS keypacks_grant ON keypacks (grant_id)
    WHERE grant_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS licenses (
    id INTEGER PRIMARY KEY,
    keypack_id INTEGER NOT NULL DEFAULT 0,
    product TEXT NOT NULL,
    kind TEXT NOT NULL,
    status INTEGER NOT NULL,
    hwid BLOB NOT NULL,
    machine TEXT NOT NULL,
    user TEXT NOT NULL,
    client_os TEXT NOT NULL,
    mode TEXT NOT NULL,
    terminal_server TEXT NOT NULL,
    issued_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    validated INTEGER NOT NULL DEFAULT 0,
    blob BLOB
);
CREATE INDEX IF NOT EXISTS licenses_hwid ON licenses (hwid);
CREATE INDEX IF NOT EXISTS licenses_expiry ON licenses (status, expires_at);
CREATE INDEX IF NOT EXISTS licenses_issued ON licenses (issued_at);
CREATE TABLE IF NOT EXISTS user_usage (
    user TEXT NOT NULL,
    product TEXT NOT NULL,
    connections INTEGER NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    PRIMARY KEY (user, product)
);
CREATE TABLE IF NOT EXISTS ts_certs (
    public_key BLOB PRIMARY KEY,
    name TEXT NOT NULL,
    domain TEXT NOT NULL,
    site TEXT NOT NULL,
    version INTEGER NOT NULL,
    serial INTEGER NOT NULL,
    issued_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    cert BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS sg_members (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    event_id INTEGER NOT NULL DEFAULT 0,
    what TEXT NOT NULL,
    actor TEXT NOT NULL,
    detail TEXT NOT NULL
);
"""


def create_schema(db: sqlite3.Connection) -> None:
    """Create the tables if they do not exist (idempotent)."""
    for statement in _DDL.split(";"):
        if statement.strip():
            db.execute(statement)
    if get_meta(db, "schema_version") is None:
        set_meta(db, "schema_version", SCHEMA_VERSION)


# ---- settings and blobs --------------------------------------------------------------------


def get_meta(db: sqlite3.Connection, key: str, default: Any = None) -> Any:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return default if row is None else json.loads(row[0])


def set_meta(db: sqlite3.Connection, key: str, value: Any) -> None:
    db.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?)"
        " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, json.dumps(value)),
    )


def get_blob(db: sqlite3.Connection, key: str) -> bytes | None:
    row = db.execute("SELECT value FROM blobs WHERE key = ?", (key,)).fetchone()
    return None if row is None else bytes(row[0])


def set_blob(db: sqlite3.Connection, key: str, value: bytes) -> None:
    db.execute(
        "INSERT INTO blobs (key, value) VALUES (?, ?)"
        " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def next_counter(db: sqlite3.Connection, name: str, start: int = 1) -> int:
    """A durable sequence (certificate serials and the like)."""
    value = int(get_meta(db, f"seq:{name}", start - 1)) + 1
    set_meta(db, f"seq:{name}", value)
    return value


def audit(
    db: sqlite3.Connection, *, at: int, what: str, actor: str, event_id: int = 0, **detail: Any
) -> None:
    """Append to the audit log (in the same transaction as what it records)."""
    db.execute(
        "INSERT INTO audit (at, event_id, what, actor, detail) VALUES (?, ?, ?, ?, ?)",
        (at, event_id, what, actor, json.dumps(detail, default=str, sort_keys=True)),
    )


# ---- key packs -----------------------------------------------------------------------------

_KEYPACK_COLUMNS = (
    "id, product, program, keypack_type, description, total, issued, installed_at, expires_at"
)


def _keypack(row: tuple[Any, ...]) -> KeyPackInfo:
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
    )


def list_keypacks(db: sqlite3.Connection) -> list[KeyPackInfo]:
    rows = db.execute(f"SELECT {_KEYPACK_COLUMNS} FROM keypacks ORDER BY id").fetchall()
    return [_keypack(row) for row in rows]


def get_keypack(db: sqlite3.Connection, keypack_id: int) -> KeyPackInfo:
    row = db.execute(f"SELECT {_KEYPACK_COLUMNS} FROM keypacks WHERE id = ?", (keypack_id,))
    found = row.fetchone()
    if found is None:
        raise LookupError(keypack_id)
    return _keypack(found)


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
    """Decrement the key pack of `product` that expires first; return its id (0: none)."""
    row = db.execute(
        "SELECT id FROM keypacks WHERE product = ? AND issued < total"
        " AND (expires_at = 0 OR expires_at > ?)"
        " ORDER BY CASE expires_at WHEN 0 THEN 1 ELSE 0 END, expires_at, id LIMIT 1",
        (product.value, now),
    ).fetchone()
    if row is None:
        return 0
    db.execute("UPDATE keypacks SET issued = issued + 1 WHERE id = ?", (row[0],))
    return int(row[0])


def any_keypack_of(db: sqlite3.Connection, product: CalProduct) -> int:
    row = db.execute(
        "SELECT id FROM keypacks WHERE product = ? ORDER BY id LIMIT 1", (product.value,)
    ).fetchone()
    return 0 if row is None else int(row[0])


def return_to_pool(db: sqlite3.Connection, keypack_id: int) -> None:
    db.execute("UPDATE keypacks SET issued = issued - 1 WHERE id = ? AND issued > 0", (keypack_id,))


# ---- issued licenses -----------------------------------------------------------------------

LICENSE_COLUMNS = (
    "id, keypack_id, product, kind, status, hwid, machine, user, terminal_server,"
    " issued_at, expires_at, validated"
)


def license_info(row: tuple[Any, ...]) -> IssuedLicenseInfo:
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


def list_licenses(db: sqlite3.Connection, since: int, until: int) -> list[IssuedLicenseInfo]:
    """Licenses issued in [since, until] (until 0: no upper bound), oldest first."""
    upper = until if until else 2**62
    rows = db.execute(
        f"SELECT {LICENSE_COLUMNS} FROM licenses WHERE issued_at >= ? AND issued_at <= ?"
        " ORDER BY issued_at, id",
        (since, upper),
    ).fetchall()
    return [license_info(row) for row in rows]


def record_usage(db: sqlite3.Connection, user: str, product: CalProduct, now: int) -> None:
    db.execute(
        "INSERT INTO user_usage (user, product, connections, first_seen, last_seen)"
        " VALUES (?, ?, 1, ?, ?) ON CONFLICT(user, product) DO UPDATE SET"
        " connections = connections + 1, last_seen = excluded.last_seen",
        (user, product.value, now, now),
    )


def list_usage(db: sqlite3.Connection, since: int, until: int) -> list[UserUsage]:
    upper = until if until else 2**62
    rows = db.execute(
        "SELECT user, product, connections, first_seen, last_seen FROM user_usage"
        " WHERE last_seen >= ? AND first_seen <= ? ORDER BY user, product",
        (since, upper),
    ).fetchall()
    return [
        UserUsage(user=u, product=CalProduct(p), connections=c, first_seen=f, last_seen=last)
        for u, p, c, f, last in rows
    ]


# ---- security group ------------------------------------------------------------------------


def sg_members(db: sqlite3.Connection) -> tuple[str, ...]:
    rows = db.execute("SELECT name FROM sg_members ORDER BY name").fetchall()
    return tuple(row[0] for row in rows)


def sg_contains(db: sqlite3.Connection, name: str) -> bool:
    row = db.execute("SELECT 1 FROM sg_members WHERE name = ?", (name.upper(),)).fetchone()
    return row is not None
