"""Debian's real RDP clients against client/agent/rdp_listener.py (milestone 1).

Each client runs headless under its own Xvfb display with an empty HOME, connects with
Standard RDP Security and must reach the verified Platform Challenge Response: its clientName,
user and licensing names arrive intact, its Security Exchange and Client Info decrypt, and
its licensing MAC checks. Skipped (with the reason) when rdesktop, xfreerdp or Xvfb is not
installed; .ci/run needs `apt-get install -y rdesktop freerdp2-x11 xvfb` to run them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import pytest
import trio
from tslic.client.agent.rdp_listener import RdpSessionReport, serve_rdp

MISSING = [b for b in ("rdesktop", "xfreerdp", "Xvfb") if shutil.which(b) is None]
pytestmark = pytest.mark.skipif(
    bool(MISSING), reason=f"real RDP clients not installed: {', '.join(MISSING)}"
)
LIMIT = 60  # seconds for one whole client run; a hang fails the test instead of blocking CI


@asynccontextmanager
async def _xvfb() -> AsyncIterator[str]:
    """A private X display; Xvfb picks a free number and writes it to stdout."""
    import subprocess

    process = await trio.lowlevel.open_process(
        ["Xvfb", "-displayfd", "1", "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        number = b""
        with trio.fail_after(LIMIT):
            while not number.endswith(b"\n"):
                chunk = await process.stdout.receive_some(16)
                if not chunk:
                    raise AssertionError("Xvfb exited before reporting its display")
                number += chunk
        yield f":{number.decode().strip()}"
    finally:
        process.terminate()
        with trio.move_on_after(5):
            await process.wait()


async def _run_client(argv: list[str], home: Path) -> tuple[RdpSessionReport, str]:
    reports: list[RdpSessionReport] = []
    done = trio.Event()

    def collect(report: RdpSessionReport) -> None:
        reports.append(report)
        done.set()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(serve_rdp, 0, on_report=collect))
        port = listeners[0].socket.getsockname()[1]
        async with _xvfb() as display:
            env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
            env["DISPLAY"] = display
            with trio.fail_after(LIMIT):
                result = await trio.run_process(
                    [*argv, f"127.0.0.1:{port}"]
                    if argv[0] == "rdesktop"
                    else [*argv, f"/v:127.0.0.1:{port}"],
                    env=env,
                    check=False,
                    capture_stdout=True,
                    capture_stderr=True,
                )
                await done.wait()
        nursery.cancel_scope.cancel()
    output = (result.stdout + result.stderr).decode(errors="replace")
    return reports[0], output


def _assert_reached_licensing(report: RdpSessionReport, name: str, user: str) -> None:
    assert report.error is None, report
    assert report.client_name == name
    assert report.user == user
    assert report.license_user == user
    assert report.license_machine == name
    assert report.reached == "platform challenge response"
    assert report.challenge_ok is True


@pytest.mark.parametrize("security", [["/sec:rdp"], []], ids=["sec-rdp", "negotiated"])
async def test_xfreerdp_reaches_the_platform_challenge_response(
    tmp_path: Path, security: list[str]
) -> None:
    argv = ["xfreerdp", *security, "/u:alice", "/p:pw", "/client-hostname:TESTHOST"]
    report, output = await _run_client(argv, tmp_path)
    _assert_reached_licensing(report, "TESTHOST", "alice")
    assert report.license_encrypted is True  # xfreerdp encrypts its licensing PDUs
    assert report.platform_id == 0x04010000
    # PlatformId + MD5(client hostname)
    assert report.hwid == "04010000:" + hashlib.md5(b"TESTHOST").hexdigest()
    assert "ERRINFO_RPC_INITIATED_DISCONNECT" in output  # how it reports our DPUM


async def test_rdesktop_reaches_the_platform_challenge_response(tmp_path: Path) -> None:
    argv = ["rdesktop", "-u", "bob", "-p", "pw", "-n", "RDHOST"]
    report, output = await _run_client(argv, tmp_path)
    _assert_reached_licensing(report, "RDHOST", "bob")
    assert report.license_encrypted is False  # rdesktop never encrypts licensing PDUs
    assert report.platform_id == 0xFF010000
    assert report.hwid == "00000002:" + b"RDHOST".ljust(16, b"\0").hex()  # LE32 2 + hostname
    assert "Connection established using plain RDP." in output
