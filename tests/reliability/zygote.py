"""A fork server for crash tests: imports the license server once, then forks real daemon
processes on request, so a SIGKILL cycle costs milliseconds instead of an interpreter start.

Run as `python -m tests.reliability.zygote` from the repository root. Commands arrive on
stdin, one JSON object a line:
- `{"op": "spawn", "data_dir": D, "ready": F, "log": L}` forks a child that runs the real
  license server (`LicenseServer` under `runtime.daemon.run_daemon`, wall clock, with the same
  storage code as `tslic server`) on 127.0.0.1 port 0 and writes its readiness line to F;
  an optional `"limits": {...}` sets `runtime.service.Limits` fields, and `"role":
  "clearinghouse"` runs the Clearinghouse service instead (as `tslic clearinghouse serve`
  does, without the web pages), `"role": "agent"` a 2003 terminal server agent whose
  license server is `limits["license_server"]`, `"role": "flood"` a process of abusive
  connections against `limits["target"]` (fuzzer.flood); the reply is `{"pid": N}`.
- `{"op": "wait", "pid": N}` reaps child N and replies `{"pid": N, "status": S}` (the raw
  wait status: a SIGKILLed child has WIFSIGNALED with SIGKILL).
The zygote never runs Trio itself (forking a running event loop is unsafe); each child starts
its own `trio.run` after the fork. EOF on stdin ends the zygote, which SIGKILLs (and reaps)
every child not yet waited for, so a failing test leaves no daemon behind.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from functools import partial
from pathlib import Path
from typing import Any

import trio
from tslic.client.agent.config import AgentConfig, NamedAddress
from tslic.client.agent.service import Agent
from tslic.protocol.domain import ServerRole, WindowsVersion
from tslic.runtime.clock import WallClock
from tslic.runtime.daemon import run_daemon
from tslic.runtime.service import Limits, Server
from tslic.server.clearinghouse.service import ClearinghouseService
from tslic.server.license_server.config import Config
from tslic.server.license_server.daemon import LicenseServer


def child(data_dir: Path, ready: Path, log: Path, limits: dict[str, Any], role: str) -> int:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 2)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    if role == "clearinghouse":
        return clearinghouse(data_dir, ready)
    if role == "agent":
        return agent(data_dir, ready, str(limits["license_server"]))
    if role == "flood":
        return flood(ready, limits)
    config = Config(
        name="LSREL", version=WindowsVersion.W2003, role=ServerRole.DOMAIN, data_dir=data_dir
    )

    async def start(shutdown: trio.Event, task_status: trio.TaskStatus[dict[str, object]]) -> None:
        ls = LicenseServer(config, WallClock(), limits=Limits(**limits))
        async with trio.open_nursery() as nursery:
            address = await nursery.start(ls.serve)
            task_status.started({"role": "server", "address": address})
            await shutdown.wait()
            ls.shutdown()

    return run_daemon(start, ready_file=ready)


def clearinghouse(data_dir: Path, ready: Path) -> int:
    """The Clearinghouse as `tslic clearinghouse serve` runs it (without the web pages)."""
    clock = WallClock()
    service = ClearinghouseService(data_dir, clock)

    async def start(shutdown: trio.Event, task_status: trio.TaskStatus[dict[str, object]]) -> None:
        server = Server(service, key=service.ch.root_key, clock=clock)
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server.serve)
            task_status.started({"role": "clearinghouse", "address": address})
            await shutdown.wait()
            server.shutdown()

    try:
        return run_daemon(start, ready_file=ready)
    finally:
        service.close()


def agent(data_dir: Path, ready: Path, license_server: str) -> int:
    """A 2003 Per Device terminal server (`tslic agent run`) using one license server."""
    config = AgentConfig(
        name="TSAGENT",
        version=WindowsVersion.W2003,
        registry_servers=(NamedAddress(name="LSREL", address=license_server),),
    )

    async def start(shutdown: trio.Event, task_status: trio.TaskStatus[dict[str, object]]) -> None:
        emulated = Agent(config, data_dir, WallClock())
        async with trio.open_nursery() as nursery:
            address = await nursery.start(emulated.serve)
            task_status.started({"role": "agent", "address": address})
            await shutdown.wait()
            emulated.shutdown()

    return run_daemon(start, ready_file=ready)


def flood(ready: Path, params: dict[str, Any]) -> int:
    """Abusive connections against params["target"] until killed (fuzzer.flood)."""
    from tests.reliability import fuzzer  # the tests' helper, only in this child

    async def start(shutdown: trio.Event, task_status: trio.TaskStatus[dict[str, object]]) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                partial(
                    fuzzer.flood,
                    str(params["target"]),
                    seed=int(params["seed"]),
                    slow_senders=int(params["slow_senders"]),
                    spammers=int(params["spammers"]),
                )
            )
            task_status.started({"role": "flood", "address": str(params["target"])})
            await shutdown.wait()
            nursery.cancel_scope.cancel()

    return run_daemon(start, ready_file=ready)


def main() -> None:
    children: set[int] = set()
    try:
        serve(children)
    finally:
        # EOF (the test ended, maybe by failing): no daemon outlives the test that made it.
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass


def serve(children: set[int]) -> None:
    for line in sys.stdin:
        cmd = json.loads(line)
        reply: dict[str, Any]
        if cmd["op"] == "spawn":
            pid = os.fork()
            if pid == 0:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                status = 1
                try:
                    status = child(
                        Path(cmd["data_dir"]),
                        Path(cmd["ready"]),
                        Path(cmd["log"]),
                        cmd.get("limits", {}),
                        cmd.get("role", "server"),
                    )
                finally:
                    os._exit(status)
            children.add(pid)
            reply = {"pid": pid}
        elif cmd["op"] == "wait":
            _, status = os.waitpid(int(cmd["pid"]), 0)
            children.discard(int(cmd["pid"]))
            reply = {"pid": cmd["pid"], "status": status}
        else:
            reply = {"error": f"unknown op {cmd['op']!r}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
