"""One group of store operations in one transaction: no SAVEPOINT while nothing fails after
writing, and a failure after writing undone with the transaction, the others run again."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tslic.protocol.errors import ErrorCode, ServiceError, StorageError
from tslic.server.license_server.group import run_group


class FakeJob:
    """A store operation as the group sees it, counting its runs."""

    def __init__(self, fn: Callable[[sqlite3.Connection], str]) -> None:
        self.fn = fn
        self.result: str | None = None
        self.error: BaseException | None = None
        self.runs = 0

    def run(self, db: sqlite3.Connection) -> None:
        self.runs += 1
        self.result = self.fn(db)

    def fail(self, error: BaseException) -> None:
        self.result = None
        self.error = error

    def finish(self) -> None:
        pass


def insert(name: str) -> FakeJob:
    def op(db: sqlite3.Connection) -> str:
        db.execute("INSERT INTO names (name) VALUES (?)", (name,))
        return name

    return FakeJob(op)


def refuse_before_writing() -> FakeJob:
    def op(db: sqlite3.Connection) -> str:
        db.execute("SELECT COUNT(*) FROM names").fetchone()
        raise ServiceError("no CAL left", code=ErrorCode.NO_LICENSE_AVAILABLE)

    return FakeJob(op)


def fail_after_writing(name: str, error: Exception) -> FakeJob:
    def op(db: sqlite3.Connection) -> str:
        db.execute("INSERT INTO names (name) VALUES (?)", (name,))
        db.execute("UPDATE names SET name = name || '!' WHERE name = ?", (name,))
        raise error

    return FakeJob(op)


@pytest.fixture
def db() -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(":memory:", isolation_level=None)
    connection.execute("CREATE TABLE names (name TEXT NOT NULL UNIQUE)")
    yield connection
    connection.close()


def names(db: sqlite3.Connection) -> list[str]:
    return [row[0] for row in db.execute("SELECT name FROM names ORDER BY name")]


def traced(db: sqlite3.Connection) -> list[str]:
    statements: list[str] = []
    db.set_trace_callback(statements.append)
    return statements


def test_a_group_without_failures_takes_no_savepoint(db: sqlite3.Connection) -> None:
    jobs = [insert("a"), insert("b"), insert("c")]
    statements = traced(db)
    run = run_group(db, jobs)
    db.execute("COMMIT")
    assert (run.to_commit, run.replayed, run.cause) == (True, False, None)
    assert [job.result for job in jobs] == ["a", "b", "c"]
    assert names(db) == ["a", "b", "c"]
    assert not [s for s in statements if "SAVEPOINT" in s]


def test_a_refusal_before_writing_leaves_the_others_and_is_not_run_again(
    db: sqlite3.Connection,
) -> None:
    jobs = [insert("a"), refuse_before_writing(), insert("c")]
    statements = traced(db)
    run = run_group(db, jobs)
    db.execute("COMMIT")
    assert not run.replayed
    assert isinstance(jobs[1].error, ServiceError)
    assert jobs[1].error.code is ErrorCode.NO_LICENSE_AVAILABLE
    assert [job.runs for job in jobs] == [1, 1, 1]
    assert names(db) == ["a", "c"]
    assert not [s for s in statements if "SAVEPOINT" in s]


def test_a_failure_after_writing_is_undone_and_the_others_run_again(
    db: sqlite3.Connection,
) -> None:
    refused = refuse_before_writing()
    jobs = [
        insert("a"),
        refused,  # its refusal stands: it is not run again
        fail_after_writing("b", ServiceError("refused late", code=ErrorCode.HWID_MISMATCH)),
        insert("c"),
        fail_after_writing("d", RuntimeError("a bug")),  # after the replay: in a savepoint
        insert("e"),
    ]
    statements = traced(db)
    run = run_group(db, jobs)
    db.execute("COMMIT")
    assert run.to_commit
    assert run.replayed
    assert names(db) == ["a", "c", "e"]  # nothing of b or d, though both wrote twice
    assert [job.runs for job in jobs] == [2, 1, 1, 1, 1, 1]
    assert [job.result for job in jobs] == ["a", None, None, "c", None, "e"]
    assert refused.error is not None
    late = jobs[2].error
    assert isinstance(late, ServiceError)
    assert late.message == "refused late"
    bug = jobs[4].error
    assert isinstance(bug, ServiceError)
    assert bug.code is ErrorCode.INTERNAL_ERROR
    assert "a bug" in bug.message
    assert statements.count("ROLLBACK") == 1
    assert statements.count("SAVEPOINT op") == 4  # a, c, d and e, after the replay


def test_a_failure_after_writing_in_the_first_operation(db: sqlite3.Connection) -> None:
    jobs = [fail_after_writing("x", ServiceError("no")), insert("y")]
    run = run_group(db, jobs)
    db.execute("COMMIT")
    assert run.replayed
    assert names(db) == ["y"]
    assert [job.runs for job in jobs] == [1, 1]


def test_a_storage_error_is_the_groups_cause(db: sqlite3.Connection) -> None:
    # A UNIQUE violation is refused by SQLite before it changes a row: no replay either.
    jobs = [insert("a"), insert("a"), insert("b")]
    run = run_group(db, jobs)
    db.execute("COMMIT")
    assert not run.replayed
    assert isinstance(run.cause, StorageError)
    assert run.cause is jobs[1].error
    assert "could not be written" in run.cause.message
    assert names(db) == ["a", "b"]


def test_a_transaction_that_cannot_begin_fails_every_operation(tmp_path: Path) -> None:
    path = tmp_path / "names.db"
    db = sqlite3.connect(path, isolation_level=None, timeout=0)
    db.execute("CREATE TABLE names (name TEXT NOT NULL UNIQUE)")
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the database
    jobs = [insert("a"), insert("b")]
    run = run_group(db, jobs)
    assert not run.to_commit
    assert all(isinstance(job.error, StorageError) for job in jobs)
    assert "another process holds the database" in str(jobs[0].error)
    assert [job.runs for job in jobs] == [0, 0]
    other.close()
    db.close()


def test_a_transaction_left_open_is_rolled_back_before_the_next_group(
    db: sqlite3.Connection,
) -> None:
    db.execute("BEGIN")  # as a failed ROLLBACK leaves the failed group's transaction
    db.execute("INSERT INTO names (name) VALUES ('refused')")
    run = run_group(db, [insert("a")])
    db.execute("COMMIT")
    assert run.to_commit
    assert names(db) == ["a"]
