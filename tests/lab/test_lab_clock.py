"""The clock as a user drives it, against real processes (docs/CLOCK.md, CLOCK-1..4).

`tslic lab up` starts a standing deployment and prints an `export TSLIC_CLOCK_FILE=...` line;
with only that variable, `tslic clock advance 121d` moves every daemon 121 days on, and
`tslic admin status` and `tslic agent status` show the new date. The jump makes the agents'
timers fire at once, so they probe their license server at the very moment the daemons
adopt the new clock: no daemon may refuse another's timestamp then (CLOCK-3), and the agent
keeps its license server as valid.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# 2003-05-01 (the lab's start) + 121 days.
DAY_121 = "2003-08-30"


def tslic(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tslic.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


@pytest.fixture
def lab_up(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A running `tslic lab up` (daemons log at INFO, so refusals are in their logs), and the
    text it printed up to the export line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TSLIC_CLOCK")}
    env["TSLIC_LOG"] = "INFO"
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tslic.cli", "lab", "up", "--data", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    printed = []
    try:
        for line in proc.stdout:  # ends at EOF if the lab fails
            printed.append(line)
            if line.strip().startswith("tslic clock advance"):
                break
        yield data, "".join(printed)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_clock_advance_moves_every_daemon_and_nobody_refuses_the_jump(
    lab_up: tuple[Path, str],
) -> None:
    data, printed = lab_up
    match = re.search(r"export TSLIC_CLOCK_FILE=(\S+)", printed)
    assert match, printed[-2000:]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TSLIC_CLOCK")}
    env["TSLIC_CLOCK_FILE"] = match.group(1)
    ls_address = re.search(r"server\s+W3KLS1\s+(\S+)", printed)
    assert ls_address, printed[-2000:]
    credential = str(data / "ls" / "W3KLS1" / "admin.key")
    agent_data = str(data / "agents" / "W3KTS2")

    moved = tslic(env, "clock", "advance", "121d", "--json")
    assert moved.returncode == 0, moved.stderr
    doc = json.loads(moved.stdout)
    assert doc["now"].startswith(DAY_121)
    assert doc["before"].startswith("2003-05-01")

    admin = tslic(env, "admin", "--server", ls_address.group(1), "--credential", credential,
                  "--json", "status")  # fmt: skip
    assert admin.returncode == 0, admin.stderr
    assert json.loads(admin.stdout)["server_time"].startswith(DAY_121)
    agent = tslic(env, "agent", "status", "--data", agent_data, "--json")
    assert agent.returncode == 0, agent.stderr
    status = json.loads(agent.stdout)
    assert status["now"].startswith(DAY_121)
    shown = tslic(env, "clock", "show")
    assert f"virtual date  {DAY_121}" in shown.stdout

    # The agents' timers fired at the jump and probed their license servers: every probe was
    # accepted (nothing in any daemon's log), and W3KTS2 still holds W3KLS1 as valid.
    refused = [
        f"{log.name}: {line}"
        for log in sorted((data / "logs").glob("*.log"))
        for line in log.read_text(errors="replace").splitlines()
        if "STALE_TIMESTAMP" in line or "FUTURE_TIMESTAMP" in line or "message timestamp" in line
    ]
    assert refused == []
    again = json.loads(tslic(env, "agent", "status", "--data", agent_data, "--json").stdout)
    states = {s["name"]: s["connectivity"] for s in again["servers"]}
    assert states.get("W3KLS1") == "VALID_LS", again["servers"]
