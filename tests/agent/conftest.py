"""Shared fixtures of the agent tests: a virtual clock (the fakes are tests/agent/fakes.py)."""

from __future__ import annotations

import pytest
from trio.testing import MockClock
from tslic.protocol.clock import parse_date
from tslic.runtime.clock import TrioClock

# One real second is one virtual hour: months pass in a few thousand autojumps.
SPEED = 3600.0


@pytest.fixture
async def clock(autojump_clock: MockClock) -> TrioClock:
    return TrioClock(parse_date("2003-06-02"), speed=SPEED)
