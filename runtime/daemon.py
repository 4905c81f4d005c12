"""Running a daemon: readiness line, ready file, signals, graceful shutdown.

Contract: `run_daemon(role, start)` runs `start(task_status, shutdown_event)` in a nursery.
Once it reports its bound address, one JSON line `{"role", "address", "pid", ...}` goes to
stdout (flushed) and, if asked, to the ready file (atomically). The soft open-files limit is
raised to the hard one first (runtime/fdlimit.py). SIGINT or SIGTERM sets the
shutdown event (the daemon stops accepting and gives handlers their grace period); a second
signal cancels everything at once. Once started, the daemon's start-up objects are frozen
out of the garbage collector's sight (`settle`). Start-up errors are `TslicError`s printed as
one line with their code, with exit status 2; nobody sees a traceback for a bad flag or a busy
port. Listeners open their sockets with `runtime.listen.open_listeners`, whose refusal names
the address; an `OSError` that still escapes (a path the daemon could not use) is printed the
same way, as one line naming the file, and also gives exit status 2. `check_ready_file`
refuses a ready file that cannot be written before anything starts.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TypeVar

import trio
from tslic.protocol.errors import TslicError

from .fdlimit import raise_file_limit
from .files import write_atomic
from .listen import StartupError

log = logging.getLogger(__name__)

Starter = Callable[[trio.Event, "trio.TaskStatus[dict[str, object]]"], Awaitable[None]]


def announce(info: Mapping[str, object], ready_file: Path | None) -> None:
    """Print the readiness line and write the ready file."""
    line = json.dumps({**info, "pid": os.getpid()}, sort_keys=True)
    # The file first: whoever reads the line on stdout may look for the file at once.
    if ready_file is not None:
        write_atomic(ready_file, (line + "\n").encode())
    print(line, flush=True)


async def _run(start: Starter, ready_file: Path | None) -> None:
    shutdown = trio.Event()
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as outer:
            async with trio.open_nursery() as inner:

                async def watch() -> None:
                    count = 0
                    async for signum in signals:
                        count += 1
                        log.info("signal %s: shutting down", signal.Signals(signum).name)
                        shutdown.set()
                        if count > 1:  # a second signal: stop now
                            inner.cancel_scope.cancel()

                outer.start_soon(watch)
                info = await inner.start(start, shutdown)
                settle()
                announce(info, ready_file)
            # The daemon has drained (or was cancelled); stop watching signals.
            outer.cancel_scope.cancel()


def settle() -> None:
    """Freeze what start-up built (modules, classes, configuration, the opened store: ~40,000
    objects that live as long as the daemon) out of the garbage collector's sight. A full
    collection walks every tracked object with the event loop stopped: 7-10 ms here for the
    start-up objects alone, in the tail of every request in flight; frozen, it walks only
    what was made since. Only a daemon's own process calls this (tests run many servers in
    one process, whose garbage must stay collectable)."""
    gc.collect()
    gc.freeze()


def run_daemon(start: Starter, *, ready_file: Path | None = None) -> int:
    """Run a daemon to completion; return the process exit status."""
    logging.basicConfig(
        level=os.environ.get("TSLIC_LOG", "WARNING").upper(),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    # Every connection is a descriptor: take the whole hard limit, so the servers' connection
    # ceiling (fdlimit.connection_ceiling) is as high as this machine allows.
    raise_file_limit()
    failure: TslicError | None = None
    interrupted = False
    try:
        check_ready_file(ready_file)
        trio.run(_run, start, ready_file)
    except* TslicError as group:
        failure = first_error(group)
    except* OSError as group:
        failure = os_failure(first_error(group))
    except* KeyboardInterrupt:
        interrupted = True
    if interrupted:
        return 130
    if failure is not None:
        print(f"tslic: error: {failure}", file=sys.stderr)
        return 2
    return 0


def check_ready_file(ready_file: Path | None) -> None:
    """Refuse, before anything starts, a ready file whose directory is not there."""
    if ready_file is None:
        return
    folder = ready_file.parent
    if not folder.is_dir():
        raise StartupError(f"cannot write the ready file {ready_file}: {folder} is not a directory")
    if ready_file.is_dir():
        raise StartupError(f"cannot write the ready file {ready_file}: it is a directory")
    if not os.access(folder, os.W_OK):
        raise StartupError(f"cannot write the ready file {ready_file}: permission denied")


def os_failure(exc: OSError) -> StartupError:
    """An operating-system refusal that escaped its layer, as one line naming the path."""
    why = (exc.strerror or str(exc)).lower()
    where = f" {exc.filename}" if exc.filename else ""
    return StartupError(f"cannot start:{where}: {why}" if where else f"cannot start: {why}")


E = TypeVar("E", bound=BaseException)


def first_error(group: BaseExceptionGroup[E]) -> E:
    """The first leaf exception of a (possibly nested) exception group."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            inner: E = first_error(exc)
            return inner
        return exc
    raise AssertionError("empty exception group")
