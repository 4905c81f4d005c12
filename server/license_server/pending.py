"""One queued operation of the store (store.py) and the task waiting for its commit.

Contract: `Pending(fn)` holds an operation, its result or error, and whether its group is
done; `await wait()` parks the calling task until `finish()` (Trio's low-level
`wait_task_rescheduled` / `reschedule`: no Event or channel per operation). A waiter that is
cancelled leaves; the operation still runs or ran. `Job` is the same with the result type
erased, as the store's queue holds operations of every result type.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

import trio

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], T]


class Pending(Generic[T]):
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


class Job(Protocol):
    """A queued operation with its result type erased: the queue holds operations of every
    result type, and each caller reads its own typed `Pending[T]` back."""

    error: BaseException | None

    def run(self, db: sqlite3.Connection) -> None: ...

    def fail(self, error: BaseException) -> None: ...

    def finish(self) -> None: ...
