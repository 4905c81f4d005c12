"""Issue 5's command sequence, every piece a real `tslic` process: a 2003 agent whose
preferred list names a 2000 license server first skips it and licenses a Windows XP client
through the 2003 license server; the client's second connection presents its stored license.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TSLIC = [sys.executable, "-m", "tslic.cli"]


@contextmanager
def daemon(*args: str) -> Iterator[dict[str, Any]]:
    """Run a daemon, yield its readiness line, stop it with SIGTERM (graceful)."""
    process = subprocess.Popen(
        [*TSLIC, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line, process.stderr.read() if process.stderr else "no readiness line"
        yield json.loads(line)
    finally:
        process.terminate()
        _, err = process.communicate(timeout=60)  # a hang guard
        assert process.returncode == 0, err[-2000:]


def tslic(*args: str) -> dict[str, Any]:
    result = subprocess.run(
        [*TSLIC, *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def test_agent_skips_2000_server_and_client_presents_stored_license(tmp_path: Path) -> None:
    with (
        daemon("server", "serve", "--data", str(tmp_path / "ls2000"), "--name", "LS2000",
               "--version", "2000", "--listen", "127.0.0.1:0") as ls2000,
        daemon("server", "serve", "--data", str(tmp_path / "ls2003"), "--name", "LS2003",
               "--version", "2003", "--listen", "127.0.0.1:0") as ls2003,
        daemon("agent", "run", "--data", str(tmp_path / "ts"), "--name", "TS2003",
               "--version", "2003", "--listen", "127.0.0.1:0",
               "--license-server", f"LS2000={ls2000['address']}",
               "--license-server", f"LS2003={ls2003['address']}") as agent,
    ):  # fmt: skip
        store = str(tmp_path / "xp-store")
        connect = (
            "connect",
            "--agent",
            agent["address"],
            "--device",
            "XPPC",
            "--user",
            "alice",
            "--os",
            "windows-xp-professional",
            "--store",
            store,
            "--json",
        )
        first = tslic(*connect)
        second = tslic(*connect)
        status = tslic("agent", "status", "--data", str(tmp_path / "ts"), "--json")
    assert first["status"] == "licensed"
    assert first["presented_stored_license"] is False
    assert first["license"]["issuer"] == "LS2003"
    assert second["presented_stored_license"] is True
    assert second["license"]["issuer"] == "LS2003"
    servers = {s["name"]: s for s in status["servers"]}
    assert servers["LS2000"]["connectivity"] == "LOWER_VERSION"
    assert servers["LS2000"]["connectivity_value"] == 4
    assert status["license_server_in_use"] == "LS2003"
