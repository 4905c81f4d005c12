"""Makes tests/conformance/doubles.py importable as `conformance_doubles`.

Why: with `--import-mode=importlib` test modules are not on sys.path; registering the module
under a distinctive name keeps it from colliding with another folder's helpers when the whole
suite runs in one process (the convention of tests/protocol/conftest.py).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def _load() -> None:
    if "conformance_doubles" in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(
        "conformance_doubles", Path(__file__).with_name("doubles.py")
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["conformance_doubles"] = module
    spec.loader.exec_module(module)


_load()
