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

from tests.reliability import support
from tests.reliability.conftest import Zygote, open_zygote

zygote = open_zygote  # the tests' fork server, as the benchmarks call it

__all__ = ["Zygote", "support", "zygote"]
