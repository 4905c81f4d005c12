"""The Clearinghouse database's connection: opening, transactions and error translation.

Contract:
- `Database` opens one SQLite file (`clearinghouse.db` in the data directory) in WAL mode and
  autocommit mode, creating every table in `rows.SCHEMA` that is missing; every change runs
  inside `transaction()` (BEGIN IMMEDIATE ... COMMIT), so a change is on disk before the
  caller acknowledges it, and a failure leaves nothing half done.
- Every `sqlite3` error is translated to `StorageError` with a message naming the file: no
  sqlite3 exception leaves `_run`, `_rows`, `transaction` or `close`.
- It knows no table: the queries are `catalogue.Catalogue`'s, built on `_run` and `_rows`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Self

from tslic.protocol.errors import StorageError

from .rows import DB_NAME, SCHEMA


class Database:
    """The SQLite connection. Use as a context manager or call `close()`."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / DB_NAME
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=5000")  # the phone CLI may share the file
            self._db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise self._storage_error("open", exc) from None

    def _storage_error(self, what: str, exc: sqlite3.Error) -> StorageError:
        return StorageError(
            f"the Clearinghouse database {self.path} could not {what}: {exc}"
            " (is the disk full, the directory read-only, or the file damaged?)"
        )

    def close(self) -> None:
        try:
            self._db.close()
        except sqlite3.Error as exc:
            raise self._storage_error("close", exc) from None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All changes inside commit together, or none do (any exception rolls back)."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._storage_error("start a transaction", exc) from None
        try:
            yield
        except BaseException:
            with suppress(sqlite3.Error):  # the original error is the one worth reporting
                self._db.execute("ROLLBACK")
            raise
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            with suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            raise self._storage_error("commit", exc) from None

    def _run(self, sql: str, args: tuple[object, ...] = ()) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, args)
        except sqlite3.IntegrityError as exc:
            raise StorageError(f"the change conflicts with stored data: {exc}") from None
        except sqlite3.Error as exc:
            raise self._storage_error("run a query", exc) from None

    def _rows(self, sql: str, args: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        cursor = self._run(sql, args)
        try:
            return cursor.fetchall()
        except sqlite3.Error as exc:
            raise self._storage_error("read", exc) from None
