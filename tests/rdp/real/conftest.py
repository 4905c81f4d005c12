"""Makes support.py importable as `rdp_real_support` (with --import-mode=importlib test
modules are not on sys.path)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

if "rdp_real_support" not in sys.modules:
    _spec = importlib.util.spec_from_file_location(
        "rdp_real_support", Path(__file__).with_name("support.py")
    )
    assert _spec is not None
    assert _spec.loader is not None
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["rdp_real_support"] = _module
    _spec.loader.exec_module(_module)
