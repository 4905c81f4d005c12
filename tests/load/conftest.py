"""Makes tests/load/fakes.py importable as `tslic_load_fakes` (a name no other test folder
uses, since test folders have no packages under --import-mode=importlib)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "tslic_load_fakes", Path(__file__).with_name("fakes.py")
)
assert _spec is not None
assert _spec.loader is not None
_module = importlib.util.module_from_spec(_spec)
sys.modules["tslic_load_fakes"] = _module
_spec.loader.exec_module(_module)
