"""A well-behaved client's latency under a connection flood, against its quiet latency.

Contract: `python bench/flood_latency.py [--samples N] [--rounds R] [--json]` (or
`python -m bench flood-latency ...`) forks a real license-server process (the zygote of
tests/reliability, with small `runtime.service.Limits`: 40 connections, 0.5 s Hello deadline,
300 requests/s per peer), connects one honest terminal server and times N cheap refused
requests (ReturnLicense of an unknown license, answered LICENSE_NOT_FOUND), paced 5 ms apart
as real terminal servers are. Quiet and flooded phases alternate R times, so whatever else the
machine does falls on both; the flood is another process opening 50 slow senders (more than
the connection limit) and 4 garbage senders. Samples of each condition are pooled; it prints
p50 and p99 of both, the ratio flooded / quiet (the baseline is the quiet phase of the same
run), and how long a newcomer retrying SERVER_BUSY waits to get a slot while only slow
senders flood. tests/reliability/test_limits.py checks the behaviour (every answer right, the
newcomer gets in); this measures the speed. A benchmark: figures, never assertions.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any, TypedDict

import trio
from tslic.protocol import ErrorCode
from tslic.protocol.errors import RemoteProtocolError, ServiceError
from tslic.protocol.messages.licensing import ReturnLicense
from tslic.runtime.clock import WallClock

from bench.reliability_site import support as rs
from bench.reliability_site import zygote


class FloodLimits(TypedDict):
    max_connections: int
    handshake_timeout: float
    idle_timeout: float
    max_frame: int
    rate_per_second: float
    rate_burst: float
    accept_rate: float
    accept_burst: float


LIMITS = FloodLimits(
    max_connections=40,
    handshake_timeout=0.5,
    idle_timeout=5.0,
    max_frame=4096,
    rate_per_second=300.0,
    rate_burst=30.0,
    accept_rate=300.0,
    accept_burst=60.0,
)
SLOW_SENDERS = 50
SPAMMERS = 4


async def timed_requests(s: Any, n: int) -> list[float]:
    """Latencies (s) of `n` cheap refused requests, paced 5 ms apart."""
    out = []
    for i in range(n):
        start = trio.current_time()
        try:
            await s.request(ReturnLicense(license_id=10**9 + i, hwid=bytes(32)))
        except ServiceError as exc:
            if exc.code is not ErrorCode.LICENSE_NOT_FOUND:
                raise
        out.append(trio.current_time() - start)
        await trio.sleep(0.005)
    return out


async def join_despite_flood(address: str, ts: Any) -> tuple[float, int]:
    """A newcomer retries SERVER_BUSY every 20 ms; returns (seconds to get in, refusals)."""
    start, busy = trio.current_time(), 0
    while True:
        try:
            async with rs.ts_stream(address, ts, WallClock()) as s:
                await timed_requests(s, 1)
                return trio.current_time() - start, busy
        except RemoteProtocolError as exc:
            if exc.code is not ErrorCode.SERVER_BUSY:
                raise
            busy += 1
            await trio.sleep(0.02)


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


async def measure(samples: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tslic-bench-flood-") as tmp_name:
        tmp = Path(tmp_name)
        site = await rs.prepare(tmp, pack=10, terminal_servers=2)
        honest, other = site.terminal_servers
        async with zygote() as zy:
            pid, address = await rs.spawn(zy, site.data_dir, tmp, "limits", **LIMITS)
            floods: list[int] = []

            async def start_flood(tag: str, spammers: int) -> None:
                fpid, _ = await rs.spawn(
                    zy, tmp, tmp, f"flood-{tag}", role="flood", target=address, seed=99,
                    slow_senders=SLOW_SENDERS, spammers=spammers,
                )  # fmt: skip
                floods.append(fpid)

            async def stop_flood() -> None:
                fpid = floods.pop()
                os.kill(fpid, signal.SIGKILL)
                await zy.call(op="wait", pid=fpid)

            quiet: list[float] = []
            flooded: list[float] = []
            try:
                async with contextlib.AsyncExitStack() as stack:
                    steady = await stack.enter_async_context(
                        rs.ts_stream(address, honest, WallClock())
                    )
                    for round_ in range(rounds):
                        quiet += await timed_requests(steady, samples // rounds)
                        await start_flood(str(round_), SPAMMERS)
                        await trio.sleep(0.2)
                        flooded += await timed_requests(steady, samples // rounds)
                        await stop_flood()
                        await trio.sleep(LIMITS["handshake_timeout"] + 0.1)
                await start_flood("slow", 0)
                await trio.sleep(0.2)
                joined, refusals = await join_despite_flood(address, other)
                await stop_flood()
            finally:
                os.kill(pid, signal.SIGTERM)
                await zy.call(op="wait", pid=pid)
    return {
        "samples_per_condition": len(quiet),
        "rounds": rounds,
        "quiet_p50_ms": round(percentile(quiet, 0.5) * 1e3, 3),
        "quiet_p99_ms": round(percentile(quiet, 0.99) * 1e3, 3),
        "flooded_p50_ms": round(percentile(flooded, 0.5) * 1e3, 3),
        "flooded_p99_ms": round(percentile(flooded, 0.99) * 1e3, 3),
        "p99_ratio": round(percentile(flooded, 0.99) / percentile(quiet, 0.99), 2),
        "newcomer_join_seconds": round(joined, 3),
        "newcomer_busy_refusals": refusals,
        "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--samples", type=int, default=600, help="per condition")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = trio.run(measure, args.samples, args.rounds)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(
            f"honest client, {result['samples_per_condition']} samples per condition in "
            f"{args.rounds} alternated rounds: p99 quiet {result['quiet_p99_ms']:.2f} ms, "
            f"flooded {result['flooded_p99_ms']:.2f} ms, ratio {result['p99_ratio']:.2f} "
            f"(p50 {result['quiet_p50_ms']:.2f} / {result['flooded_p50_ms']:.2f} ms); "
            f"newcomer past 50 slow senders in {result['newcomer_join_seconds']:.3f} s "
            f"after {result['newcomer_busy_refusals']} SERVER_BUSY"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
