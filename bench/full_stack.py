"""Full stack: RDP client logons per second through one agent, next to the license server's
direct issuance rate, same run.

Contract: `python bench/full_stack.py [--seconds S] [--clients C] [--connections N] [--json]`
runs two phases, each against a fresh license server in a child process (Windows Server
2003, unactivated: every new device gets a 90-day temporary license, signed and committed
before it is sent, as in bench/issuance.py):
1. direct: C emulated terminal servers run closed loops of IssueLicense for new devices for
   S seconds (bench/issuance.py's loops): the license server's issuance rate;
2. full stack: one agent (`tslic agent`'s `Agent`, a 2003 Per Device terminal server, in a
   child process of its own, keeping at most N connections to the license server) serves C
   closed loops of emulated `tslic connect` clients over the msgpack RDP conversation, each
   logon a fresh device (a new key: LicenseRequest, NewLicenseRequest, PlatformChallenge,
   NewLicense, ClientLogon, LogonComplete, Goodbye; the agent sends IssueLicense, then
   MarkLicense after the logon) for S seconds.
It prints logons per second, their ratio to the direct issuance rate, the CPU per logon of
the agent, the license server and this process (the clients), each by thread
(bench/procstat.py), and what each logon cost the license server: connections it accepted
and store operations (the whole phase, the agent's discovery included). The script also
runs an agent of an older tree (PYTHONPATH=OLD_TREE python bench/full_stack.py), which is
how bench/FULL_STACK.md compares before and after. The clients, the agent and the license
server share the machine's cores. A benchmark: figures, never assertions.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from multiprocessing.context import ForkContext, SpawnContext
from pathlib import Path
from typing import Any

import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.protocol.domain import ClientOS, WindowsVersion
from tslic.runtime.clock import WallClock

# Run as a script (`python bench/NAME.py`): the repository root makes `bench` importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import issuance
from bench.procstat import per_request_us, threads_cpu


def _serve_license_server(conn: Any, data_dir: str) -> None:
    """bench/issuance.py's license server, also reporting the connections it accepted."""
    from tslic.runtime.service import Limits
    from tslic.server.license_server.config import Config
    from tslic.server.license_server.daemon import LicenseServer

    async def main() -> None:
        config = Config(
            name="BENCHLS",
            version=WindowsVersion.W2003,
            data_dir=Path(data_dir),
            store_threads=True,
        )
        server = LicenseServer(config, WallClock(), limits=Limits(rate_per_second=1e9,
                                                                   rate_burst=1e9))  # fmt: skip
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server.serve)
            conn.send(address)
            await trio.to_thread.run_sync(conn.recv, abandon_on_cancel=True)
            stats = server.store.stats
            conn.send((stats.operations, stats.transactions, server.server.counters.accepted))
            server.shutdown()

    trio.run(main)


def _serve_agent(conn: Any, data_dir: str, ls_address: str, per_server: int) -> None:
    from tslic.client.agent.config import AgentConfig, NamedAddress
    from tslic.client.agent.service import Agent

    async def main() -> None:
        options: dict[str, Any] = {}
        if "connections_per_server" in AgentConfig.__dataclass_fields__:
            options["connections_per_server"] = per_server  # (an agent before kept links)
        config = AgentConfig(
            name="BENCHTS",
            version=WindowsVersion.W2003,
            registry_servers=(NamedAddress(name="BENCHLS", address=ls_address),),
            **options,
        )
        agent = Agent(config, Path(data_dir), WallClock())
        async with trio.open_nursery() as nursery:
            address = await nursery.start(agent.serve)
            await agent.servers.settled()  # discovery done, certificate obtained
            conn.send(address)
            await trio.to_thread.run_sync(conn.recv, abandon_on_cancel=True)
            conn.send(dict(agent.state.counts))
            agent.shutdown()

    trio.run(main)


async def _logon_loops(address: str, clients: int, seconds: float) -> tuple[int, int]:
    from tslic.client.load.rdp_driver import MemoryStore
    from tslic.client.rdp.client import connect

    clock = WallClock()
    licensed = failed = 0
    stop = trio.current_time() + seconds

    async def loop(i: int) -> None:
        nonlocal licensed, failed
        n = 0
        while trio.current_time() < stop:
            n += 1
            outcome = await connect(
                address,
                store=MemoryStore(Ed25519PrivateKey.generate()),  # a fresh device each time
                device=f"PC{i}-{n}",
                user="u",
                client_os=ClientOS.XP_PRO,
                clock=clock,
            )
            if outcome.status == "licensed" and outcome.received == "new":
                licensed += 1
            else:
                failed += 1

    async with trio.open_nursery() as nursery:
        for i in range(clients):
            nursery.start_soon(loop, i)
    return licensed, failed


def _license_server(ctx: Any, data: str) -> tuple[Any, Any, str]:
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve_license_server, args=(child, data))
    proc.daemon = True
    proc.start()
    return proc, parent, str(parent.recv())


def measure(seconds: float, clients: int, per_server: int) -> dict[str, Any]:
    ctx: SpawnContext | ForkContext  # BENCH_START=fork starts the servers by fork
    if os.environ.get("BENCH_START") == "fork":
        ctx = multiprocessing.get_context("fork")
    else:
        ctx = multiprocessing.get_context("spawn")
    out: dict[str, Any] = {"seconds": seconds, "clients": clients, "connections": per_server}
    with tempfile.TemporaryDirectory(prefix="tslic-bench-") as data:
        # 1. The license server's direct issuance rate.
        proc, pipe, address = _license_server(ctx, os.path.join(data, "ls-direct"))
        started = time.perf_counter()
        issued = trio.run(issuance._issue_loops, address, clients, seconds)
        out["issuance_per_second"] = round(issued / (time.perf_counter() - started), 1)
        pipe.send("stop")
        pipe.recv()
        proc.join(10)
        # 2. Logons through one agent.
        proc, pipe, address = _license_server(ctx, os.path.join(data, "ls-full"))
        a_parent, a_child = ctx.Pipe()
        agent = ctx.Process(
            target=_serve_agent, args=(a_child, os.path.join(data, "agent"), address, per_server)
        )
        agent.daemon = True
        agent.start()
        agent_address = a_parent.recv()
        before = {"agent": threads_cpu(agent.pid or 0), "ls": threads_cpu(proc.pid or 0)}
        started, cpu = time.perf_counter(), time.process_time()
        licensed, failed = trio.run(_logon_loops, agent_address, clients, seconds)
        elapsed = time.perf_counter() - started
        n = max(1, licensed)
        out["agent_cpu_us_per_logon"] = per_request_us(
            before["agent"], threads_cpu(agent.pid or 0), n
        )
        out["ls_cpu_us_per_logon"] = per_request_us(before["ls"], threads_cpu(proc.pid or 0), n)
        out["client_cpu_us_per_logon"] = round((time.process_time() - cpu) / n * 1e6)
        a_parent.send("stop")
        counts = a_parent.recv()
        agent.join(10)
        pipe.send("stop")
        operations, transactions, accepted = pipe.recv()
        proc.join(10)
    out["logons_per_second"] = round(licensed / elapsed, 1)
    out["logons_failed"] = failed
    out["ratio"] = round(out["logons_per_second"] / max(1e-9, out["issuance_per_second"]), 3)
    # What the license server saw in the whole full-stack phase, discovery included.
    out["ls_connections_accepted"] = accepted
    out["ls_connections_per_logon"] = round(accepted / n, 2)
    out["ls_store_operations_per_logon"] = round(operations / n, 2)
    out["ls_store_transactions"] = transactions
    out["agent_counts"] = counts
    out["cpus"] = os.cpu_count()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=16, help="concurrent RDP clients")
    parser.add_argument(
        "--connections", type=int, default=8, help="the agent's connections to the server"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = measure(args.seconds, args.clients, args.connections)
    if args.json:
        print(json.dumps(result, sort_keys=True))
        return 0
    print(
        f"license server, direct ({args.clients} terminal servers): "
        f"{result['issuance_per_second']:.0f} issuances/s"
    )
    print(
        f"through one agent ({args.clients} RDP clients, {args.connections} connections): "
        f"{result['logons_per_second']:.0f} logons/s ({result['logons_failed']} failed), "
        f"ratio {result['ratio']:.2f}"
    )
    print(
        f"license server per logon: {result['ls_connections_per_logon']} connections, "
        f"{result['ls_store_operations_per_logon']} store operations "
        f"({result['ls_connections_accepted']} connections in the whole run)"
    )
    print(f"agent CPU per logon (us, by thread): {result['agent_cpu_us_per_logon']}")
    print(f"license server CPU per logon (us, by thread): {result['ls_cpu_us_per_logon']}")
    print(f"client CPU per logon: {result['client_cpu_us_per_logon']} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
