"""Fixtures for license-server tests: `lab` (the in-process deployment of harness.py).

Tests that use `lab` also take `autojump_clock` themselves: pytest-trio passes a clock to
trio.run only if it is one of the test function's own arguments."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from tests.license_server import harness


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[harness.Lab]:
    async with trio.open_nursery() as nursery:
        the_lab = harness.Lab(nursery, tmp_path)
        await the_lab.start_clearinghouse()
        yield the_lab
        nursery.cancel_scope.cancel()
    if the_lab.ch is not None:
        the_lab.ch.close()
