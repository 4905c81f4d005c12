"""The store: group commit, durability, isolation of failing operations, full disks."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from trio.testing import MockClock
from tslic.protocol.domain import CalProduct, LicenseKind
from tslic.protocol.errors import ErrorCode, ServiceError, StorageError
from tslic.server.license_server import store as store_module
from tslic.server.license_server.store import (
    SLOW_COMMIT,
    SLOW_COMMITS_IN_A_ROW,
    THREAD_COMMITS_FOR,
    Op,
    Store,
)

from tests.license_server import harness as h


def insert(value: int) -> Op[int]:
    def op(db: sqlite3.Connection) -> int:
        db.execute("INSERT INTO sg_members (name) VALUES (?)", (f"M{value}",))
        return value

    return op


def count(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT COUNT(*) FROM sg_members").fetchone()[0])


# How a store commits: on the Trio thread with SQLite's own checkpoints (tests), on the loop
# with background checkpoints (a daemon whose commits are quick), in a worker thread (a
# daemon after a slow commit; `slow_commit=0` sends every commit there).
MODES = {  # (threaded, slow_commit)
    "unthreaded": (False, SLOW_COMMIT),
    "loop commits": (True, float("inf")),
    "thread commits": (True, 0.0),
}


def store_in(tmp_path: Path, mode: str) -> Store:
    threaded, slow_commit = MODES[mode]
    return Store(tmp_path, threaded=threaded, slow_commit=slow_commit)


def assert_committed_as(store: Store, mode: str) -> None:
    """Every group was committed where `mode` says (the threaded stores count them)."""
    stats = store.stats
    where = {"unthreaded": (0, 0), "loop commits": (stats.transactions, 0)}
    expected = where.get(mode, (0, stats.transactions))
    assert (stats.loop_commits, stats.thread_commits) == expected


@pytest.mark.parametrize("mode", MODES)
async def test_concurrent_operations_share_transactions_and_all_are_durable(
    tmp_path: Path, mode: str
) -> None:
    store = store_in(tmp_path, mode)
    results: list[int] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)

        async def one(i: int) -> None:
            results.append(await store.run_op(insert(i)))

        async with trio.open_nursery() as clients:
            for i in range(200):
                clients.start_soon(one, i)
        nursery.cancel_scope.cancel()
    assert sorted(results) == list(range(200))
    assert store.stats.operations == 200
    assert store.stats.transactions < 200
    assert store.stats.largest_group > 1
    assert_committed_as(store, mode)
    reopened = Store(tmp_path)
    assert reopened.run_now(count) == 200
    reopened.close()


async def test_a_refused_operation_rolls_back_alone(tmp_path: Path) -> None:
    store = Store(tmp_path, threaded=False)

    def refuse(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO sg_members (name) VALUES ('HALF')")
        raise ServiceError("no", code=ErrorCode.NO_LICENSE_AVAILABLE)

    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        outcomes: dict[str, object] = {}

        async def run(name: str, op: Op[int] | Op[None]) -> None:
            try:
                outcomes[name] = await store.run_op(op)
            except ServiceError as exc:
                outcomes[name] = exc.code

        async with trio.open_nursery() as clients:
            clients.start_soon(run, "a", insert(1))
            clients.start_soon(run, "b", refuse)
            clients.start_soon(run, "c", insert(2))
        assert await store.run_op(count) == 2
        nursery.cancel_scope.cancel()
    assert outcomes == {"a": 1, "b": ErrorCode.NO_LICENSE_AVAILABLE, "c": 2}
    # b refused after writing: its group was run again without it (group.py).
    assert (store.stats.transactions, store.stats.replays) == (2, 1)


async def test_full_disk_refuses_and_acknowledges_nothing_unstored(tmp_path: Path) -> None:
    store = Store(tmp_path, threaded=False)
    acknowledged = 0
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        pages = await store.run_op(lambda db: db.execute("PRAGMA page_count").fetchone()[0])
        await store.run_op(lambda db: db.execute(f"PRAGMA max_page_count = {pages + 2}"))
        failure: StorageError | None = None
        for i in range(10_000):
            try:
                await store.run_op(insert(i) if i % 2 else _big(i))
            except StorageError as exc:
                failure = exc
                break
            acknowledged += 1
        nursery.cancel_scope.cancel()
    assert failure is not None
    assert "full" in failure.message
    assert failure.code is ErrorCode.STORAGE_ERROR
    reopened = Store(tmp_path)
    stored = reopened.run_now(count) + reopened.run_now(
        lambda db: db.execute("SELECT COUNT(*) FROM blobs").fetchone()[0]
    )
    reopened.close()
    assert stored == acknowledged


def _big(i: int) -> Op[int]:
    def op(db: sqlite3.Connection) -> int:
        db.execute("INSERT INTO blobs (key, value) VALUES (?, ?)", (f"b{i}", b"x" * 2000))
        return i

    return op


def test_unusable_data_directory_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "licenses.db").write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(StorageError) as info:
        Store(tmp_path)
    assert "damaged" in info.value.message


async def test_many_terminal_servers_at_once_fewer_transactions_than_requests(
    lab: h.Lab, autojump_clock: MockClock
) -> None:
    ls = await h.Lab.start_ls(lab, lab.config("LS3", 2003))
    await lab.activate(ls)
    await lab.install(ls, CalProduct.W2003_DEVICE_CAL, 50)
    servers = [h.TerminalServerPeer(lab, f"TS{i}", 2003) for i in range(10)]
    for ts in servers:
        await ts.enrol(ls)
    before = ls.store.stats.operations, ls.store.stats.transactions
    kinds: list[LicenseKind] = []

    async def clients(ts: h.TerminalServerPeer) -> None:
        async with ts.connect(ls) as s:
            for j in range(5):
                kinds.append((await h.Device(f"{ts.name}-{j}").connect(s)).kind)

    async with trio.open_nursery() as nursery:
        for ts in servers:
            nursery.start_soon(clients, ts)
    ops = ls.store.stats.operations - before[0]
    transactions = ls.store.stats.transactions - before[1]
    assert kinds == [LicenseKind.TEMPORARY] * 50
    assert transactions < ops
    rows = await ls.store.run_op(
        lambda db: db.execute("SELECT COUNT(*) FROM licenses").fetchone()[0]
    )
    assert rows == 50


async def test_slow_commits_send_the_next_ones_to_a_worker_thread_for_a_while(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A daemon's store commits on the loop; after SLOW_COMMITS_IN_A_ROW commits in a row that
    each took SLOW_COMMIT or longer (a disk without a write cache), the commits of the next
    THREAD_COMMITS_FOR seconds run in a worker thread; then one is tried on the loop again,
    and if that one is slow too, the next ones go back to the thread at once."""
    assert SLOW_COMMITS_IN_A_ROW == 3  # the sequence below is written for three
    clock = [1000.0]  # the store's monotonic clock, moved by each commit's "duration"
    takes = [0.0]  # how long the next commit takes
    quick, slow = SLOW_COMMIT / 2, 2 * SLOW_COMMIT

    monkeypatch.setattr(store_module, "monotonic", lambda: clock[0])
    store = Store(tmp_path, threaded=True)
    commit = store._commit

    def timed(group: list[Any]) -> None:
        commit(group)
        clock[0] += takes[0]

    monkeypatch.setattr(store, "_commit", timed)
    committed: list[tuple[int, int]] = []  # (on the loop, in a thread) after each write

    async def write(n: int, took: float) -> None:
        takes[0] = took
        await store.run_op(insert(n))
        committed.append((store.stats.loop_commits, store.stats.thread_commits))

    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        for n, took in enumerate([quick, slow, quick, slow, slow, slow, quick]):
            await write(n, took)  # one slow commit is not enough; three in a row are
        clock[0] += THREAD_COMMITS_FOR
        await write(7, slow)  # the while is over: tried on the loop, slow again ...
        await write(8, quick)  # ... so straight back to the thread
        clock[0] += THREAD_COMMITS_FOR
        await write(9, quick)  # tried on the loop again: quick, so it stays there
        await write(10, quick)
        assert await store.run_op(count) == 11
        nursery.cancel_scope.cancel()
    assert committed == [
        (1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (6, 0), (6, 1), (7, 1), (7, 2), (8, 2), (9, 2),
    ]  # fmt: skip


@pytest.mark.parametrize("threaded", [False, True])
def test_who_checkpoints_the_wal(tmp_path: Path, threaded: bool) -> None:
    """A threaded store leaves checkpoints to its background connection (no COMMIT pays for
    one); an unthreaded store keeps SQLite's automatic checkpoint."""
    store = Store(tmp_path, threaded=threaded)
    try:
        (pages,) = store._db.execute("PRAGMA wal_autocheckpoint").fetchone()
        assert pages == (0 if threaded else 1000)
    finally:
        store.close()


def test_a_background_checkpoint_copies_the_wal_and_the_writer_lets_it_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path, threaded=True)
    background = sqlite3.connect(store.path, check_same_thread=False)
    try:
        for i in range(30):
            store.run_now(insert(i))
        frames, copied = store.checkpoint(background)
        assert frames > 0
        assert copied == frames  # nothing was writing meanwhile
        assert store._wal_frames == frames  # what the writer compares with its limit
        # Under the limit the writer leaves checkpoints alone ...
        store.run_now(insert(100))
        assert store.stats.checkpoints == 1
        # ... over it, it finishes one between two groups and forgets the count.
        monkeypatch.setattr("tslic.server.license_server.store.WAL_RESTART_FRAMES", 1)
        store.run_now(insert(101))
        assert store.stats.checkpoints == 2
        assert store._wal_frames == 0
        # The WAL started over: the next transaction writes at its beginning again.
        store.run_now(insert(102))
        frames_after, _ = store.checkpoint(background)
        assert frames_after < frames
        assert store.run_now(count) == 33
    finally:
        background.close()
        store.close()


async def test_the_writer_finishes_a_checkpoint_in_a_worker_thread_while_the_loop_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over WAL_RESTART_FRAMES the writer copies what is left of the WAL itself, after
    answering its group: in a worker thread, so the event loop keeps serving during the
    checkpoint's fsync; operations queued meanwhile are committed once it is done."""
    monkeypatch.setattr(store_module, "WAL_RESTART_FRAMES", 1)
    store = Store(tmp_path, threaded=True)
    holding, release = threading.Event(), threading.Event()
    ran_in: list[threading.Thread] = []
    checkpoint = store.checkpoint

    def held(db: sqlite3.Connection | None = None) -> tuple[int, int]:
        if db is None:  # the writer's own, not a background one
            ran_in.append(threading.current_thread())
            holding.set()
            # On the loop's thread this would stop the loop: the test fails after 10 s.
            assert release.wait(10), "the loop did not run while the writer checkpointed"
        return checkpoint(db)

    monkeypatch.setattr(store, "checkpoint", held)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        store._wal_frames = 5  # what a background checkpoint found in the WAL
        assert await store.run_op(insert(1)) == 1  # answered before the checkpoint
        assert await trio.to_thread.run_sync(holding.wait, 30)  # the writer is in it now
        committed: list[int] = []
        done = trio.Event()

        async def second() -> None:
            committed.append(await store.run_op(insert(2)))
            done.set()

        nursery.start_soon(second)
        await trio.testing.wait_all_tasks_blocked()
        assert committed == []  # queued behind the writer's checkpoint, not lost
        release.set()
        with trio.fail_after(30):
            await done.wait()
        assert committed == [2]
        assert len(ran_in) == 1
        assert ran_in[0] is not threading.main_thread()
        assert store._wal_frames == 0
        assert await store.run_op(count) == 2
        nursery.cancel_scope.cancel()


async def test_the_running_store_checkpoints_in_the_background(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run` checkpoints on its own connection CHECKPOINT_EVERY seconds after a write (and
    keeps no timer while nothing is written)."""
    monkeypatch.setattr("tslic.server.license_server.store.CHECKPOINT_EVERY", 0.001)
    store = Store(tmp_path, threaded=True)
    copied: list[int] = []
    reached = {1: trio.Event(), 2: trio.Event()}
    checkpoint = store.checkpoint

    def counted(db: sqlite3.Connection | None = None) -> tuple[int, int]:
        assert db is not None  # the background connection, never the writer's
        frames, done = checkpoint(db)
        copied.append(done)
        if len(copied) in reached:
            trio.from_thread.run_sync(reached[len(copied)].set)
        return frames, done

    monkeypatch.setattr(store, "checkpoint", counted)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        for n in (1, 2):
            await store.run_op(insert(n))
            with trio.fail_after(30):
                await reached[n].wait()
            assert copied[-1] > 0  # it copied what that write committed
        nursery.cancel_scope.cancel()
    assert len(copied) == 2
    assert store._closed


@pytest.mark.parametrize("mode", MODES)
async def test_a_caller_cancelled_while_waiting_leaves_the_others_and_its_write_stands(
    tmp_path: Path, mode: str
) -> None:
    """A request that times out while its operation waits for the group's commit stops
    waiting; the operation itself still runs (it was queued), the writer goes on, and the
    callers after it get their results."""
    store = store_in(tmp_path, mode)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        with trio.CancelScope() as impatient:
            impatient.cancel()  # cancelled before the writer can even start the group
            await store.run_op(insert(1))
        assert impatient.cancelled_caught
        assert await store.run_op(insert(2)) == 2
        assert await store.run_op(count) == 2  # the abandoned write was committed too
        nursery.cancel_scope.cancel()


async def test_closing_with_operations_queued_fails_them_with_a_storage_error(
    tmp_path: Path,
) -> None:
    """Operations queued when the writer stops are refused, never left waiting forever."""
    store = Store(tmp_path, threaded=False)
    errors: list[StorageError] = []

    async def queued() -> None:
        try:
            await store.run_op(insert(1))
        except StorageError as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        writer = trio.CancelScope()

        async def run_store(task_status: trio.TaskStatus[None]) -> None:
            with writer:
                await store.run(task_status=task_status)

        await nursery.start(run_store)
        writer.cancel()  # the writer stops before it takes the operation below
        nursery.start_soon(queued)
    assert len(errors) == 1
    assert "closed" in errors[0].message
    reopened = Store(tmp_path)
    assert reopened.run_now(count) == 0
    reopened.close()
