"""Storage faults: a full disk and a read-only database give STORAGE_ERROR with a sentence an
administrator can act on, never a corrupted database or a license acknowledged but not kept.

The full disk is real (a 4 MiB tmpfs filled up with a ballast file; root only, else the
SQLite page limit `PRAGMA max_page_count` plays it). The read-only cases are a read-only bind
mount of the data directory (at start-up) and `PRAGMA query_only` on the live connection
(at run time, which is what a data directory remounted read-only looks like to SQLite).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trio
from tslic.protocol.domain import ClientOS, LicensingMode
from tslic.protocol.errors import ErrorCode, ServiceError, TslicError
from tslic.protocol.messages.licensing import IssueLicense, LicenseGranted
from tslic.runtime.clock import WallClock
from tslic.server.license_server.daemon import LicenseServer

from tests.reliability import support as rs
from tools.reliability_report import Figures


def _mount(*args: str) -> bool:
    if os.geteuid() != 0:
        return False
    done = subprocess.run(["mount", *args], capture_output=True, check=False)
    return done.returncode == 0


@contextlib.contextmanager
def mounted(target: Path, *args: str) -> Iterator[bool]:
    target.mkdir(parents=True, exist_ok=True)
    ok = _mount(*args, str(target))
    try:
        yield ok
    finally:
        if ok:
            subprocess.run(["umount", "-l", str(target)], capture_output=True, check=False)


@contextlib.asynccontextmanager
async def serving(data_dir: Path) -> AsyncIterator[LicenseServer]:
    ls = LicenseServer(rs.ls_config(data_dir), WallClock())
    async with trio.open_nursery() as nursery:
        await nursery.start(ls.serve)
        yield ls
        ls.shutdown()


def issue() -> IssueLicense:
    return IssueLicense(
        hwid=rs.new_hwid(),
        machine="PC",
        user="u",
        client_os=ClientOS.XP_PRO,
        mode=LicensingMode.PER_DEVICE,
    )


async def issue_until_refused(
    ls: LicenseServer, ts: rs.TermServ, ledger: rs.Ledger, limit: int = 20_000
) -> ServiceError:
    """Issue licenses (recording each acknowledgement) until the server refuses one."""
    async with rs.ts_stream(ls.address, ts, WallClock()) as s:
        for _ in range(limit):
            request = issue()
            try:
                reply = await s.request(request)
            except ServiceError as exc:
                # The connection survives the refusal: the same stream still answers.
                return exc
            assert isinstance(reply, LicenseGranted)
            ledger.add(reply, request.hwid, ts.name)
    raise AssertionError(f"{limit} licenses issued without the storage fault biting")


def fill(path: Path) -> None:
    """Write `path` until the file system is full, then free 96 KiB for a little progress."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        chunk = b"\0" * 4096
        while True:
            try:
                os.write(fd, chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    finally:
        os.close(fd)
    with path.open("r+b") as f:
        f.truncate(max(0, path.stat().st_size - 96 * 1024))


async def test_full_disk_refuses_with_storage_error(tmp_path: Path, figures: Figures) -> None:
    site = await rs.prepare(tmp_path, pack=5000, terminal_servers=1)
    ts = site.terminal_servers[0]
    ledger = rs.Ledger()
    with mounted(tmp_path / "disk", "-t", "tmpfs", "-o", "size=4m", "tmpfs") as real_disk:
        data = tmp_path / "disk" / "ls"
        shutil.copytree(site.data_dir, data)
        async with serving(data) as ls:
            if real_disk:
                fill(tmp_path / "disk" / "ballast")
            else:  # not root: the page limit is SQLite's own "database or disk is full"
                await ls.store.run_op(
                    lambda db: db.execute(
                        f"PRAGMA max_page_count = "
                        f"{db.execute('PRAGMA page_count').fetchone()[0] + 4}"
                    )
                )
            refusal = await issue_until_refused(ls, ts, ledger)
            assert refusal.code is ErrorCode.STORAGE_ERROR
            assert "full" in refusal.message
            assert "nothing was changed" in refusal.message
            # It keeps refusing, and keeps serving: no crash, no half-written license.
            again = await issue_until_refused(ls, ts, ledger, limit=1)
            assert again.code is ErrorCode.STORAGE_ERROR
        assert rs.check_database(data / "licenses.db", ledger) == []
        (tmp_path / "disk" / "ballast").unlink(missing_ok=True)
        async with serving(data) as ls:  # room again: the same books, and issuance resumes
            if not real_disk:
                await ls.store.run_op(lambda db: db.execute("PRAGMA max_page_count = 1073741823"))
            async with rs.ts_stream(ls.address, ts, WallClock()) as s:
                request = issue()
                reply = await s.request(request)
                assert isinstance(reply, LicenseGranted)
                ledger.add(reply, request.hwid, ts.name)
        assert rs.check_database(data / "licenses.db", ledger) == []
    assert len(ledger.acks) > 1
    figures.add("storage_refusals", 2)
    figures.note(
        "storage: full disk",
        ("a full 4 MiB tmpfs" if real_disk else "SQLite max_page_count")
        + f": {len(ledger.acks)} licenses acknowledged and all kept; refusals were"
        " STORAGE_ERROR; integrity_check ok; issuance resumed once space was freed",
    )


async def test_read_only_database_at_run_time(tmp_path: Path, figures: Figures) -> None:
    site = await rs.prepare(tmp_path, pack=100, terminal_servers=1)
    ts = site.terminal_servers[0]
    ledger = rs.Ledger()
    async with serving(site.data_dir) as ls:
        async with rs.ts_stream(ls.address, ts, WallClock()) as s:
            await ls.store.run_op(lambda db: db.execute("PRAGMA query_only = 1"))
            with pytest.raises(ServiceError) as info:
                await s.request(issue())
            assert info.value.code is ErrorCode.STORAGE_ERROR
            assert "read-only" in info.value.message
            # Even the Hello of a terminal server needs the database (its certificate is
            # looked up there): a new connection is refused with the same clear error.
            with pytest.raises(ServiceError) as hello:
                async with rs.ts_stream(ls.address, ts, WallClock()):
                    pass
            assert hello.value.code is ErrorCode.STORAGE_ERROR
            # The writer is idle between operations; lift the fault on its connection directly
            # (every Store operation begins a write transaction, which the fault forbids).
            ls.store._db.execute("PRAGMA query_only = 0")
        with pytest.raises(AssertionError, match="without the storage fault"):
            await issue_until_refused(ls, ts, ledger, limit=3)
    assert len(ledger.acks) == 3
    assert rs.check_database(site.data_dir / "licenses.db", ledger) == []
    figures.add("storage_refusals", 1)


async def test_read_only_data_directory_at_start(tmp_path: Path) -> None:
    site = await rs.prepare(tmp_path, pack=10, terminal_servers=1)
    ro = tmp_path / "ro"
    with mounted(ro, "--bind", str(site.data_dir)) as bound:
        if not bound or not _mount("-o", "remount,ro,bind", str(ro)):
            pytest.skip("needs root to make a read-only bind mount")
        with pytest.raises(TslicError) as info:
            LicenseServer(rs.ls_config(ro), WallClock())
        # The command says so in one line and exits 2 (no traceback, no half-started daemon).
        with trio.fail_after(30):
            done = await trio.run_process(
                [sys.executable, "-m", "tslic.cli", "server", "--data", str(ro)],
                capture_stdout=True, capture_stderr=True, check=False,
            )  # fmt: skip
    assert info.value.code is ErrorCode.STORAGE_ERROR
    assert "could not be opened" in info.value.message
    assert f"the data directory {ro} is read-only; make it writable" in info.value.message
    assert done.returncode == 2
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1
    assert "STORAGE_ERROR" in lines[0]
    assert "is read-only" in lines[0]
