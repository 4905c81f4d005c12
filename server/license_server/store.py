"""The license server's database: SQLite (WAL) with group commit.

Contract:
- One `Store` per data directory (`<data>/licenses.db`). Every read and write is an
  *operation*: a plain function `fn(db) -> T` run on the database by a single writer task.
  `await store.run_op(fn)` returns only after the transaction holding the operation has been
  committed (and fsynced: WAL with `synchronous=FULL`), so nothing acknowledged is lost in a
  crash or restart.
- Group commit: operations that arrive while a transaction is being written wait in a queue;
  the writer takes all of them into the next transaction (one fsync for the group). One
  operation refusing (`ServiceError`) or failing leaves none of its changes; the others in
  the group still commit (group.py: how, without a SAVEPOINT per operation, and why an
  operation may then run twice).
- Errors: sqlite errors become `StorageError` with a sentence for the administrator (a
  read-only data directory is named as such at opening, checked before SQLite). If the
  commit itself fails (disk full, read-only directory), every operation of the group gets a
  `StorageError`: a caller never acknowledges something that is not stored.
- With `threaded=True` (daemons) the writer runs a group's operations on the event loop
  (they are Python: in a thread they only contended for the GIL), and its COMMIT there too
  unless commits are slow: after SLOW_COMMITS_IN_A_ROW that each took `slow_commit` (5 ms) or
  longer (the WAL write and its fsync; a disk without a write cache), the commits of the next
  THREAD_COMMITS_FOR seconds run in a worker thread, so that the loop keeps reading requests
  during each fsync; then one is tried on the loop again. (A thread's hand-over and wake-ups
  cost more CPU than a quick commit keeps the loop waiting: issue 19.) The WAL is
  checkpointed in the background, CHECKPOINT_EVERY seconds after a write, on a second
  connection (a commit never waits for a whole checkpoint; the writer only finishes one
  between two groups once the WAL holds WAL_RESTART_FRAMES pages, so the WAL can start over,
  and in a worker thread: the loop keeps serving during its fsync of the database file).
  With `threaded=False` it runs on the Trio thread, and SQLite checkpoints as it commits:
  the operations queued during one scheduling round still form one group; tests use this
  because the autojump clock would otherwise jump virtual time forward while a thread works
  (every task looks blocked), firing timeouts spuriously.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from time import monotonic
from typing import Generic, TypeVar, cast

import trio
from tslic.protocol.errors import StorageError

from .db.schema import SCHEMA_VERSION, create_schema
from .group import Job, run_group, storage_error

log = logging.getLogger(__name__)

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], T]

DB_NAME = "licenses.db"
MAX_GROUP = 512  # operations per transaction; bounds the time one group holds the writer
# Seconds between background WAL checkpoints (threaded stores). At 0.25 a license cost 3-4%
# more CPU (measured; presumably a page written again between two checkpoints is copied by
# each, and each checkpoint has its fsync: issue 19).
CHECKPOINT_EVERY = 1.0
WAL_RESTART_FRAMES = 4000  # WAL pages (4 KiB) after which the writer lets the WAL restart
WAL_SIZE_LIMIT = 64 * 1024 * 1024  # bytes a reset WAL file is truncated back to
# SLOW_COMMITS_IN_A_ROW commits on the loop (threaded stores) that each took SLOW_COMMIT or
# longer (seconds, wall time: the WAL write and its fsync) send the commits of the next
# THREAD_COMMITS_FOR seconds to a worker thread. Under load here a commit takes 1.1 ms (the
# median; 90% under 2.6 ms, 2.5% over 5 ms); on a disk without a write cache, every one takes
# several milliseconds.
SLOW_COMMIT = 0.005
SLOW_COMMITS_IN_A_ROW = 3
THREAD_COMMITS_FOR = 1.0

# sqlite3 binds exact int, float, str and bytearray at once; for anything else, bytes
# included, it first looks for an adapter, and each miss formats two AttributeErrors:
# ~0.8 us per bytes parameter, three on every license request (hardware ids, license
# documents; issue 19). The identity adapter (a C call) makes that lookup one dict hit. It
# is registered for the whole process, which changes nothing else: bytes stay bytes.
sqlite3.register_adapter(bytes, bytes)


class _Pending(Generic[T]):
    """One queued operation and the task waiting for it. The waiter parks itself with Trio's
    low-level `wait_task_rescheduled` and the writer wakes it with `reschedule`: one Event
    and one memory channel per license request cost more than everything else the hand-over
    does (issue 19)."""

    __slots__ = ("_waiter", "done", "error", "fn", "result")

    def __init__(self, fn: Op[T]) -> None:
        self.fn = fn
        self.result: T | None = None
        self.error: BaseException | None = None
        self.done = False
        self._waiter: trio.lowlevel.Task | None = None

    def run(self, db: sqlite3.Connection) -> None:
        self.result = self.fn(db)

    def fail(self, error: BaseException) -> None:
        self.result = None
        self.error = error

    async def wait(self) -> None:
        """Until `finish` (a cancelled waiter leaves; the operation still runs or ran)."""
        if not self.done:
            self._waiter = trio.lowlevel.current_task()
            await trio.lowlevel.wait_task_rescheduled(self._abandon)
        else:
            await trio.lowlevel.checkpoint()

    def _abandon(self, _: object) -> trio.lowlevel.Abort:
        self._waiter = None
        return trio.lowlevel.Abort.SUCCEEDED

    def finish(self) -> None:
        self.done = True
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            trio.lowlevel.reschedule(waiter)


@dataclass(slots=True)
class StoreStats:
    """What the group commit achieved (the tests and the benchmark read these)."""

    operations: int = 0
    transactions: int = 0
    largest_group: int = 0
    failed_commits: int = 0
    checkpoints: int = 0
    loop_commits: int = 0  # threaded stores: groups committed on the event loop
    thread_commits: int = 0  # ... and in a worker thread (after slow commits)
    replays: int = 0  # groups run again: an operation failed after changing rows


class Store:
    """The database of one license server. Start `run` in a nursery before `run_op`."""

    def __init__(
        self, data_dir: Path, *, threaded: bool = True, slow_commit: float = SLOW_COMMIT
    ) -> None:
        self.path = data_dir / DB_NAME
        self.threaded = threaded
        # Threaded stores: commits on the loop taking this long (seconds) send the next ones
        # to a worker thread; 0 sends every one there.
        self.slow_commit = slow_commit
        self._slow_in_a_row = 0  # slow commits on the loop since the last quick one
        self._threads_until = 0.0  # monotonic() until which commits go to a thread
        self.stats = StoreStats()
        # SQLite only says "unable to open database file" for a read-only directory (it
        # cannot create the journal files there); say what is wrong before it tries.
        if data_dir.is_dir() and not os.access(data_dir, os.W_OK):
            raise StorageError(
                f"the license database could not be opened at {self.path}: the data directory"
                f" {data_dir} is read-only; make it writable (or choose another --data)"
            )
        try:
            # Autocommit mode: transactions are begun and committed explicitly below.
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=5.0
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # durable at every commit
            if threaded:
                # Checkpoints (copying the WAL back into the database file, and its fsync)
                # run in the background on a connection of their own (`run`), not inside
                # whichever COMMIT crossed SQLite's 1,000-page mark: that held the writer
                # ~20-30 ms every few seconds at 1,000 licenses/s, in everyone's p99.
                self._db.execute("PRAGMA wal_autocheckpoint=0")
            self._db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("BEGIN IMMEDIATE")
            create_schema(self._db)
            self._db.execute("COMMIT")
            # The background checkpoints' own connection (they run in a worker thread).
            self._checkpointer = (
                sqlite3.connect(self.path, check_same_thread=False, timeout=0) if threaded else None
            )
        except sqlite3.Error as exc:
            raise storage_error(exc, f"be opened at {self.path}") from None
        self._queue: deque[Job] = deque()  # operations waiting for the next group
        self._writer: trio.lowlevel.Task | None = None  # the writer, parked on an empty queue
        self._wal_frames = 0  # pages in the WAL at the last background checkpoint
        self._committed = trio.Event()  # a group was written since the last checkpoint
        self._running = False
        self._closed = False
        self._cause: StorageError | None = None  # why the open group's commit will fail
        log.debug("opened %s (schema %d)", self.path, SCHEMA_VERSION)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The writer task: apply queued operations in groups until cancelled (and, for a
        threaded store, checkpoint the WAL CHECKPOINT_EVERY seconds after each write)."""
        self._running = True
        task_status.started()
        try:
            async with trio.open_nursery() as background:
                if self.threaded:
                    background.start_soon(self._checkpoints)
                await self._write_groups()
                background.cancel_scope.cancel()
        finally:
            self._running = False
            self.close()
            # Callers still waiting are told: nothing of theirs was (or will be) stored.
            while self._queue:
                pending = self._queue.popleft()
                pending.fail(StorageError("the license database closed before this was written"))
                pending.finish()

    async def _write_groups(self) -> None:
        queue = self._queue
        while True:
            if not queue:
                if self._closed:
                    return
                self._writer = trio.lowlevel.current_task()
                await trio.lowlevel.wait_task_rescheduled(self._writer_abandon)
                continue
            group = [queue.popleft() for _ in range(min(len(queue), MAX_GROUP))]
            # The operations run here, on the event loop: they are Python (decisions,
            # signatures, encoding) and in a worker thread they only fought the loop for the
            # GIL. So does a quick COMMIT; a slow one (GIL released while it waits for the
            # disk) runs in a worker thread, not cancellable: a group, once started, is
            # committed or rolled back whole.
            on_loop = not self.threaded or self._commit_on_loop()
            if self._run_ops(group):
                if not self.threaded:
                    self._commit(group)
                elif on_loop:
                    self._commit_timed(group)
                else:
                    await trio.to_thread.run_sync(self._commit, group)
                    self.stats.thread_commits += 1
            for pending in group:
                pending.finish()
            self._committed.set()
            if self.threaded and self._wal_needs_restart():
                # Its fsync of the database file took 4.6-7 ms here, about once a second
                # under load: in a worker thread, so that the loop keeps serving meanwhile
                # (the writer waits: its connection is the checkpoint's). Not cancellable.
                await trio.to_thread.run_sync(self.checkpoint)
            elif on_loop:
                # Let the woken callers and newly arrived requests run, so the next group
                # collects everything queued meanwhile.
                await trio.lowlevel.checkpoint()

    async def _checkpoints(self) -> None:
        assert self._checkpointer is not None
        while True:
            # Only after something was written: an idle store has no timer running (a
            # virtual clock can jump over idle years in one step).
            await self._committed.wait()
            self._committed = trio.Event()
            await trio.sleep(CHECKPOINT_EVERY)
            # Not cancellable either: a checkpoint in progress is left to finish.
            await trio.to_thread.run_sync(self.checkpoint, self._checkpointer)

    def checkpoint(self, db: sqlite3.Connection | None = None) -> tuple[int, int]:
        """Copy what the WAL holds into the database file without blocking the writer
        (SQLite's PASSIVE checkpoint, on `db`, default the writer's own connection); return
        (frames in the WAL, frames copied). A failure is logged, not raised: the WAL only
        grows until the next checkpoint succeeds."""
        try:
            row = (db or self._db).execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            log.warning("WAL checkpoint of %s failed: %s", self.path, exc)
            return (0, 0)
        self.stats.checkpoints += 1
        _, frames, copied = row
        if db is not None:  # a background reading: what the writer compares with its limit
            self._wal_frames = int(frames)
        return (int(frames), int(copied))

    async def run_op(self, fn: Op[T]) -> T:
        """Run `fn(db)` in the next group and return its result once committed.

        Raises:
            ServiceError: whatever `fn` refused with (its changes are rolled back).
            StorageError: the database could not commit; nothing of `fn` is stored.
        """
        if self._closed:
            raise StorageError("the license database is closed (the server is shutting down)")
        pending: _Pending[T] = _Pending(fn)
        self._queue.append(pending)
        writer, self._writer = self._writer, None
        if writer is not None:
            trio.lowlevel.reschedule(writer)
        await pending.wait()
        if pending.error is not None:
            raise pending.error
        return cast(T, pending.result)  # set by a successful operation

    def _writer_abandon(self, _: object) -> trio.lowlevel.Abort:
        self._writer = None
        return trio.lowlevel.Abort.SUCCEEDED

    def run_now(self, fn: Op[T]) -> T:
        """Run `fn` synchronously in its own transaction (startup and offline tools only,
        before `run` starts)."""
        if self._running:
            raise RuntimeError("run_now is for use before the writer task starts")
        pending: _Pending[T] = _Pending(fn)
        self._apply([pending])
        if pending.error is not None:
            raise pending.error
        return cast(T, pending.result)  # set by a successful operation

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            writer, self._writer = self._writer, None
            if writer is not None:  # a parked writer ends (`run` returns)
                trio.lowlevel.reschedule(writer)
            if self._checkpointer is not None:
                self._checkpointer.close()
            self._db.close()

    # ---- running and committing groups (COMMIT on the loop, or in a worker thread) ------

    def _apply(self, group: list[Job]) -> None:
        """Run and commit one group in the calling thread (`run_now`)."""
        if self._run_ops(group):
            self._commit(group)
        if self._wal_needs_restart():
            self.checkpoint()

    def _run_ops(self, group: list[Job]) -> bool:
        """Begin a transaction and run each operation of `group` in it; False if there is
        nothing to commit (every operation has its error)."""
        self.stats.transactions += 1
        self.stats.operations += len(group)
        self.stats.largest_group = max(self.stats.largest_group, len(group))
        run = run_group(self._db, group)
        self.stats.replays += run.replayed
        self._cause = run.cause
        return run.to_commit

    def _commit_on_loop(self) -> bool:
        return self.slow_commit > 0 and monotonic() >= self._threads_until

    def _commit_timed(self, group: list[Job]) -> None:
        """Commit on the loop; after slow commits in a row, commit in a worker thread for a
        while (a slow commit tried after that while sends the next ones back at once)."""
        started = monotonic()
        self._commit(group)
        ended = monotonic()
        self.stats.loop_commits += 1
        if ended - started < self.slow_commit:
            self._slow_in_a_row = 0
            return
        self._slow_in_a_row += 1
        if self._slow_in_a_row >= SLOW_COMMITS_IN_A_ROW:
            self._threads_until = ended + THREAD_COMMITS_FOR
            log.debug("commits take %.1f ms: committing in a worker thread for %.0f s",
                      (ended - started) * 1000, THREAD_COMMITS_FOR)  # fmt: skip

    def _commit(self, group: list[Job]) -> None:
        """Commit the group's transaction (on the loop, or in a worker thread)."""
        db = self._db
        try:
            if not db.in_transaction:
                raise sqlite3.OperationalError("the transaction was rolled back by sqlite")
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self.stats.failed_commits += 1
            # The first storage error says why (e.g. a full disk) better than COMMIT does.
            error = self._cause or storage_error(exc, "commit")
            log.error("commit of %d operations failed: %s", len(group), exc)
            with contextlib.suppress(sqlite3.Error):  # the transaction may already be gone
                db.execute("ROLLBACK")
            for pending in group:
                pending.fail(error)
            return

    def _wal_needs_restart(self) -> bool:
        """Whether the writer should finish a checkpoint before its next group.

        The background checkpoints copy nearly all of the WAL, but while commits keep coming
        SQLite never finds it fully copied, which is what lets the next transaction start
        the WAL over. Between two groups the writer is quiet: it copies the little that is
        left (`checkpoint` on its own connection), so the WAL file stays bounded."""
        if self._wal_frames < WAL_RESTART_FRAMES:
            return False
        self._wal_frames = 0
        return True
