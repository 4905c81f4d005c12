"""Fixtures of the RDP client tests: the agent tests' fakes (loaded by path: tests have no
packages under --import-mode=importlib) and a virtual clock."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from tslic.protocol.clock import parse_date
from tslic.runtime.clock import TrioClock


@pytest.fixture
def fakes() -> ModuleType:
    name = "tslic_agent_test_fakes"
    if name not in sys.modules:
        path = Path(__file__).parent.parent / "agent" / "fakes.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture
async def clock() -> TrioClock:
    return TrioClock(parse_date("2003-06-02"), speed=3600.0)
