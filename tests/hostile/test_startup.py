"""The hostile operator at start-up: every daemon (`tslic clearinghouse`, `directory`,
`server`, `agent`) and every listener (TCP, web, metrics) refuses a busy port, an address
that is not on this machine and a bad path (data directory, clock file, ready file) with ONE
line naming the address or path, and exit status 2: no traceback, ever. Real processes,
each given a generous hang guard only.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HANG_GUARD = 90  # seconds; a start-up failure takes about one second


def tslic(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tslic.cli", *argv],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
    )


def one_line_refusal(done: subprocess.CompletedProcess[str], *names: str) -> str:
    """Assert the run ended with status 2 and one stderr line naming every `names`."""
    err = done.stderr.strip()
    assert done.returncode == 2, (done.returncode, done.stdout, err)
    assert "Traceback" not in err, err
    assert "ExceptionGroup" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    for name in names:
        assert name in lines[0], (name, lines[0])
    assert done.stdout.strip() == "", done.stdout  # no readiness line
    return lines[0]


@pytest.fixture(scope="module")
def busy() -> Iterator[str]:
    """A loopback port something else listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield f"127.0.0.1:{holder.getsockname()[1]}"


def daemon_args(role: str, data: Path) -> list[str]:
    if role == "clearinghouse":
        return ["clearinghouse", "serve", "--data", str(data)]
    if role == "directory":
        return ["directory", "--data", str(data)]
    if role == "server":
        return ["server", "--data", str(data), "--name", "LS1"]
    return ["agent", "--data", str(data), "--name", "TS1"]


ROLES = ["clearinghouse", "directory", "server", "agent"]


@pytest.mark.parametrize("role", ROLES)
def test_busy_listen_port(role: str, busy: str, tmp_path: Path) -> None:
    done = tslic(*daemon_args(role, tmp_path / "d"), "--listen", busy)
    line = one_line_refusal(done, f"cannot listen on {busy}", "--listen")
    assert "port is busy" in line


@pytest.mark.parametrize(("role", "option"), [("clearinghouse", "--web"), ("server", "--metrics")])
def test_busy_web_and_metrics_ports(role: str, option: str, busy: str, tmp_path: Path) -> None:
    done = tslic(*daemon_args(role, tmp_path / "d"), option, busy)
    one_line_refusal(done, f"cannot listen on {busy}", option, "port is busy")


def test_address_not_on_this_machine(tmp_path: Path) -> None:
    # 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never assigned here, so bind() fails and no
    # packet is ever sent.
    done = tslic(*daemon_args("directory", tmp_path / "d"), "--listen", "192.0.2.7:24001")
    one_line_refusal(done, "192.0.2.7:24001", "not on this machine")


@pytest.mark.parametrize("role", ROLES)
def test_data_directory_under_a_file(role: str, tmp_path: Path) -> None:
    afile = tmp_path / "plain-file"
    afile.write_text("not a directory\n")
    done = tslic(*daemon_args(role, afile / "data"))
    one_line_refusal(done, str(afile / "data"))


@pytest.mark.parametrize("role", ROLES)
def test_missing_clock_file(role: str, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-clock"
    done = tslic(*daemon_args(role, tmp_path / "d"), "--clock-file", str(missing))
    one_line_refusal(done, str(missing), "--clock-file")


def test_clock_file_of_garbage(tmp_path: Path) -> None:
    bad = tmp_path / "clock"
    bad.write_bytes(b"\x1b[31m<script>\xff\n")
    done = tslic(*daemon_args("server", tmp_path / "d"), "--clock-file", str(bad))
    one_line_refusal(done, str(bad), "not a clock spec")


@pytest.mark.parametrize("role", ROLES)
def test_ready_file_in_a_missing_directory(role: str, tmp_path: Path) -> None:
    ready = tmp_path / "nowhere" / "ready.json"
    done = tslic(*daemon_args(role, tmp_path / "d"), "--ready-file", str(ready))
    one_line_refusal(done, str(ready))
    assert not ready.exists()
