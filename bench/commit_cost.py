"""What a durable commit costs a license, by the size of its group (issue 19's tail).

Contract: `python -m bench commit-cost [--licenses N] [--rounds R] [--groups G,G,...]
[--json]` opens a daemon's store (`Store(threaded=True)`: WAL, `synchronous=FULL`, no
automatic checkpoint) on a fresh data directory and writes new license rows as issuance
does (`licenses.insert_license`, a signed-blob-sized document, a new hardware id each), in
transactions of G rows, committed in the calling thread as the event loop commits them. For
each G it prints, per license, the thread's CPU and the wall time (the difference is the
time the thread slept in the commit's fsync: what an event loop cannot spend on anyone
else), and their ratio to the largest G's, measured in the same run: the group sizes take
turns in R rounds of N/R licenses each, so that all of them see the same host. The WAL is
checkpointed and truncated between turns, off the clock. A benchmark: figures, never
assertions.

Reading: at a fixed open rate each license arrives alone and its group holds 1 to 2
licenses (bench/tail.py), so its commit's whole cost falls on it; a closed run at the
maximum rate commits 40-55 at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

# Run as a script (`python bench/NAME.py`): the repository root makes `bench` importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tslic.protocol.domain import CalProduct, ClientOS, LicenseKind, LicenseStatus, LicensingMode
from tslic.server.license_server.db import licenses
from tslic.server.license_server.store import MAX_GROUP, Store, _Pending

DOCUMENT_BYTES = 834  # a signed license document as issuance stores it
START = 1_051_747_200_000  # 2003-05-01, as the lab's first day


class _Writer:
    """New license rows, one per call, with ids counted in memory as issuance counts them."""

    def __init__(self, store: Store) -> None:
        self.next_id = store.run_now(licenses.next_license_id)

    def op(self, db: sqlite3.Connection) -> None:
        n = self.next_id
        self.next_id += 1
        row = licenses.LicenseRow(
            n, 0, CalProduct.W2003_DEVICE_CAL, LicenseKind.TEMPORARY, LicenseStatus.TEMPORARY,
            os.urandom(32), f"PC{n:07d}", "user", "TS01", START + n, START + n + 10**9, False,
            os.urandom(DOCUMENT_BYTES), ClientOS.XP_PRO.value, LicensingMode.PER_DEVICE.value,
        )  # fmt: skip
        licenses.insert_license(db, row)


def _turn(store: Store, writer: _Writer, group: int, count: int) -> tuple[float, float, int]:
    """Write `count` rows (rounded up to whole groups) in groups of `group`; return the
    thread's CPU seconds, the wall seconds and the rows written."""
    groups = max(1, -(-count // group))
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    for _ in range(groups):
        store._apply([_Pending(writer.op) for _ in range(group)])
    cpu1, wall1 = time.thread_time(), time.perf_counter()
    return cpu1 - cpu0, wall1 - wall0, groups * group


def measure(count: int, rounds: int, sizes: list[int]) -> dict[str, object]:
    totals = {g: [0.0, 0.0, 0] for g in sizes}
    with tempfile.TemporaryDirectory(prefix="tslic-bench-") as data_dir:
        store = Store(Path(data_dir), threaded=True)
        try:
            writer = _Writer(store)
            for _ in range(rounds):
                for g in sizes:
                    cpu, wall, rows = _turn(store, writer, g, count // rounds)
                    entry = totals[g]
                    entry[0], entry[1], entry[2] = entry[0] + cpu, entry[1] + wall, entry[2] + rows
                    store.checkpoint()  # off the clock: each turn starts from an empty WAL
        finally:
            store.close()
    per = {g: (cpu / rows * 1e6, wall / rows * 1e6) for g, (cpu, wall, rows) in totals.items()}
    base_cpu, base_wall = per[max(sizes)]
    return {
        "licenses_per_group_size": count,
        "rounds": rounds,
        "groups": [
            {
                "group": g,
                "cpu_us_per_license": round(cpu, 1),
                "wall_us_per_license": round(wall, 1),
                "slept_us_per_license": round(max(0.0, wall - cpu), 1),
                "cpu_ratio": round(cpu / base_cpu, 2),
                "wall_ratio": round(wall / base_wall, 2),
            }
            for g, (cpu, wall) in per.items()
        ],
    }


def _sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(s) for s in text.split(",")})
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of group sizes: {text!r}") from None
    if not sizes or sizes[0] < 1 or sizes[-1] > MAX_GROUP:
        raise argparse.ArgumentTypeError(
            f"group sizes run from 1 to {MAX_GROUP} (the store's largest group)"
        )
    return sizes


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--licenses", type=_positive, default=3000, help="per group size")
    parser.add_argument("--rounds", type=_positive, default=5)
    parser.add_argument("--groups", type=_sizes, default="1,2,4,8,64")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.rounds > args.licenses:
        parser.error("--rounds cannot exceed --licenses (each round writes at least one)")
    result = measure(args.licenses, args.rounds, args.groups)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{args.licenses} licenses per group size, in {args.rounds} alternated rounds")
    print("group  CPU us/license  wall us/license  slept in fsync  CPU ratio  wall ratio")
    for g in result["groups"]:  # type: ignore[attr-defined]
        print(
            f"{g['group']:5}  {g['cpu_us_per_license']:14}  {g['wall_us_per_license']:15}"
            f"  {g['slept_us_per_license']:14}  {g['cpu_ratio']:9}  {g['wall_ratio']:10}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
