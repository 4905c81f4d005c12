"""Starting and stopping the lab's daemons as separate processes.

Contract: `Deployment` is an async context manager owning every daemon it starts. `start`
runs `python -m tslic.cli ROLE ARGS --ready-file F`, waits (bounded) for the readiness line
and returns it as a dict. Each daemon's stdout and stderr go to `<data>/logs/<name>.log`, so
a failing scenario can be diagnosed afterwards. On exit every daemon gets SIGTERM (graceful
shutdown) and, after a deadline, SIGKILL; nothing is left running. A daemon that dies before
it is ready raises `LabError` with the tail of its log.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import trio
from tslic.protocol.codec import Unvalidated
from tslic.protocol.errors import ErrorCode, TslicError

# A hang guard, not a speed requirement: a daemon that dies is reported at once (poll below);
# one that is merely slow to start (a busy machine) is waited for.
READY_TIMEOUT = 120.0
STOP_GRACE = 5.0


class LabError(TslicError):
    """The lab could not build or drive its deployment."""

    code = ErrorCode.INTERNAL_ERROR


@dataclass
class Daemon:
    name: str
    role: str
    process: trio.Process
    info: dict[str, Unvalidated]  # the daemon's readiness line, as parsed
    log: Path

    @property
    def address(self) -> str:
        return str(self.info["address"])


@dataclass
class Deployment:
    """The lab's processes, all under one data directory."""

    data: Path
    clock_file: Path
    daemons: dict[str, Daemon] = field(default_factory=dict)

    async def __aenter__(self) -> Deployment:
        (self.data / "logs").mkdir(parents=True, exist_ok=True)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with trio.CancelScope(shield=True):
            await self.stop_all()

    async def start(self, name: str, role: str, *args: str) -> Daemon:
        """Start one daemon and wait for its readiness line."""
        if name in self.daemons:
            raise LabError(f"daemon {name!r} is already running")
        ready = self.data / "run" / f"{name}.ready"
        ready.parent.mkdir(parents=True, exist_ok=True)
        ready.unlink(missing_ok=True)
        log = self.data / "logs" / f"{name}.log"
        argv = [
            sys.executable,
            "-m",
            "tslic.cli",
            role,
            *args,
            "--ready-file",
            str(ready),
            "--clock-file",
            str(self.clock_file),
        ]
        handle = open(log, "ab")  # noqa: ASYNC230, SIM115 - handed to the child, closed below
        try:
            process = await trio.lowlevel.open_process(
                argv, stdout=handle, stderr=handle, stdin=subprocess.DEVNULL
            )
        finally:
            handle.close()
        with trio.move_on_after(READY_TIMEOUT):
            while not ready.exists():
                if process.poll() is not None:
                    raise LabError(f"{name} exited with {process.returncode}:\n{tail(log)}")
                await trio.sleep(0.02)
        if not ready.exists():
            process.kill()
            raise LabError(f"{name} was not ready after {READY_TIMEOUT:.0f} s:\n{tail(log)}")
        info = json.loads(ready.read_text().splitlines()[-1])
        daemon = Daemon(name=name, role=role, process=process, info=info, log=log)
        self.daemons[name] = daemon
        return daemon

    async def stop(self, name: str, *, kill: bool = False) -> None:
        """Stop one daemon: SIGTERM and a grace period, or SIGKILL at once."""
        daemon = self.daemons.pop(name)
        process = daemon.process
        if process.poll() is None:
            process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            with trio.move_on_after(STOP_GRACE):
                await process.wait()
            if process.poll() is None:
                process.kill()
                await process.wait()

    async def stop_all(self) -> None:
        async with trio.open_nursery() as nursery:
            for name in list(self.daemons):
                nursery.start_soon(self.stop, name)


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
