"""The reliability tests' daemons, for benchmarks: a prepared site and the fork server.

Contract: `support` is tests/reliability/support.py: `support.prepare` makes an activated
license-server data directory with enrolled terminal servers, `support.spawn` forks a daemon.
`zygote()` runs the tests' fork server (`python -m tests.reliability.zygote`) for the duration
of an `async with` and yields its client (`tests.reliability.conftest.Zygote`, whose
`call(**command)` sends one command and returns its reply); leaving the block closes the
zygote's stdin, which SIGKILLs every child still running. The benchmarks measure what the
tests only check (tests/reliability/test_limits.py, test_crash_agent.py).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from tests.reliability import support
from tests.reliability.conftest import Zygote

ROOT = Path(__file__).resolve().parent.parent

__all__ = ["Zygote", "support", "zygote"]


@asynccontextmanager
async def zygote() -> AsyncIterator[Zygote]:
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "tests.reliability.zygote"], cwd=ROOT, stdin=-1, stdout=-1
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
