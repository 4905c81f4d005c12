"""Fixtures for license-server tests: `lab` (the in-process deployment of harness.py).

Tests that use `lab` also take `autojump_clock` themselves: pytest-trio passes a clock to
trio.run only if it is one of the test function's own arguments."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

_spec = importlib.util.spec_from_file_location("ls_harness", Path(__file__).with_name("harness.py"))
assert _spec is not None
assert _spec.loader is not None
harness = importlib.util.module_from_spec(_spec)
sys.modules["ls_harness"] = harness
_spec.loader.exec_module(harness)


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Any]:
    async with trio.open_nursery() as nursery:
        the_lab = harness.Lab(nursery, tmp_path)
        await the_lab.start_clearinghouse()
        yield the_lab
        nursery.cancel_scope.cancel()
    if the_lab.ch is not None:
        the_lab.ch.close()
