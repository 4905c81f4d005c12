"""Listing 100,000 licenses over the wire against a plain SELECT of the same rows, same run.

Contract: `python -m bench listing [--licenses N] [--repeat R] [--json]` fills a fresh data
directory with N synthetic licenses (server/license_server/db/synthetic.py), starts `tslic
server` on it as a child process, and times, R times each (the best is kept):
- `cli`: `tslic admin --json licenses` as a child process, its output discarded: paging,
  decoding and validating every page, and writing one JSON document (what an operator runs);
- `wire`: the same pages read by this process over one admin conversation (paging, signed
  envelopes, validation; no JSON);
- `select`: `SELECT` of the same columns of every license, in listing order, with the
  standard sqlite3 module on the same database file (the floor: no paging, no network).
It prints seconds and the ratios cli/select and wire/select, with the number of pages.
A benchmark: figures, never assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio
from tslic.protocol import Conversation
from tslic.protocol.domain import PeerRole
from tslic.protocol.messages.admin import AdminLicenses, AdminListLicenses
from tslic.runtime.clock import WallClock
from tslic.runtime.files import load_key
from tslic.runtime.peer import open_peer
from tslic.server.license_server.db import synthetic

TSLIC = [sys.executable, "-m", "tslic.cli.main"]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore::DeprecationWarning"}
COLUMNS = (
    "id, keypack_id, product, kind, status, hwid, machine, user, terminal_server, issued_at,"
    " expires_at, validated"
)


def _start_server(data: Path) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    ready = data.parent / "ready"
    proc = subprocess.Popen(
        [*TSLIC, "server", "--data", str(data), "--ready-file", str(ready)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV,
    )  # fmt: skip
    while not ready.exists():  # waiting for the child process
        if proc.poll() is not None:
            raise SystemExit("the license server did not start")
        time.sleep(0.05)
    info: dict[str, str] = json.loads(ready.read_text())
    return proc, info


def _time_cli(info: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [*TSLIC, "admin", "--server", info["address"], "--credential",
         info["admin_credential"], "--json", "licenses"],
        stdout=subprocess.DEVNULL, check=True, env=ENV,
    )  # fmt: skip
    return time.perf_counter() - started


async def _read_pages(info: dict[str, str]) -> tuple[int, int]:
    key = load_key(Path(info["admin_credential"]))
    async with open_peer(
        info["address"], conversation=Conversation.ADMIN, key=key, clock=WallClock(),
        role=PeerRole.ADMINISTRATOR, name="BENCH",
    ) as stream:  # fmt: skip
        pages = items = 0
        cursor = b""
        while True:
            reply = await stream.request(AdminListLicenses(cursor=cursor))
            assert isinstance(reply, AdminLicenses)
            pages, items = pages + 1, items + len(reply.licenses)
            if not (cursor := reply.next_cursor):
                return pages, items


def _time_wire(info: dict[str, str]) -> tuple[float, int, int]:
    started = time.perf_counter()
    pages, items = trio.run(_read_pages, info)
    return time.perf_counter() - started, pages, items


def _time_select(db_path: Path) -> tuple[float, int]:
    started = time.perf_counter()
    with sqlite3.connect(db_path) as db:
        rows = db.execute(f"SELECT {COLUMNS} FROM licenses ORDER BY issued_at, id").fetchall()
    return time.perf_counter() - started, len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--licenses", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "ls"
        started = time.perf_counter()
        synthetic.fill(data, licenses_count=args.licenses)
        fill = time.perf_counter() - started
        proc, info = _start_server(data)
        try:
            cli = min(_time_cli(info) for _ in range(args.repeat))
            wires = [_time_wire(info) for _ in range(args.repeat)]
            wire, pages, items = min(wires)
            select, rows = min(_time_select(data / "licenses.db") for _ in range(args.repeat))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    assert items == rows == args.licenses
    result = {
        "licenses": args.licenses,
        "pages": pages,
        "fill_s": round(fill, 3),
        "cli_s": round(cli, 3),
        "wire_s": round(wire, 3),
        "select_s": round(select, 3),
        "cli_over_select": round(cli / select, 1),
        "wire_over_select": round(wire / select, 1),
        "cpus": os.cpu_count(),
        "load_1min": round(os.getloadavg()[0], 1),
    }
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(
            f"{args.licenses:,} licenses in {pages} pages: tslic admin --json licenses"
            f" {cli:.2f} s, pages over the wire {wire:.2f} s, plain SELECT {select:.3f} s;"
            f" cli/select {cli / select:.0f}x, wire/select {wire / select:.0f}x"
            f" (load {result['load_1min']} on {result['cpus']} cpus)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
