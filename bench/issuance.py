"""Issuance throughput of the license server against the bare signed round trip, same run.

Contract: `python bench/issuance.py [--seconds S] [--connections C] [--json]` (or
`python -m bench.issuance`) starts, each in a child process with a core of its own:
- the license server (`server.license_server.daemon.LicenseServer`, Windows Server 2003,
  fresh data directory, durable group-committed SQLite, threaded store; `--inline-store`
  runs the store's SQLite work on the event loop instead);
- the signed echo of bench/signed_echo.py (runtime.service.Server answering MarkLicense with
  LicenseMarked: one verified and one signed envelope each way, nothing else).
This process enrols C terminal servers (RequestTermServCert) and runs C closed loops of
IssueLicense for new devices for S seconds (each answer is a 90-day temporary license, signed
and committed before it is sent), then the same loops of MarkLicense against the echo. It
prints requests per second of both, their ratio, the store's operations per transaction, and
this process's (the client's) CPU per request in each loop, which should be alike: the client
shares the machine's cores with the servers; and each server's CPU per request, by thread
(bench/procstat.py).
A benchmark: figures, never assertions.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.protocol import Conversation
from tslic.protocol.domain import ClientOS, LicensingMode, PeerRole, WindowsVersion
from tslic.protocol.messages.licensing import (
    IssueLicense,
    MarkLicense,
    RequestTermServCert,
    TermServCert,
)
from tslic.protocol.pki import raw_public_key
from tslic.runtime.clock import WallClock
from tslic.runtime.peer import open_peer

# Run as a script (`python bench/NAME.py`): the repository root makes `bench` importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import signed_echo
from bench.procstat import per_request_us, threads_cpu


def _serve_license_server(conn: Any, data_dir: str, threaded: bool) -> None:
    from tslic.runtime.service import Limits
    from tslic.server.license_server.config import Config
    from tslic.server.license_server.daemon import LicenseServer

    async def main() -> None:
        config = Config(
            name="BENCHLS",
            version=WindowsVersion.W2003,
            data_dir=Path(data_dir),
            store_threads=threaded,
        )
        limits = Limits(rate_per_second=1e9, rate_burst=1e9)
        server = LicenseServer(config, WallClock(), limits=limits)
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server.serve)
            conn.send(address)
            await trio.to_thread.run_sync(conn.recv, abandon_on_cancel=True)
            stats = server.store.stats
            conn.send((stats.operations, stats.transactions, stats.largest_group))
            server.shutdown()

    trio.run(main)


async def enrol(
    address: str, key: Ed25519PrivateKey, i: int, clock: WallClock
) -> tuple[bytes, ...]:
    """Terminal server TS{i}'s certificate chain from the license server at `address` (one
    conversation: Hello, RequestTermServCert), to present in the Hello of the next."""
    async with open_peer(
        address, conversation=Conversation.LICENSING, key=key, clock=clock,
        role=PeerRole.TERMINAL_SERVER, name=f"TS{i}", version=2003,
    ) as s:  # fmt: skip
        reply = await s.request(
            RequestTermServCert(
                name=f"TS{i}",
                domain="D",
                site="S",
                version=WindowsVersion.W2003,
                public_key=raw_public_key(key),
            )
        )
    assert isinstance(reply, TermServCert)
    return reply.cert_chain


async def _issue_loops(address: str, connections: int, seconds: float) -> int:
    clock = WallClock()
    done = 0
    stop = trio.current_time() + seconds

    async def loop(i: int) -> None:
        nonlocal done
        key = Ed25519PrivateKey.generate()
        hello = partial(
            open_peer,
            address,
            conversation=Conversation.LICENSING,
            key=key,
            clock=clock,
            role=PeerRole.TERMINAL_SERVER,
            name=f"TS{i}",
            version=2003,
        )
        async with hello(cert_chain=await enrol(address, key, i, clock)) as s:
            n = 0
            while trio.current_time() < stop:
                n += 1
                await s.request(
                    IssueLicense(
                        # 32 bytes that differ per request, as cheap as the echo loop's fixed
                        # hwid: a new key per request cost the client ~45 us of CPU on the
                        # cores it shares with the server (any 32 bytes are a valid hwid).
                        hwid=os.urandom(32),
                        machine=f"PC{i}-{n}",
                        user="u",
                        client_os=ClientOS.XP_PRO,
                        mode=LicensingMode.PER_DEVICE,
                    )
                )
                done += 1

    async with trio.open_nursery() as nursery:
        for i in range(connections):
            nursery.start_soon(loop, i)
    return done


async def _echo_loops(address: str, connections: int, seconds: float) -> int:
    clock = WallClock()
    done = 0
    stop = trio.current_time() + seconds
    hwid = raw_public_key(Ed25519PrivateKey.generate())

    async def loop(i: int) -> None:
        nonlocal done
        async with open_peer(
            address, conversation=Conversation.LICENSING, key=Ed25519PrivateKey.generate(),
            clock=clock, role=PeerRole.TERMINAL_SERVER, name=f"TS{i}", version=2003,
        ) as s:  # fmt: skip
            while trio.current_time() < stop:
                await s.request(MarkLicense(license_id=i, hwid=hwid))
                done += 1

    async with trio.open_nursery() as nursery:
        for i in range(connections):
            nursery.start_soon(loop, i)
    return done


def measure(seconds: float, connections: int, *, threaded: bool = True) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    out: dict[str, Any] = {"seconds": seconds, "connections": connections}
    with tempfile.TemporaryDirectory(prefix="tslic-bench-") as data:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_serve_license_server, args=(child, data, threaded), daemon=True)
        proc.start()
        address = parent.recv()
        started, cpu = time.perf_counter(), time.process_time()
        threads = threads_cpu(proc.pid or 0)
        issued = trio.run(_issue_loops, address, connections, seconds)
        elapsed = time.perf_counter() - started
        out["server_cpu_us_per_issuance"] = per_request_us(
            threads, threads_cpu(proc.pid or 0), issued
        )
        out["client_cpu_us_per_issuance"] = round((time.process_time() - cpu) / issued * 1e6)
        parent.send("stop")
        ops, transactions, largest = parent.recv()
        proc.join(10)
    out["issuance_per_second"] = round(issued / elapsed, 1)
    out["store_operations"], out["store_transactions"] = ops, transactions
    out["operations_per_transaction"] = round(ops / max(1, transactions), 2)
    out["largest_group"] = largest
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=signed_echo._serve_signed, args=(child,), daemon=True)
    proc.start()
    address = parent.recv()
    started, cpu = time.perf_counter(), time.process_time()
    threads = threads_cpu(proc.pid or 0)
    echoed = trio.run(_echo_loops, address, connections, seconds)
    elapsed = time.perf_counter() - started
    out["server_cpu_us_per_echo"] = per_request_us(threads, threads_cpu(proc.pid or 0), echoed)
    out["client_cpu_us_per_echo"] = round((time.process_time() - cpu) / echoed * 1e6)
    parent.send("stop")
    proc.join(10)
    out["signed_echo_per_second"] = round(echoed / elapsed, 1)
    out["ratio"] = round(out["issuance_per_second"] / max(1e-9, out["signed_echo_per_second"]), 3)
    out["cpus"] = os.cpu_count()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--inline-store",
        action="store_true",
        help="run the store's SQLite work on the event loop instead of its worker thread",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = measure(args.seconds, args.connections, threaded=not args.inline_store)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(
            f"issuance (durable, {args.connections} terminal servers): "
            f"{result['issuance_per_second']:.0f} requests/s, "
            f"{result['operations_per_transaction']} operations per transaction"
        )
        print(f"signed echo round trip: {result['signed_echo_per_second']:.0f} requests/s")
        print(f"ratio issuance / signed echo: {result['ratio']:.2f}")
        print(
            f"client CPU per request: issuance {result['client_cpu_us_per_issuance']} us,"
            f" signed echo {result['client_cpu_us_per_echo']} us"
        )
        print(f"server CPU per issuance (us, by thread): {result['server_cpu_us_per_issuance']}")
        print(f"server CPU per echo (us, by thread): {result['server_cpu_us_per_echo']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
