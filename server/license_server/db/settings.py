"""Settings, blobs, durable counters, the audit log, the security group and TS certificates.

Contract: named queries over the `meta`, `blobs`, `audit`, `sg_members` and `ts_certs` tables,
run inside a `Store` operation. Settings are JSON values in `meta`: `get_meta` returns the
decoded value (a `JsonValue`, None when absent) and the typed readers (`meta_flag`,
`meta_text`, `meta_record`) give callers the type they expect, whatever the file holds.
"""

from __future__ import annotations

import json
import sqlite3
from typing import NamedTuple

# A decoded JSON document (what `json.loads` returns).
JsonValue = bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"] | None

# ---- settings and blobs --------------------------------------------------------------------


def get_meta(db: sqlite3.Connection, key: str) -> JsonValue:
    """The setting `key` as stored (None: never set)."""
    row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    if row is None:
        return None
    value: JsonValue = json.loads(row[0])
    return value


def set_meta(db: sqlite3.Connection, key: str, value: object) -> None:
    """Store the setting `key` (any JSON-serialisable value)."""
    db.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?)"
        " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, json.dumps(value)),
    )


def meta_flag(db: sqlite3.Connection, key: str) -> bool:
    """A yes/no setting (never set: no)."""
    return bool(get_meta(db, key))


def meta_text(db: sqlite3.Connection, key: str, default: str) -> str:
    """A text setting (never set, or not text: `default`)."""
    value = get_meta(db, key)
    return value if isinstance(value, str) else default


def meta_record(db: sqlite3.Connection, key: str) -> dict[str, str]:
    """A setting holding named text fields (never set: empty)."""
    value = get_meta(db, key)
    if not isinstance(value, dict):
        return {}
    return {name: str(field) for name, field in value.items()}


def get_blob(db: sqlite3.Connection, key: str) -> bytes | None:
    row = db.execute("SELECT value FROM blobs WHERE key = ?", (key,)).fetchone()
    return None if row is None else bytes(row[0])


def set_blob(db: sqlite3.Connection, key: str, value: bytes) -> None:
    db.execute(
        "INSERT INTO blobs (key, value) VALUES (?, ?)"
        " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def next_counter(db: sqlite3.Connection, name: str) -> int:
    """The next value of a durable sequence starting at 1 (certificate serials)."""
    stored = get_meta(db, f"seq:{name}")
    value = (stored if isinstance(stored, int) else 0) + 1
    set_meta(db, f"seq:{name}", value)
    return value


def audit(
    db: sqlite3.Connection, *, at: int, what: str, actor: str, event_id: int = 0, **detail: object
) -> None:
    """Append to the audit log (in the same transaction as what it records)."""
    db.execute(
        "INSERT INTO audit (at, event_id, what, actor, detail) VALUES (?, ?, ?, ?, ?)",
        (at, int(event_id), what, actor, json.dumps(detail, default=str, sort_keys=True)),
    )


# ---- the License Server Security Group's local members -------------------------------------


def security_group_members(db: sqlite3.Connection) -> tuple[str, ...]:
    rows = db.execute("SELECT name FROM sg_members ORDER BY name").fetchall()
    return tuple(row[0] for row in rows)


def is_security_group_member(db: sqlite3.Connection, name: str) -> bool:
    row = db.execute("SELECT 1 FROM sg_members WHERE name = ?", (name.upper(),)).fetchone()
    return row is not None


def add_security_group_member(db: sqlite3.Connection, name: str) -> None:
    db.execute("INSERT OR IGNORE INTO sg_members (name) VALUES (?)", (name.upper(),))


def remove_security_group_member(db: sqlite3.Connection, name: str) -> None:
    db.execute("DELETE FROM sg_members WHERE name = ?", (name.upper(),))


# ---- terminal-server certificates ----------------------------------------------------------


class TsCertificate(NamedTuple):
    """The certificate this server issued for one terminal-server key."""

    name: str
    expires_at: int
    cert: bytes


def ts_certificate_for(db: sqlite3.Connection, public_key: bytes) -> TsCertificate | None:
    """The certificate issued for `public_key`, if any."""
    row = db.execute(
        "SELECT name, expires_at, cert FROM ts_certs WHERE public_key = ?", (public_key,)
    ).fetchone()
    return None if row is None else TsCertificate(str(row[0]), int(row[1]), bytes(row[2]))


def save_ts_certificate(
    db: sqlite3.Connection,
    *,
    public_key: bytes,
    name: str,
    domain: str,
    site: str,
    version: int,
    serial: int,
    issued_at: int,
    expires_at: int,
    cert: bytes,
) -> None:
    """Record (or replace) the certificate issued for `public_key`."""
    db.execute(
        "INSERT OR REPLACE INTO ts_certs (public_key, name, domain, site, version,"
        " serial, issued_at, expires_at, cert) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (public_key, name, domain, site, version, serial, issued_at, expires_at, cert),
    )
