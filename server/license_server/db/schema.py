"""The license server's tables (DDL), created idempotently at every start.

Contract: `create_schema(db)` creates what is missing and records SCHEMA_VERSION in `meta`.
"""

from __future__ import annotations

import sqlite3

from .settings import get_meta, set_meta

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
