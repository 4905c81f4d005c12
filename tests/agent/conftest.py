"""Shared fixtures of the agent tests: a virtual clock, a Clearinghouse root, and a loader for
the fakes (tests have no packages under --import-mode=importlib)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from tslic.protocol.clock import parse_date
from tslic.runtime.clock import TrioClock


def load_fakes() -> ModuleType:
    name = "tslic_agent_test_fakes"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("fakes.py"))
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def fakes() -> ModuleType:
    return load_fakes()


# One real second is one virtual hour: months pass in a few thousand autojumps.
SPEED = 3600.0


@pytest.fixture
async def clock(autojump_clock: object) -> TrioClock:
    return TrioClock(parse_date("2003-06-02"), speed=SPEED)
