"""Fixtures of the RDP client tests: a virtual clock (the fakes are the agent tests',
tests/agent/fakes.py)."""

from __future__ import annotations

import pytest
from tslic.protocol.clock import parse_date
from tslic.runtime.clock import TrioClock


@pytest.fixture
async def clock() -> TrioClock:
    return TrioClock(parse_date("2003-06-02"), speed=3600.0)
