"""`tslic admin` listings at the sizes of issue 15, over the wire, through real processes.

The database is filled directly (server/license_server/db/synthetic.py: one transaction,
executemany) so the tests take seconds; the listings themselves go through `tslic server`
and `tslic admin` as separate processes, as an operator runs them. Each size below broke
before paging: 260 licenses BAD_ENCODING, 400 FRAME_TOO_LARGE, 4,400 INTERNAL_ERROR (an
array above 4,096 items), `report --per-user` with 300 users FRAME_TOO_LARGE.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tslic.server.license_server.db import synthetic

TSLIC = [sys.executable, "-m", "tslic.cli.main"]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore::DeprecationWarning"}


class Server:
    """A `tslic server` process on a data directory."""

    def __init__(self, data: Path) -> None:
        ready = data.parent / f"{data.name}.ready"
        self.proc = subprocess.Popen(
            [*TSLIC, "server", "--data", str(data), "--ready-file", str(ready)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not ready.exists():  # waiting for another process, not for time to pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError("the license server did not start")
            time.sleep(0.02)
        self.info: dict[str, str] = json.loads(ready.read_text())

    def admin(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*TSLIC, "admin", "--server", self.info["address"], "--credential",
             self.info["admin_credential"], *args],
            capture_output=True, text=True, timeout=300, env=ENV, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        return done

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        log = self.proc.stderr.read() if self.proc.stderr else ""
        if self.proc.stderr:
            self.proc.stderr.close()
        return log


def _serve(tmp_path: Path, **fill: int) -> Iterator[Server]:
    # Issued "now" by the server's clock (real time), so its sweeper leaves them active.
    fill.setdefault("start", int(time.time() * 1000) - 3_600_000)
    data = tmp_path / "ls"
    synthetic.fill(data, **fill)
    server = Server(data)
    try:
        yield server
    finally:
        log = server.stop()
        assert "Traceback" not in log


@pytest.fixture
def server_100k(tmp_path: Path) -> Iterator[Server]:
    yield from _serve(tmp_path, licenses_count=100_000)


@pytest.fixture
def server_4400(tmp_path: Path) -> Iterator[Server]:
    yield from _serve(tmp_path, licenses_count=4_400)


@pytest.fixture
def server_10k_users(tmp_path: Path) -> Iterator[Server]:
    yield from _serve(tmp_path, licenses_count=0, users=10_000, user_cals=8_000)


@pytest.fixture
def server_300_users(tmp_path: Path) -> Iterator[Server]:
    yield from _serve(tmp_path, licenses_count=0, users=300, user_cals=250)


def test_licenses_json_lists_100000_licenses(server_100k: Server) -> None:
    out = server_100k.admin("--json", "licenses").stdout
    doc = json.loads(out)  # one valid JSON document, written page by page
    licenses = doc["licenses"]
    assert doc["type"] == "AdminLicenses"
    assert len(licenses) == 100_000
    ids = [x["license_id"] for x in licenses]
    assert ids == sorted(ids)
    assert len(set(ids)) == 100_000
    assert licenses[-1]["machine"] == "PC099999"


def test_licenses_text_lists_4400_licenses_and_filters_on_the_server(server_4400: Server) -> None:
    out = server_4400.admin("licenses").stdout.splitlines()
    assert out[:2] == ["Issued licenses", out[1]]
    assert out[1].split()[:3] == ["ID", "Kind", "Product"]
    rows = out[2:-1]
    assert len(rows) == 4_400
    assert [int(r.split()[0]) for r in rows] == list(range(1, 4_401))
    assert out[-1] == "4400 licenses"
    one = json.loads(server_4400.admin("--json", "licenses", "--machine", "pc004399").stdout)
    assert [x["machine"] for x in one["licenses"]] == ["PC004399"]
    small = server_4400.admin("--json", "licenses", "--user", "USER00007", "--page-size", "1")
    assert [x["license_id"] for x in json.loads(small.stdout)["licenses"]] == [8]
    none = json.loads(server_4400.admin("--json", "licenses", "--status", "returned").stdout)
    assert none["licenses"] == []


def test_per_user_report_shows_10000_users_against_the_installed_user_cals(
    server_10k_users: Server,
) -> None:
    doc = json.loads(server_10k_users.admin("--json", "report", "--per-user").stdout)
    assert (doc["installed"], doc["issued"], doc["keypack_count"]) == (8_000, 10_000, 1)
    assert len(doc["users"]) == doc["users_count"] == 10_000
    assert len(doc["licenses"]) == doc["licenses_count"] == 10_000
    (pack,) = doc["user_cal_packs"]
    # The pack line agrees with the table (issue 15: it said 0 issued).
    assert (pack["total"], pack["issued"], pack["in_use"]) == (8_000, 0, 10_000)


def test_per_user_report_text_states_installed_and_issued(server_300_users: Server) -> None:
    out = server_300_users.admin("report", "--per-user").stdout
    assert "User CALs installed: 250 (in 1 key pack); issued: 300" in out
    assert "300 users" in out
    assert "300 User CALs" in out
