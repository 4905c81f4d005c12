"""One group of store operations in one SQLite transaction (the store's writer runs it).

Contract:
- `run_group(db, group)` begins a transaction and runs each operation of `group` in it,
  leaving the COMMIT to the caller. Each operation either succeeds or ends with its `error`
  set (its `ServiceError`, or a `StorageError` for a sqlite error, or INTERNAL_ERROR for a
  bug), and an operation that ends with an error leaves none of its changes behind; the
  others keep theirs. A transaction that a failed ROLLBACK left open (its operations were
  all told they failed) is rolled back first, so that the store does not stay stuck.
- Operations run without a SAVEPOINT each. One that fails without having changed a row
  (SQLite's `total_changes`) has nothing to undo: refusals are decided before anything is
  written. One that fails after changing rows is undone with the whole transaction; then
  the transaction begins again and the operations before it that had succeeded run again,
  and those after it run, each inside its own SAVEPOINT. (A SAVEPOINT and its RELEASE for
  every operation cost a license several microseconds, with the pages SQLite copies to its
  sub-journal; a replay happens only on a bug or a storage error: issue 19.)
- So an operation may run more than once before its group commits: its result is the last
  run's, and what it does outside the database (a log line) may repeat. Operations change
  rows only (INSERT, UPDATE, DELETE): never the schema, whose changes `total_changes` does
  not count.
- Errors: `storage_error` turns a sqlite3 or OS error into a `StorageError` a person can act
  on.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Sequence
from typing import Protocol

from tslic.protocol.errors import ServiceError, StorageError

log = logging.getLogger(__name__)


class Job(Protocol):
    """A queued operation with its result type erased: the store's queue holds operations
    of every result type, and each caller reads its own typed result back."""

    error: BaseException | None

    def run(self, db: sqlite3.Connection) -> None: ...

    def fail(self, error: BaseException) -> None: ...

    def finish(self) -> None: ...


def storage_error(exc: BaseException, doing: str) -> StorageError:
    """Translate a sqlite3/OSError into a StorageError a person can act on."""
    text = str(exc).lower()
    if "full" in text:
        hint = "the disk (or the database's size limit) is full; free space and retry"
    elif "readonly" in text or "read-only" in text or "read only" in text:
        hint = "the data directory is read-only; make it writable"
    elif "locked" in text or "busy" in text:
        hint = "another process holds the database; run one license server per data directory"
    elif "malformed" in text or "not a database" in text:
        hint = "the database file is damaged; restore it from a backup"
    else:
        hint = f"sqlite reported: {exc}"
    return StorageError(f"the license database could not {doing}: {hint}; nothing was changed")


class GroupRun:
    """What `run_group` did: whether there is a transaction to commit, the first storage
    error an operation met (a likelier cause than the COMMIT's own message if that fails),
    and whether the group had to be run again."""

    __slots__ = ("cause", "replayed", "to_commit")

    def __init__(self, to_commit: bool) -> None:
        self.to_commit = to_commit
        self.cause: StorageError | None = None
        self.replayed = False


def run_group(db: sqlite3.Connection, group: Sequence[Job]) -> GroupRun:
    """Begin a transaction and run `group` in it (module docstring)."""
    if not _begin(db, group):
        return GroupRun(False)
    run = GroupRun(True)
    for index, job in enumerate(group):
        if not db.in_transaction:  # sqlite rolled the whole group back (disk full, I/O)
            break
        changes = db.total_changes
        _run(db, job)
        if job.error is not None and db.total_changes != changes and db.in_transaction:
            return _replay(db, group, index)
    run.cause = _first_storage_error(group)
    return run


def _replay(db: sqlite3.Connection, group: Sequence[Job], failed: int) -> GroupRun:
    """Undo the transaction whose operation `failed` changed rows before failing; run the
    group again without it, each operation in a SAVEPOINT of its own."""
    log.warning(
        "a database operation failed after changing rows (%s); running its group of %d again",
        group[failed].error, len(group),
    )  # fmt: skip
    try:
        db.execute("ROLLBACK")
    except sqlite3.Error as exc:
        # The failed operation's changes could not be undone: commit nothing at all.
        error = storage_error(exc, "undo a failed operation")
        for job in group:
            job.fail(error)
        return GroupRun(False)
    others = [
        job
        for index, job in enumerate(group)
        if index > failed or (index < failed and not job.error)
    ]
    run = GroupRun(_begin(db, others))
    run.replayed = True
    if not run.to_commit:
        return run
    for job in others:
        if not db.in_transaction:
            break
        job.error = None
        _run_in_savepoint(db, job)
    run.cause = _first_storage_error(group)
    return run


def _first_storage_error(group: Sequence[Job]) -> StorageError | None:
    return next((job.error for job in group if isinstance(job.error, StorageError)), None)


def _begin(db: sqlite3.Connection, group: Sequence[Job]) -> bool:
    """BEGIN IMMEDIATE; False (every operation of `group` given the error) if it failed."""
    try:
        if db.in_transaction:
            # A failed ROLLBACK (of a failed commit, or before a replay) left a transaction
            # open, whose operations were all told they failed: undo it, or no group could
            # ever begin again.
            log.warning("rolling back a transaction left open by a failed rollback")
            db.execute("ROLLBACK")
        db.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        error = storage_error(exc, "start a transaction")
        for job in group:
            job.error = error
        return False
    return True


def _run(db: sqlite3.Connection, job: Job) -> None:
    try:
        job.run(db)
    except ServiceError as exc:
        job.error = exc
    except sqlite3.Error as exc:
        job.error = storage_error(exc, "be written")
    except Exception as exc:  # a bug in an operation: refuse it, keep the others
        log.exception("database operation failed")
        job.error = ServiceError(f"internal error in the license database: {exc!r}")


def _run_in_savepoint(db: sqlite3.Connection, job: Job) -> None:
    try:
        db.execute("SAVEPOINT op")
    except sqlite3.Error as exc:
        job.error = storage_error(exc, "be written")
        return
    _run(db, job)
    if job.error is None:
        db.execute("RELEASE op")
        return
    # A broken transaction refuses these too; its COMMIT will fail and say so.
    with contextlib.suppress(sqlite3.Error):
        db.execute("ROLLBACK TO op")
        db.execute("RELEASE op")
