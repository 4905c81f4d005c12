"""Fixtures of the reliability tests.

- Tests import their helpers as modules: `from tests.reliability import support, fuzzer`.
- `figures`: the session's report (tools/reliability_report.py). Each test adds what it
  measured; at the end of the session reliability.json and reliability.md are written under
  the session's temporary directory (or $TSLIC_RELIABILITY_REPORT if set) and the path is
  printed in the terminal summary.
- `zygote`: a fork server (zygote.py) that starts real license-server processes quickly.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from tools import reliability_report as report_tool

ROOT = Path(__file__).resolve().parents[2]  # the zygote runs as a module from here

_written: list[Path] = []


@pytest.fixture(scope="session")
def figures(tmp_path_factory: pytest.TempPathFactory) -> Iterator[report_tool.Figures]:
    report = report_tool.Figures()
    yield report
    out = Path(os.environ.get("TSLIC_RELIABILITY_REPORT") or tmp_path_factory.mktemp("report"))
    _written.extend(report_tool.write(report, out))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for path in _written:
        terminalreporter.write_line(f"reliability report: {path}")


class Zygote:
    """Client side of zygote.py (one command at a time)."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self._buffer = b""

    async def call(self, **cmd: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        await self.process.stdin.send_all(json.dumps(cmd).encode() + b"\n")
        while b"\n" not in self._buffer:
            chunk = await self.process.stdout.receive_some(4096)
            if not chunk:
                raise RuntimeError("the zygote died")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        reply: dict[str, Any] = json.loads(line)
        return reply


@asynccontextmanager
async def open_zygote() -> AsyncIterator[Zygote]:
    """Run the fork server for the block; leaving it SIGKILLs every child still running."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "tests.reliability.zygote"],
        cwd=ROOT,
        stdin=-1,  # subprocess.PIPE
        stdout=-1,
    )
    try:
        yield Zygote(process)
    finally:
        assert process.stdin is not None
        await process.stdin.aclose()
        with trio.move_on_after(10):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()
        assert process.stdout is not None
        await process.stdout.aclose()


@pytest.fixture
async def zygote() -> AsyncIterator[Zygote]:
    async with open_zygote() as client:
        yield client
