"""The directory's changeable state, in SQLite (WAL), committed before anything is acknowledged.

Contract:
- Three tables in `<data dir>/directory.sqlite3`: `published` (site, computer: the siteServer
  values of each site's TS-Enterprise-License-Server object, in publishing order),
  `addresses` (computer -> the "host:port" it registered, the emulated DNS record) and
  `computers` (computer accounts created or changed with DirSetComputer; they override the
  topology file).
- Names are stored as the caller spelled them and compared case-insensitively (NOCASE).
- Every write is one transaction, committed (synchronous=FULL) before the method returns, so a
  reply never announces a change that a crash could lose.
- Every sqlite3 error is translated to `StorageError` naming the database file; the caller
  (the service) turns it into a STORAGE_ERROR refusal and stays up.
- Blocking but short: each call is one small indexed statement, so the service calls it from
  the Trio thread; a directory's write rate is a handful per minute.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tslic.protocol.errors import StorageError
from tslic.runtime.files import ensure_dir

DB_NAME = "directory.sqlite3"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS published (
    site TEXT NOT NULL COLLATE NOCASE,
    computer TEXT NOT NULL COLLATE NOCASE,
    published_at INTEGER NOT NULL,
    PRIMARY KEY (site, computer)
);
CREATE TABLE IF NOT EXISTS addresses (
    computer TEXT PRIMARY KEY COLLATE NOCASE,
    address TEXT NOT NULL,
    registered_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS computers (
    name TEXT PRIMARY KEY COLLATE NOCASE,
    domain TEXT NOT NULL,
    site TEXT NOT NULL,
    is_domain_controller INTEGER NOT NULL,
    os_version INTEGER NOT NULL,
    changed_at INTEGER NOT NULL
);
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class ComputerRow:
    name: str
    domain: str
    site: str
    is_domain_controller: bool
    os_version: int
    changed_at: int


class DirectoryStore:
    """Open (creating if needed) the directory database in `data_dir`."""

    def __init__(self, data_dir: Path) -> None:
        ensure_dir(data_dir)
        self.path = data_dir / DB_NAME
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the directory database {self.path}: {exc}") from None
        try:
            with self._errors("open"):
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                version = self._db.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise StorageError(
                        f"{self.path} was written by a newer tslic (schema {version}); "
                        "use that version or another --data directory"
                    )
                self._db.executescript(_SCHEMA)
                self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except StorageError:
            self._db.close()
            raise

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StorageError(
                f"directory database {self.path}: cannot {what}: {exc} "
                "(is the disk full, the directory read-only or the file damaged?)"
            ) from None

    @contextmanager
    def _write(self, what: str) -> Iterator[sqlite3.Connection]:
        with self._errors(what):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- published enterprise license servers -----------------------------------------------
    def published(self) -> list[tuple[str, str]]:
        """(site, computer) pairs in publishing order."""
        with self._errors("read published servers"):
            rows = self._db.execute(
                "SELECT site, computer FROM published ORDER BY published_at, rowid"
            ).fetchall()
        return [(str(s), str(c)) for s, c in rows]

    def publish(self, site: str, computer: str, now: int) -> bool:
        """Add a siteServer value; False if it was already there."""
        with self._write("publish") as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO published (site, computer, published_at) VALUES (?, ?, ?)",
                (site, computer, now),
            )
            return cur.rowcount == 1

    def unpublish(self, site: str, computer: str) -> bool:
        """Remove a siteServer value; False if it was not there."""
        with self._write("unpublish") as db:
            cur = db.execute(
                "DELETE FROM published WHERE site = ? AND computer = ?", (site, computer)
            )
            return cur.rowcount == 1

    # -- registered addresses ----------------------------------------------------------------
    def addresses(self) -> dict[str, str]:
        with self._errors("read addresses"):
            rows = self._db.execute("SELECT computer, address FROM addresses").fetchall()
        return {str(c): str(a) for c, a in rows}

    def register(self, computer: str, address: str, now: int) -> None:
        with self._write("register an address") as db:
            db.execute(
                "INSERT INTO addresses (computer, address, registered_at) VALUES (?, ?, ?) "
                "ON CONFLICT (computer) DO UPDATE SET address = excluded.address, "
                "registered_at = excluded.registered_at",
                (computer, address, now),
            )

    # -- computer accounts changed at run time -----------------------------------------------
    def computers(self) -> list[ComputerRow]:
        with self._errors("read computer accounts"):
            rows = self._db.execute(
                "SELECT name, domain, site, is_domain_controller, os_version, changed_at "
                "FROM computers ORDER BY changed_at, rowid"
            ).fetchall()
        return [
            ComputerRow(
                name=str(n),
                domain=str(d),
                site=str(s),
                is_domain_controller=bool(dc),
                os_version=int(v),
                changed_at=int(t),
            )
            for n, d, s, dc, v, t in rows
        ]

    def put_computer(self, row: ComputerRow, address: str = "") -> None:
        """Create or replace a computer account (and its address, if given), atomically."""
        with self._write("save the computer account") as db:
            db.execute(
                "INSERT INTO computers (name, domain, site, is_domain_controller, os_version, "
                "changed_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                "domain = excluded.domain, site = excluded.site, "
                "is_domain_controller = excluded.is_domain_controller, "
                "os_version = excluded.os_version, changed_at = excluded.changed_at",
                (
                    row.name,
                    row.domain,
                    row.site,
                    int(row.is_domain_controller),
                    row.os_version,
                    row.changed_at,
                ),
            )
            if address:
                db.execute(
                    "INSERT INTO addresses (computer, address, registered_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (computer) DO UPDATE SET address = excluded.address, "
                    "registered_at = excluded.registered_at",
                    (row.name, address, row.changed_at),
                )
